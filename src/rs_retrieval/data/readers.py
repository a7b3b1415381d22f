"""Readers for the two on-disk layouts of the RS caption datasets.

* release: an image folder plus a Karpathy-style JSON (`images[].filename`, `split`,
  `sentences[].raw`, optional `keywords`);
* precomp (AMFMN/GaLR): `{split}_caps.txt` (five lines per image) with `{split}_filename.txt`,
  which lists each image once (train) or once per caption (test); both are accepted for any split.

Readers return `{split: [ImageRecord, ...]}` in release order and never re-order or de-duplicate
captions. Everything is checked before a dataset is built, so a bad source fails as a whole.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .errors import (
    CaptionCountError,
    CorruptImageError,
    DatasetFormatError,
    DatasetNotFoundError,
    MissingFieldError,
    MissingImageError,
)
from .schema import CAPTIONS_PER_IMAGE, UNKNOWN_SCENE, ImageRecord

#: Split order of every reader; other split names follow alphabetically.
SPLIT_ORDER = ("train", "val", "test")
#: Image folders tried, in order, when none is given.
IMAGE_DIR_NAMES = ("images", "imgs", "NWPU_images")
#: How thoroughly image files are checked at build time, cheapest first.
IMAGE_CHECKS = ("none", "exists", "verify", "decode")
_MAX_NAMED = 5


def ordered_splits(names: Iterable[str]) -> list[str]:
    names = set(names)
    return [s for s in SPLIT_ORDER if s in names] + sorted(names - set(SPLIT_ORDER))


# ----------------------------------------------------------------------------------- release JSON


def _require(mapping: Any, key: str, where: str, path: Path) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise MissingFieldError(f"{path}: {where} has no field {key!r}")
    return mapping[key]


def _string_list(value: Any, where: str, path: Path) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DatasetFormatError(f"{path}: {where} must be a list of strings, got {value!r}")
    return list(value)


def _objects(value: Any, where: str, path: Path) -> list[dict[str, Any]]:
    """Validate the synthetic dataset's `objects` field: `[{category, color, bbox[4]}]`."""
    if not isinstance(value, list):
        raise DatasetFormatError(f"{path}: {where}.objects must be a list, got {type(value).__name__}")
    objects = []
    for k, obj in enumerate(value):
        here = f"{where}.objects[{k}]"
        category, color, bbox = (_require(obj, key, here, path) for key in ("category", "color", "bbox"))
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
            raise DatasetFormatError(f"{path}: {here}.bbox must be 4 numbers [x0, y0, x1, y1], got {bbox!r}")
        objects.append({"category": str(category), "color": str(color), "bbox": [float(v) for v in bbox]})
    return objects


def _load_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DatasetFormatError(f"{path}: not valid JSON ({err})") from None
    except UnicodeDecodeError as err:
        raise DatasetFormatError(f"{path}: not UTF-8 ({err})") from None


def _filename(value: Any, where: str, path: Path) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DatasetFormatError(f"{path}: {where}.filename must be a non-empty string, got {value!r}")
    return value


def read_release_json(path: Path, with_objects: bool = False) -> dict[str, list[ImageRecord]]:
    """Parse a Karpathy-style JSON; `image_id` is the position in its `images` list."""
    document = _load_json(path)
    images = _require(document, "images", "the top level", path)
    if not isinstance(images, list) or not images:
        raise DatasetFormatError(f"{path}: 'images' must be a non-empty list")
    splits: dict[str, list[ImageRecord]] = {}
    for index, entry in enumerate(images):
        where = f"images[{index}]"
        filename = _filename(_require(entry, "filename", where, path), where, path)
        split = _require(entry, "split", where, path)
        sentences = _require(entry, "sentences", where, path)
        if not isinstance(split, str) or not split:
            raise DatasetFormatError(f"{path}: {where}.split must be a non-empty string, got {split!r}")
        if not isinstance(sentences, list):
            raise DatasetFormatError(f"{path}: {where}.sentences must be a list, got {type(sentences).__name__}")
        captions = [_require(s, "raw", f"{where}.sentences[{j}]", path) for j, s in enumerate(sentences)]
        captions = _string_list(captions, f"{where}.sentences[*].raw", path)
        if len(captions) != CAPTIONS_PER_IMAGE:
            raise CaptionCountError(
                f"{path}: {where} ({filename}) has {len(captions)} sentences, expected {CAPTIONS_PER_IMAGE}"
            )
        keywords = _string_list(entry.get("keywords", []), f"{where}.keywords", path)
        objects = _objects(entry.get("objects", []), where, path) if with_objects else None
        record = ImageRecord(filename, captions, index, keywords, objects)
        splits.setdefault(split, []).append(record)
    return {name: splits[name] for name in ordered_splits(splits)}


