"""Combined caption sets without test leakage: RET-2 (RSICD + RSITMD) and RET-3 (+ UCM-Captions).

GeoRSCLIP-FT trains on RSICD + RSITMD and RemoteCLIP on RSICD + RSITMD + UCM. The sets share
images, so a plain union puts some of each set's test images into training. `load_combined` reads
every member, hashes every image once (`dedup`), and drops from `train` and `val` every image that
duplicates a test image of any member (its own set included). Each member's test split stays as
it is (`test_<member>`), so every published test protocol still applies. Rows keep their five
captions and say where they came from (`dataset`, `source_split`); the removal report lives in
every split's `split_info(...)["leakage"]` and is written next to exported copies.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from .dedup import DEFAULT_THRESHOLD, dataset_images, duplicates_of, hash_images
from .errors import DatasetNotFoundError
from .schema import split_info

if TYPE_CHECKING:
    import datasets

#: Named combinations of the papers (RemoteCLIP Sec. 3.1: RET-3; GeoRSCLIP-FT: RET-2).
COMBINATIONS = {"ret-2": ("rsicd", "rsitmd"), "ret-3": ("rsicd", "rsitmd", "ucm_captions")}
#: File written next to an exported combined dataset (and named in its card).
LEAKAGE_REPORT = "dedup_report.json"


def combination_members(name: str, known: Collection[str]) -> tuple[str, ...] | None:
    """Members of `ret-2`, `ret-3` or `a+b[+c...]` (each one of `known`); None for a single name."""
    key = name.lower()
    if key in COMBINATIONS:
        return COMBINATIONS[key]
    if "+" not in key or Path(name).expanduser().exists():  # a local folder may have '+' in its name
        return None
    members = tuple(part.strip() for part in key.split("+"))
    unknown = [m for m in members if m not in known]
    if unknown or len(set(members)) != len(members) or len(members) < 2:
        raise DatasetNotFoundError(
            f"{name!r}: a combination joins two or more different "
            f"datasets of {sorted(known)} with '+'; got {list(members)}"
        )
    return members


def member_dirs(members: tuple[str, ...], data_dir: str | os.PathLike | Mapping[str, str] | None) -> dict[str, Path]:
    """Folder of each member: a mapping, `rsicd=DIR,rsitmd=DIR`, or one folder holding a sub-folder per member."""
    if data_dir is None:
        raise DatasetNotFoundError(
            "a combined dataset needs data_dir: {member: folder}, "
            f"'name=DIR,name=DIR' or a folder with sub-folders {list(members)}"
        )
    if isinstance(data_dir, Mapping):
        dirs = {str(k).lower(): Path(v) for k, v in data_dir.items()}
    elif "=" in str(data_dir):
        pairs = [item.split("=", 1) for item in str(data_dir).split(",") if item.strip()]
        dirs = {name.strip().lower(): Path(folder.strip()) for name, folder in pairs}
    else:
        dirs = {member: Path(data_dir) / member for member in members}
    missing = [m for m in members if m not in dirs or not dirs[m].is_dir()]
    if missing:
        raise DatasetNotFoundError(
            f"no folder for member(s) {missing} of the combination (got { ({k: str(v) for k, v in dirs.items()}) })"
        )
    return {m: dirs[m] for m in members}


def _unified(
    ds: datasets.Dataset, member: str, split: str, scene_names: list[str], keep: list[int], captions: int
) -> datasets.Dataset:
    """Rows `keep` of a member split with the union scene labels and provenance columns."""
    import datasets

    own = ds.features["scene"].names
    ds = ds.select(keep)
    columns = {name: ds[name] for name in ("image", "filename", "image_id", "captions", "keywords")}
    columns["image"] = [entry["path"] for entry in ds.cast_column("image", datasets.Image(decode=False))["image"]]
    columns["scene"] = [scene_names.index(own[label]) for label in ds["scene"]]
    columns["dataset"] = [member] * len(ds)
    columns["source_split"] = [split] * len(ds)
    return datasets.Dataset.from_dict(columns, features=combined_features(scene_names, captions))


def combined_features(scene_names: list[str], captions_per_image: int) -> datasets.Features:
    import datasets

    from .schema import image_features

    features = dict(image_features(scene_names, captions_per_image=captions_per_image))
    features.update({"dataset": datasets.Value("string"), "source_split": datasets.Value("string")})
    return datasets.Features(features)


def load_combined(
    name: str,
    data_dir,
    read_member: Callable[[str, Path], datasets.DatasetDict],
    specs: Mapping,
    *,
    threshold: int = DEFAULT_THRESHOLD,
    progress: bool = True,
) -> datasets.DatasetDict:
    """`train` and `val` of every member minus every image that duplicates a member's test image,
    plus each member's untouched test split as `test_<member>`.

    `read_member(member, folder)` reads one member (all splits); `specs` maps member names to
    their `DatasetSpec` (title, citation, licence). `load_dataset` passes both.
    """
    import datasets

    members = combination_members(name, specs)
    if members is None:
        raise DatasetNotFoundError(f"{name!r} is not a combination (ret-2, ret-3 or names joined with '+')")
    captions = {specs[m].captions_per_image for m in members}
    if len(captions) > 1:
        raise DatasetNotFoundError(
            f"{name!r}: members have different numbers of captions "
            f"per image ({sorted(captions)}); combine sets of one kind"
        )
    loaded = {m: read_member(m, folder) for m, folder in member_dirs(members, data_dir).items()}
    for member, dsdict in loaded.items():
        if "test" not in dsdict:
            raise DatasetNotFoundError(f"{member} has no test split ({list(dsdict)}): nothing to protect from leakage")
    images = [image for member, dsdict in loaded.items() for image in dataset_images(dsdict, member)]
    hashes = hash_images(images, progress=progress)
    test_rows = [k for k, image in enumerate(images) if image.split == "test"]
    duplicates = duplicates_of(hashes, test_rows, threshold)
    removed = [
        {
            "id": images[k].id,
            "dataset": images[k].source,
            "split": images[k].split,
            "duplicate_of": images[target].id,
            "distance": distance,
        }
        for k, (target, distance) in sorted(duplicates.items())
    ]
    dropped = {entry["id"] for entry in removed}
    report = {
        "combination": name.lower(),
        "members": list(members),
        "rule": "train/val images at perceptual-hash distance <= threshold from any member's test image are removed",
        "hash": "imagehash.phash 64-bit, 4 rotations",
        "threshold": threshold,
        "removed_count": dict(Counter(f"{entry['dataset']}/{entry['split']}" for entry in removed)),
        "removed": removed,
    }
    scene_names = sorted(
        {label for dsdict in loaded.values() for ds in dsdict.values() for label in ds.features["scene"].names}
    )
    members_info = {m: split_info(dsdict["test"]) for m, dsdict in loaded.items()}

    def part(member: str, split: str) -> datasets.Dataset:
        ds = loaded[member][split]
        keep = [row for row, filename in enumerate(ds["filename"]) if f"{member}/{split}/{filename}" not in dropped]
        return _unified(ds, member, split, scene_names, keep, next(iter(captions)))

    splits = {}
    for split in ("train", "val"):
        parts = [part(m, split) for m in members if split in loaded[m]]
        if parts:
            splits[split] = datasets.concatenate_datasets(parts)
    for member in members:
        splits[f"test_{member}"] = part(member, "test")
    title = " + ".join(specs[m].title for m in members)
    for split, ds in splits.items():
        ds.info.description = json.dumps(
            {"dataset": name.lower(), "title": title, "split": split, "members": members_info, "leakage": report}
        )
        ds.info.citation = "\n".join(specs[m].citation for m in members)
        ds.info.license = "; ".join(f"{specs[m].title}: {specs[m].license}" for m in members)
    return datasets.DatasetDict(splits)


def leakage_report(dataset) -> dict | None:
    """The removal report of a combined dataset (any split or the DatasetDict), else None."""
    first = next(iter(dataset.values())) if hasattr(dataset, "values") else dataset
    return split_info(first).get("leakage")
