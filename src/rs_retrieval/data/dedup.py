"""Exact and near-duplicate images within and across image sets, by perceptual hash.

RSICD, RSITMD and UCM-Captions share images, so a model trained on one set's training split can
have seen another set's test images (the leakage RemoteCLIP and GeoRSCLIP removed before training
with perceptual hashes). Each image is hashed once (`imagehash.phash`, 64 bits: DCT of a 32 x 32
grey thumbnail, low 8 x 8 frequencies against their median); with `rotations=True` the thumbnail's
four 90-degree rotations are hashed too, and a pair's distance is the smallest Hamming distance
between one side's rotations and the other side's upright hash. Pairs are found by comparing packed
64-bit hashes in blocks with NumPy (XOR + popcount), never by a Python loop over pairs.

Precision and recall on planted duplicates (resized, JPEG-recompressed, cropped, rotated) against
re-drawn scenes of the same class are in docs/training-recipes.md; the default threshold (6 bits)
matched no near-miss there.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MissingExtraError, UsageError

#: Hamming distance (of 64 bits) at or below which two images count as duplicates.
DEFAULT_THRESHOLD = 6
#: Rows of hashes compared per block: bounds the temporary [rows, N] matrices to a few MB per 1000 images.
_BLOCK_ROWS = 256
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")


@dataclass(frozen=True)
class HashedImage:
    """Where an image comes from: its identifier, file, source and split."""

    id: str
    path: str
    source: str
    split: str


@dataclass(frozen=True)
class ImageHashes:
    """Hashes of a list of images: `upright[i]` and `rotated[r, i]` (r quarter turns) as uint64."""

    images: list[HashedImage]
    upright: np.ndarray
    rotated: np.ndarray
    digests: list[str]


def _imagehash():
    try:
        import imagehash
    except ImportError as err:
        raise MissingExtraError("duplicate search needs imagehash: pip install 'rs-retrieval[dedup]'") from err
    return imagehash


def _pack(bits: np.ndarray) -> int:
    return int(np.packbits(bits.astype(np.uint8).ravel()).view(">u8")[0])


def hash_image(path: str | os.PathLike, rotations: bool = True) -> tuple[list[int], str]:
    """([upright, 90, 180, 270 degree pHash] as ints, or [upright] alone; SHA-256 of the file bytes)."""
    from PIL import Image

    imagehash = _imagehash()
    data = Path(path).read_bytes()
    with Image.open(path) as image:
        image.draft("L", (64, 64))  # JPEG: decode at reduced size; the hash only sees 32 x 32
        # The same thumbnail imagehash.phash makes; rotating it equals hashing a rotated image.
        thumb = image.convert("L").resize((32, 32), Image.Resampling.LANCZOS)
    turns = (None, Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270)
    hashes = [
        _pack(imagehash.phash(thumb if turn is None else thumb.transpose(turn)).hash)
        for turn in turns[: 4 if rotations else 1]
    ]
    return hashes, hashlib.sha256(data).hexdigest()


def hash_images(
    images: Sequence[HashedImage], rotations: bool = True, workers: int = 4, progress: bool = True
) -> ImageHashes:
    """Hash every image once (threads: decoding and resizing release the GIL)."""
    from tqdm.auto import tqdm

    def one(image: HashedImage):
        try:
            return hash_image(image.path, rotations)
        except OSError as err:
            raise UsageError(f"cannot read image {image.path} ({image.source}/{image.split}): {err}") from err

    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = list(
            tqdm(pool.map(one, images), total=len(images), desc="hashing", unit="image", disable=not progress)
        )
    hashes = np.array([h for h, _ in results], dtype=np.uint64).reshape(len(images), 4 if rotations else 1)
    return ImageHashes(list(images), hashes[:, 0].copy(), hashes.T.copy(), [d for _, d in results])


def near_pairs(
    hashes: ImageHashes,
    threshold: int = DEFAULT_THRESHOLD,
    pair_filter: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, distance, quarter turns) of every pair i < j at Hamming distance <= threshold.

    The distance is the smallest over the rotations of image i against upright j. `pair_filter`
    (i, j) -> bool mask drops pairs before they are kept (e.g. only pairs across sources).
    """
    if not 0 <= threshold <= 64:
        raise UsageError(f"threshold must be a Hamming distance between 0 and 64 bits, got {threshold}")
    n = len(hashes.upright)
    found = [[], [], [], []]
    for start in range(0, n, _BLOCK_ROWS):
        stop = min(start + _BLOCK_ROWS, n)
        columns = np.arange(start + 1, n)  # j > i for every i in the block, masked below
        if not columns.size:
            continue
        distances = np.stack(
            [np.bitwise_count(rot[start:stop, None] ^ hashes.upright[None, columns]) for rot in hashes.rotated]
        )
        best_turn = distances.argmin(axis=0)
        best = np.take_along_axis(distances, best_turn[None], axis=0)[0]
        rows = np.arange(start, stop)[:, None]
        keep = (best <= threshold) & (columns[None, :] > rows)
        i, c = np.nonzero(keep)
        i, j = i + start, columns[c]
        if pair_filter is not None:
            mask = pair_filter(i, j)
            i, j, c = i[mask], j[mask], c[mask]
        found[0].append(i)
        found[1].append(j)
        found[2].append(best[i - start, c])
        found[3].append(best_turn[i - start, c])
    if not found[0]:
        return tuple(np.zeros(0, dtype=np.int64) for _ in range(4))
    i, j, distance, turns = (np.concatenate(part) for part in found)
    order = np.lexsort((j, i, distance))
    return i[order], j[order], distance[order].astype(np.int64), turns[order].astype(np.int64)