#: NWPU-Captions keeps its five sentences of an image in these fields of one record.
NWPU_CAPTION_FIELDS = ("raw", "raw_1", "raw_2", "raw_3", "raw_4")


def read_nwpu_json(path: Path, with_objects: bool = False) -> dict[str, list[ImageRecord]]:
    """Parse NWPU-Captions' `dataset_nwpu.json`: `{class: [{filename, split, raw, raw_1 ... raw_4, ...}]}`.

    Images live in one folder per class (`<class>/<filename>`), so that is the record's file name;
    the class is the scene. `image_id` is the position in the file (classes in file order).
    """
    document = _load_json(path)
    if not isinstance(document, dict) or not document:
        raise DatasetFormatError(f"{path}: expected an object mapping each class to its images")
    splits: dict[str, list[ImageRecord]] = {}
    index = 0
    for category, rows in document.items():
        if not isinstance(rows, list):
            raise DatasetFormatError(
                f"{path}: class {category!r} must map to a list of images, got {type(rows).__name__}"
            )
        for k, entry in enumerate(rows):
            where = f"{category}[{k}]"
            filename = _filename(_require(entry, "filename", where, path), where, path)
            split = _require(entry, "split", where, path)
            captions = _string_list(
                [_require(entry, key, where, path) for key in NWPU_CAPTION_FIELDS], f"{where}.raw*", path
            )
            splits.setdefault(split, []).append(
                ImageRecord(f"{category}/{filename}", captions, index, category=category)
            )
            index += 1
    return {name: splits[name] for name in ordered_splits(splits)}


def read_rsicap_json(path: Path, with_objects: bool = False) -> dict[str, list[ImageRecord]]:
    """Parse RSICap's `captions.json`: `{"annotations": [{image_id, filename, text_input, text_output}]}`.

    One long caption (`text_output`) per image and no splits: every image is in `train`. The
    `text_input` instruction is not a caption and is dropped. File names (DOTA tile ids such as
    `P0378_0001.png`) carry no scene class.
    """
    annotations = _require(_load_json(path), "annotations", "the top level", path)
    if not isinstance(annotations, list) or not annotations:
        raise DatasetFormatError(f"{path}: 'annotations' must be a non-empty list")
    records = []
    for index, entry in enumerate(annotations):
        where = f"annotations[{index}]"
        filename = _filename(_require(entry, "filename", where, path), where, path)
        caption = _string_list([_require(entry, "text_output", where, path)], f"{where}.text_output", path)
        records.append(ImageRecord(filename, caption, index, category=UNKNOWN_SCENE))
    return {"train": records}


# --------------------------------------------------------------------------------- precomp layout


