"""Data-quality statistics of a per-image dataset (sizes, blank captions, duplicate captions, scenes),
and the fingerprint an evaluation records of the data it scored (`describe_data`)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datasets


def split_report(dataset: datasets.Dataset) -> dict[str, Any]:
    """Statistics of one split (exact string comparison, as the benchmark scores captions)."""
    if "captions" not in dataset.column_names:
        raise ValueError(f"dataset_report needs a 'captions' column; got {dataset.column_names}")
    captions = dataset["captions"][:]
    filenames = (
        dataset["filename"][:] if "filename" in dataset.column_names else [f"row {i}" for i in range(len(captions))]
    )
    flat = [c for per_image in captions for c in per_image]
    blanks = [
        {"filename": name, "caption_index": k}
        for name, per_image in zip(filenames, captions)
        for k, caption in enumerate(per_image)
        if not caption.strip()
    ]
    images_of: dict[str, set[int]] = defaultdict(set)
    for row, per_image in enumerate(captions):
        for caption in per_image:
            images_of[caption].add(row)
    shared = {text: rows for text, rows in images_of.items() if len(rows) > 1}
    scene_feature = dataset.features.get("scene")
    scene_counts = (
        Counter(scene_feature.int2str(i) for i in dataset["scene"][:]) if hasattr(scene_feature, "int2str") else {}
    )
    return {
        "images": len(dataset),
        "captions": len(flat),
        "blank_captions": len(blanks),
        "blank_caption_files": blanks,
        "duplicates": {
            "distinct_captions": len(images_of),
            "captions_shared_across_images": sum(1 for c in flat if c in shared),
            "texts_shared_across_images": len(shared),
            "images_with_shared_text": len(set().union(*shared.values())) if shared else 0,
            "max_images_sharing_one_text": max((len(rows) for rows in shared.values()), default=1 if flat else 0),
        },
        "scenes": dict(sorted(scene_counts.items())),
    }


def dataset_report(dsdict: datasets.DatasetDict | datasets.Dataset) -> dict[str, dict[str, Any]]:
    """`{split: split_report(...)}` for every split (a single `Dataset` is reported under its split name)."""
    if not hasattr(dsdict, "keys"):
        dsdict = {str(dsdict.split or "data"): dsdict}
    return {name: split_report(ds) for name, ds in dsdict.items()}


def format_report(report: dict[str, dict[str, Any]], max_listed: int = 10) -> str:
    """Human-readable text of `dataset_report` for the command line."""
    lines = []
    for split, r in report.items():
        d = r["duplicates"]
        lines += [
            f"[{split}] {r['images']} images, {r['captions']} captions, {r['blank_captions']} blank",
            f"  duplicates: {d['distinct_captions']} distinct texts; {d['captions_shared_across_images']} captions "
            f"({d['texts_shared_across_images']} texts, {d['images_with_shared_text']} images) shared across images; "
            f"at most {d['max_images_sharing_one_text']} images share one text",
        ]
        lines += [
            f"  blank: {b['filename']} caption {b['caption_index']}" for b in r["blank_caption_files"][:max_listed]
        ]
        if r["blank_captions"] > max_listed:
            lines.append(f"  ... {r['blank_captions'] - max_listed} more blank captions")
        if r["scenes"]:
            lines.append("  scenes: " + ", ".join(f"{name} {n}" for name, n in r["scenes"].items()))
    return "\n".join(lines)


def describe_data(dataset, name: str, split: str, image_size: int | None) -> dict:
    """What was evaluated: name, split, size and a fingerprint of the images' bytes and the captions."""
    import datasets

    raw = dataset
    if isinstance(dataset.features.get("image"), datasets.Image):
        raw = dataset.cast_column("image", datasets.Image(decode=False))
    digest = hashlib.sha256()
    for row in raw:
        image = row.get("image")
        if isinstance(image, dict):
            image = image.get("bytes") or Path(image["path"]).read_bytes()
        elif isinstance(image, str):
            image = Path(image).read_bytes()
        digest.update(image if isinstance(image, bytes) else repr(image).encode("utf-8"))
        digest.update(json.dumps(row.get("captions", row.get("caption")), ensure_ascii=False).encode("utf-8"))
    return {
        "name": name,
        "split": split,
        "images": len(dataset),
        "image_size": image_size,
        "fingerprint": digest.hexdigest()[:16],
    }
