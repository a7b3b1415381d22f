"""Builders of tiny on-disk dataset sources (release JSON or precomp text + generated images) for tests."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

#: Per dataset: JSON name and file names in the style of the real release (split -> names).
STYLES = {
    "rsitmd": (
        "dataset_RSITMD.json",
        {"train": ["boat_0.tif", "boat_1.tif", "plane_2.tif"], "test": ["airport_3.tif", "boat_4.tif"]},
    ),
    "rsicd": (
        "dataset_rsicd.json",
        {
            "train": ["airport_1.jpg", "00001.jpg", "beach_7.jpg"],
            "val": ["00002.jpg"],
            "test": ["airport_348.jpg", "port_9.jpg"],
        },
    ),
    "ucm_captions": (
        "dataset.json",
        {"train": ["1.tif", "2.tif", "3.tif"], "val": ["4.tif"], "test": ["5.tif", "6.tif"]},
    ),
    "sydney_captions": ("dataset.json", {"train": ["1.tif", "2.tif"], "val": ["3.tif"], "test": ["4.tif", "5.tif"]}),
}


def captions_for(filename: str) -> list[str]:
    """Five distinct captions that name their image, the third one blank (blank captions are kept)."""
    return [f"caption {k} of {filename} ’" if k != 2 else "" for k in range(5)]


def write_image(path: Path, seed: int, size: int = 16) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def write_images(folder: Path, names: list[str], size: int = 16) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(names):
        write_image(folder / name, seed, size)


def release_document(splits: dict[str, list[str]], keywords: bool = False) -> dict:
    images, sentid = [], 0
    for split, names in splits.items():
        for name in names:
            entry = {
                "filename": name,
                "imgid": len(images),
                "split": split,
                "sentences": [
                    {"raw": c, "tokens": c.split(), "imgid": len(images), "sentid": sentid + k}
                    for k, c in enumerate(captions_for(name))
                ],
            }
            if keywords:
                entry["keywords"] = [name.split("_")[0], "water"]
            sentid += 5
            images.append(entry)
    return {"images": images}


def make_release(root: Path, dataset: str, image_dir: str | None = "images", keywords: bool | None = None) -> Path:
    """`root/<image_dir>/*` + the dataset's JSON; returns root."""
    json_name, splits = STYLES[dataset]
    root.mkdir(parents=True, exist_ok=True)
    keywords = dataset == "rsitmd" if keywords is None else keywords
    (root / json_name).write_text(json.dumps(release_document(splits, keywords)), encoding="utf-8")
    write_images(root / image_dir if image_dir else root, [n for names in splits.values() for n in names])
    return root


def write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def precomp_style(dataset: str) -> dict[str, list[str]]:
    """Split -> names of the precomp fixture; RSICD's precomp train merges the release's train and val."""
    splits = STYLES[dataset][1]
    if dataset == "rsicd":
        return {"train": splits["train"] + splits["val"], "test": splits["test"]}
    return splits


def make_precomp(root: Path, dataset: str, per_caption: tuple[str, ...] = ("test",), with_images: bool = True) -> Path:
    """`{split}_caps.txt` + `{split}_filename.txt` (one name per caption for `per_caption` splits)."""
    splits = precomp_style(dataset)
    root.mkdir(parents=True, exist_ok=True)
    for split, names in splits.items():
        write_lines(root / f"{split}_caps.txt", [c for n in names for c in captions_for(n)])
        write_lines(
            root / f"{split}_filename.txt", [n for n in names for _ in range(5 if split in per_caption else 1)]
        )
    if with_images:
        write_images(root / "images", [n for names in splits.values() for n in names])
    return root


#: (member, split, file) -> (member, file) of the test image it copies, and how.
PLANTED = {
    ("rsitmd", "train", "boat_1.tif"): (
        ("rsicd", "airport_348.jpg"),
        "jpeg",
    ),  # RSITMD train holds an RSICD test image
    ("rsicd", "train", "beach_7.jpg"): (
        ("rsitmd", "airport_3.tif"),
        "rot90",
    ),  # RSICD train holds an RSITMD test image
    ("rsicd", "val", "00002.jpg"): (("ucm_captions", "5.tif"), "resize"),  # RSICD val holds a UCM test image
    ("ucm_captions", "train", "2.tif"): (("ucm_captions", "6.tif"), "same"),  # a set leaking into its own test split
}


def make_combined_members(root: Path, size: int = 128) -> Path:
    """`root/{rsicd,rsitmd,ucm_captions}` in their release layouts with rs_synth scenes as images
    (scene classes recur across sets: near-misses) and the `PLANTED` test duplicates."""
    from rs_retrieval.data.synth import SYNTH_SCENES, render_image

    def render(seed: int) -> Image.Image:
        return render_image(SYNTH_SCENES[seed % len(SYNTH_SCENES)], random.Random(seed), size)[0].convert("RGB")

    originals = {}
    for number, member in enumerate(("rsicd", "rsitmd", "ucm_captions")):
        folder = make_release(root / member, member)
        for k, name in enumerate(n for names in STYLES[member][1].values() for n in names):
            image = render(100 * number + k)
            originals[(member, name)] = image
            image.save(folder / "images" / name, format="JPEG" if name.endswith(".jpg") else "TIFF")
    for (member, _, name), (target, how) in PLANTED.items():
        image = originals[target]
        copy = {
            "jpeg": image,
            "rot90": image.transpose(Image.Transpose.ROTATE_90),
            "resize": image.resize((size * 3 // 4,) * 2),
            "same": image,
        }[how]
        copy.save(
            root / member / "images" / name,
            format="JPEG" if name.endswith(".jpg") else "TIFF",
            **({"quality": 70} if how == "jpeg" else {}),
        )
    return root


def make_nwpu(root: Path) -> Path:
    """NWPU-Captions' layout: `dataset_nwpu.json` ({class: [{filename, imgid, split, raw, raw_1..raw_4,
    sentids, sentids_1..sentids_4}]}) and `NWPU_images/<class>/<filename>`."""
    document, sentid, imgid = {}, 0, 0
    for category, splits in (("airplane", ("train", "test")), ("bridge", ("train", "val", "test"))):
        rows = []
        for k, split in enumerate(splits, start=1):
            name = f"{category}_{k:03d}.jpg"
            row = {"filename": name, "imgid": imgid, "split": split}
            for j, caption in enumerate(captions_for(name)):
                suffix = "" if j == 0 else f"_{j}"
                row[f"raw{suffix}"], row[f"sentids{suffix}"] = caption, sentid
                sentid += 1
            rows.append(row)
            imgid += 1
            write_images(root / "NWPU_images" / category, [name])
        document[category] = rows
    (root / "dataset_nwpu.json").write_text(json.dumps(document), encoding="utf-8")
    return root


def make_rsicap(root: Path, names: tuple[str, ...] = ("P0378_0001.png", "P1077_0002.png", "P1140_0085.png")) -> Path:
    """RSICap's layout: `captions.json` ({"annotations": [{image_id, filename, text_input, text_output}]}) + `images/`."""
    annotations = [
        {
            "image_id": str(k),
            "filename": name,
            "text_input": "Describe this image in detail.",
            "text_output": f"This is an aerial image {name}. A long description.",
        }
        for k, name in enumerate(names)
    ]
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "captions.json").write_text(json.dumps({"annotations": annotations}), encoding="utf-8")
    write_images(root / "images", list(names))
    return root