def _read_lines(path: Path) -> list[str]:
    """Lines split on `\\n` only (a caption may hold any other Unicode), blank lines kept."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DatasetFormatError(f"{path}: not UTF-8 ({err})") from None
    if text.endswith("\n"):
        text = text[:-1]
    return [line.removesuffix("\r") for line in text.split("\n")] if text else []


def precomp_splits(directory: Path) -> list[str]:
    """Split names that have a `{split}_caps.txt` in `directory`."""
    return ordered_splits(p.name.removesuffix("_caps.txt") for p in Path(directory).glob("*_caps.txt"))


def _precomp_filenames(names: list[str], num_captions: int, names_path: Path) -> list[str]:
    """One name per image, whichever of the two file-name layouts `names` uses."""
    num_images = num_captions // CAPTIONS_PER_IMAGE
    for line, name in enumerate(names, start=1):
        if not name.strip():
            raise DatasetFormatError(f"{names_path}: line {line} is blank (expected an image file name)")
    if len(names) == num_images:
        return [n.strip() for n in names]
    if len(names) == num_captions:
        per_image = [n.strip() for n in names[::CAPTIONS_PER_IMAGE]]
        for line, name in enumerate(names):
            if name.strip() != per_image[line // CAPTIONS_PER_IMAGE]:
                first = line - line % CAPTIONS_PER_IMAGE + 1
                raise CaptionCountError(
                    f"{names_path}: line {line + 1} names {name.strip()!r} but lines {first}-"
                    f"{first + CAPTIONS_PER_IMAGE - 1} belong to one image ({per_image[line // CAPTIONS_PER_IMAGE]!r})"
                )
        return per_image
    raise CaptionCountError(
        f"{names_path}: {len(names)} file names for {num_captions} captions; expected {num_images} "
        f"(one per image) or {num_captions} (one per caption)"
    )


def read_precomp(directory: Path) -> dict[str, list[ImageRecord]]:
    """Parse every `{split}_caps.txt` + `{split}_filename.txt` pair; ids run on across splits."""
    directory = Path(directory)
    splits: dict[str, list[ImageRecord]] = {}
    next_id = 0
    for split in precomp_splits(directory):
        caps_path, names_path = directory / f"{split}_caps.txt", directory / f"{split}_filename.txt"
        if not names_path.is_file():
            raise DatasetNotFoundError(f"{caps_path} has no matching file-name list {names_path.name}")
        captions = _read_lines(caps_path)
        if not captions or len(captions) % CAPTIONS_PER_IMAGE:
            raise CaptionCountError(
                f"{caps_path}: {len(captions)} caption lines, expected a positive multiple of {CAPTIONS_PER_IMAGE}"
            )
        filenames = _precomp_filenames(_read_lines(names_path), len(captions), names_path)
        splits[split] = [
            ImageRecord(name, captions[k * CAPTIONS_PER_IMAGE : (k + 1) * CAPTIONS_PER_IMAGE], next_id + k)
            for k, name in enumerate(filenames)
        ]
        next_id += len(filenames)
    return splits


# ---------------------------------------------------------------------------------- image checks


def resolve_image_dir(data_dir: Path, image_dir: str | os.PathLike | None) -> Path:
    """`image_dir` if given, else the first of `images/`, `imgs/` in `data_dir`, else `data_dir`."""
    if image_dir is not None:
        return Path(image_dir).resolve()
    for name in IMAGE_DIR_NAMES:
        if (data_dir / name).is_dir():
            return (data_dir / name).resolve()
    return Path(data_dir).resolve()


def _image_problem(path: Path, level: str) -> str | None:
    """None if the image reads at `level`. `verify` also decodes a file whose data looks cut off
    (`_looks_truncated`): PIL's verify() checks headers only, so a truncated JPEG or TIFF passes it."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            decode = level != "verify" or _looks_truncated(image, path)
            if level == "verify":
                image.verify()
        if decode:
            with Image.open(path) as image:
                image.load()
    except Exception as err:  # PIL raises many types for bad files; all mean "unreadable"
        return f"{type(err).__name__}: {err}"
    return None


def _looks_truncated(image, path: Path) -> bool:
    """Cheap end-of-data checks: a JPEG ends with the EOI marker FF D9 (some writers pad with zeros
    or newlines); a TIFF's strips or tiles lie inside the file."""
    size = path.stat().st_size
    if image.format == "JPEG":
        with open(path, "rb") as handle:
            handle.seek(max(0, size - 64))
            return not handle.read().rstrip(b"\x00\r\n ").endswith(b"\xff\xd9")
    if image.format == "TIFF":
        tags = image.tag_v2
        for offsets, counts in ((273, 279), (324, 325)):  # StripOffsets/ByteCounts, TileOffsets/ByteCounts
            if offsets in tags and counts in tags:
                ends = [
                    o + c
                    for o, c in zip(*(t if isinstance(t, tuple) else (t,) for t in (tags[offsets], tags[counts])))
                ]
                return max(ends, default=0) > size
    return False


def check_images(filenames: Sequence[str], image_dir: Path, level: str = "verify", workers: int = 4) -> None:
    """Fail if an image is missing (`exists`) or unreadable (`verify`: header/CRC, `decode`: full)."""
    if level not in IMAGE_CHECKS:
        raise ValueError(f"image_check must be one of {IMAGE_CHECKS}, got {level!r}")
    if level == "none":
        return
    if not image_dir.is_dir():
        raise MissingImageError(f"image folder {image_dir} does not exist ({len(filenames)} images expected there)")
    present = set(os.listdir(image_dir))
    missing = [name for name in filenames if name not in present and not (image_dir / name).is_file()]
    if missing:
        named = ", ".join(missing[:_MAX_NAMED]) + (" ..." if len(missing) > _MAX_NAMED else "")
        raise MissingImageError(f"{len(missing)} of {len(filenames)} images are missing from {image_dir}: {named}")
    if level == "exists":
        return
    paths = [image_dir / name for name in filenames]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        problems = list(pool.map(lambda p: _image_problem(p, level), paths))
    bad = [(path, problem) for path, problem in zip(paths, problems) if problem]
    if bad:
        named = "; ".join(f"{path} ({problem})" for path, problem in bad[:_MAX_NAMED])
        raise CorruptImageError(f"{len(bad)} image file(s) cannot be read: {named}")