def folder_images(folder: str | os.PathLike, source: str | None = None) -> list[HashedImage]:
    """Every image file under `folder` (recursively, sorted), identified by its path relative to it."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise UsageError(f"{folder} is not a folder")
    name = source or root.name
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UsageError(f"{folder} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    return [HashedImage(f"{name}/{p.relative_to(root).as_posix()}", str(p), name, "") for p in files]


def dataset_images(dsdict, source: str) -> list[HashedImage]:
    """Every image of every split of a per-image `DatasetDict`, identified as `source/split/filename`."""
    import datasets

    images = []
    for split, ds in dsdict.items():
        paths = ds.cast_column("image", datasets.Image(decode=False))["image"]
        names = ds["filename"] if "filename" in ds.column_names else [Path(p["path"] or "").name for p in paths]
        for name, entry in zip(names, paths):
            if not entry.get("path"):
                raise UsageError(
                    f"{source}/{split}/{name}: the image is stored as bytes, not a file; export it to a folder first"
                )
            images.append(HashedImage(f"{source}/{split}/{name}", entry["path"], source, split))
    return images


def _side(image: HashedImage) -> dict:
    return {"id": image.id, "path": image.path, "source": image.source, "split": image.split}


def find_duplicates(
    images: Sequence[HashedImage],
    threshold: int = DEFAULT_THRESHOLD,
    rotations: bool = True,
    across_only: bool = False,
    workers: int = 4,
    progress: bool = True,
) -> dict:
    """Hash `images` and report every duplicate pair (JSON-ready; see `duplicate_report`)."""
    hashes = hash_images(images, rotations, workers, progress)
    return duplicate_report(hashes, threshold, across_only, rotations)


def duplicate_report(
    hashes: ImageHashes, threshold: int = DEFAULT_THRESHOLD, across_only: bool = False, rotations: bool = True
) -> dict:
    """`{"threshold", "hash", "images", "sources", "pairs": [...]}`; pairs closest first.

    Each pair: `a`, `b` (ids), `distance` (bits), `quarter_turns` (rotation of `a` that matched),
    `exact` (identical file bytes), `kind` ("within" or "across" sources) and `a_source`, `a_split`,
    `a_path` (same for `b`).
    """
    source_ids = {name: k for k, name in enumerate(dict.fromkeys(image.source for image in hashes.images))}
    source_of = np.array([source_ids[image.source] for image in hashes.images], dtype=np.int64)
    pair_filter = (lambda i, j: source_of[i] != source_of[j]) if across_only else None
    i, j, distance, turns = near_pairs(hashes, threshold, pair_filter)
    pairs = []
    for a, b, d, t in zip(i.tolist(), j.tolist(), distance.tolist(), turns.tolist()):
        left, right = hashes.images[a], hashes.images[b]
        pair = {
            "a": left.id,
            "b": right.id,
            "distance": d,
            "quarter_turns": t,
            "exact": hashes.digests[a] == hashes.digests[b],
            "kind": "within" if left.source == right.source else "across",
        }
        pair.update({f"a_{key}": value for key, value in _side(left).items() if key != "id"})
        pair.update({f"b_{key}": value for key, value in _side(right).items() if key != "id"})
        pairs.append(pair)
    return {
        "hash": "imagehash.phash 64-bit" + (", 4 rotations" if rotations else ""),
        "threshold": threshold,
        "images": len(hashes.images),
        "sources": {name: sum(1 for image in hashes.images if image.source == name) for name in source_ids},
        "pairs": pairs,
    }


def pairs_picture(pairs: Sequence[dict], limit: int = 12, thumb: int = 128):
    """A PIL image of the closest `limit` pairs, side by side, each row captioned with its distance."""
    from PIL import Image, ImageDraw, ImageOps

    shown = list(pairs)[:limit]
    label = 28  # two text lines: distance and a, then b
    width = 2 * thumb + 12
    canvas = Image.new("RGB", (width, max(1, len(shown)) * (thumb + label + 6) + 4), "white")
    draw = ImageDraw.Draw(canvas)
    if not shown:
        draw.text((4, 4), "no pairs at this threshold", fill="black")
        return canvas
    fits = width // 6 - 2  # characters of the default bitmap font per line

    def tail(text: str, room: int) -> str:
        return text if len(text) <= room else "..." + text[-(room - 3) :]

    for row, pair in enumerate(shown):
        top = 4 + row * (thumb + label + 6)
        head = f"d={pair['distance']}{' exact' if pair['exact'] else ''}{' rot' + str(90 * pair['quarter_turns']) if pair['quarter_turns'] else ''} a: "
        draw.text((4, top), head + tail(pair["a"], fits - len(head)), fill="black")
        draw.text((4, top + 13), "b: " + tail(pair["b"], fits - 3), fill="black")
        for column, key in enumerate(("a_path", "b_path")):
            with Image.open(pair[key]) as image:
                tile = ImageOps.contain(image.convert("RGB"), (thumb, thumb))
            canvas.paste(tile, (4 + column * (thumb + 4), top + label))
    return canvas


def duplicates_of(
    hashes: ImageHashes, targets: Iterable[int], threshold: int = DEFAULT_THRESHOLD
) -> dict[int, tuple[int, int]]:
    """For every image that duplicates one of `targets` (indices), its closest target and distance.

    Targets themselves are not listed. Used to drop training images that duplicate a test image.
    """
    target_mask = np.zeros(len(hashes.upright), dtype=bool)
    target_mask[list(targets)] = True
    i, j, distance, _ = near_pairs(hashes, threshold, lambda i, j: target_mask[i] != target_mask[j])
    closest: dict[int, tuple[int, int]] = {}
    for a, b, d in zip(i.tolist(), j.tolist(), distance.tolist()):  # closest first
        other, target = (a, b) if target_mask[b] else (b, a)
        closest.setdefault(other, (target, d))
    return closest
