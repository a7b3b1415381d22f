"""Duplicate search: planted copies (resized, JPEG, cropped, rotated) found, re-drawn scenes not; the CLI report."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from PIL import Image

from rs_retrieval.cli import main
from rs_retrieval.data import dedup
from rs_retrieval.data.synth import SYNTH_SCENES, render_image

KINDS = ("resize", "jpeg", "crop", "rot90")


def _variant(image: Image.Image, kind: str, folder, name: str) -> str:
    if kind == "jpeg":
        path = folder / f"{name}.jpg"
        image.convert("RGB").save(path, "JPEG", quality=60)
        return str(path)
    changed = {
        "resize": lambda: image.resize((160, 160), Image.Resampling.BILINEAR),
        "crop": lambda: image.crop((4, 4, 252, 252)),  # 1.6 % off each side
        "rot90": lambda: image.transpose(Image.Transpose.ROTATE_90),
    }[kind]()
    path = folder / f"{name}.png"
    changed.save(path)
    return str(path)


def planted_set(folder, originals: int = 16, near_misses: int = 16):
    """Originals (test), one planted copy of each (train, kinds in turn) and re-drawn scenes of the
    same classes (train, near-misses). Returns (images, {copy id: original id})."""
    (folder / "test").mkdir(parents=True)
    (folder / "train").mkdir()
    images, planted = [], {}
    for k in range(originals):
        image, _ = render_image(SYNTH_SCENES[k % len(SYNTH_SCENES)], random.Random(k), 256)
        path = folder / "test" / f"o{k}.png"
        image.save(path)
        images.append(dedup.HashedImage(f"o{k}", str(path), "originals", "test"))
        kind = KINDS[k % len(KINDS)]
        images.append(
            dedup.HashedImage(
                f"c{k}_{kind}", _variant(image, kind, folder / "train", f"c{k}_{kind}"), "copies", "train"
            )
        )
        planted[f"c{k}_{kind}"] = f"o{k}"
    for k in range(near_misses):
        image, _ = render_image(SYNTH_SCENES[k % len(SYNTH_SCENES)], random.Random(1000 + k), 256)
        path = folder / "train" / f"n{k}.png"
        image.save(path)
        images.append(dedup.HashedImage(f"n{k}", str(path), "copies", "train"))
    return images, planted


def precision_recall(report: dict, planted: dict[str, str]) -> tuple[float, float, dict[str, int]]:
    found = {(p["a"], p["b"]) for p in report["pairs"]} | {(p["b"], p["a"]) for p in report["pairs"]}
    hits = [copy for copy, original in planted.items() if (copy, original) in found]
    true_pairs = len(hits)
    precision = true_pairs / len(report["pairs"]) if report["pairs"] else 1.0
    per_kind = {kind: sum(copy.endswith(kind) for copy in hits) for kind in KINDS}
    return precision, true_pairs / len(planted), per_kind


@pytest.fixture(scope="module")
def hashed(tmp_path_factory):
    images, planted = planted_set(tmp_path_factory.mktemp("planted"))
    return dedup.hash_images(images, progress=False), planted


def test_default_threshold_finds_every_planted_copy_and_no_near_miss(hashed):
    hashes, planted = hashed
    report = dedup.duplicate_report(hashes, dedup.DEFAULT_THRESHOLD)
    precision, recall, per_kind = precision_recall(report, planted)
    # 16 copies, 4 of each kind; 16 re-drawn scenes of the same classes must not match. Crops are
    # the hard case of a global hash: one of the four (o6, distance 10) stays above the threshold.
    assert precision == 1.0 and per_kind == {"resize": 4, "jpeg": 4, "crop": 3, "rot90": 4}, report["pairs"]
    assert recall == 15 / 16
    rotated = next(p for p in report["pairs"] if "rot90" in p["a"] + p["b"])
    assert rotated["quarter_turns"] in (1, 3) and rotated["kind"] == "across"
    assert rotated["a_split"] == "test" and rotated["b_split"] == "train"


def test_rotations_off_misses_the_rotated_copies(hashed):
    hashes, planted = hashed
    upright = dedup.ImageHashes(hashes.images, hashes.upright, hashes.upright[None], hashes.digests)
    _, _, per_kind = precision_recall(
        dedup.duplicate_report(upright, dedup.DEFAULT_THRESHOLD, rotations=False), planted
    )
    assert per_kind["rot90"] == 0 and per_kind["resize"] == 4


def test_a_loose_threshold_matches_near_misses(hashed):
    hashes, planted = hashed
    precision, recall, _ = precision_recall(dedup.duplicate_report(hashes, 20), planted)
    assert recall == 1.0 and precision < 1.0  # the near-misses are close enough to be confused


def test_near_pairs_equals_brute_force_on_random_hashes():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2**63, 60, dtype=np.uint64)
    flips = np.uint64(1) << rng.integers(0, 64, 60).astype(np.uint64)
    upright = np.concatenate([base, base[:30] ^ flips[:30]])  # 30 pairs at distance 1
    rotated = np.stack([upright, rng.integers(0, 2**63, 90, dtype=np.uint64), upright[::-1].copy(), upright])
    images = [dedup.HashedImage(str(k), "", "s", "") for k in range(90)]
    hashes = dedup.ImageHashes(images, upright, rotated, [""] * 90)
    i, j, distance, _ = dedup.near_pairs(hashes, 12)
    expected = set()
    for a in range(90):
        for b in range(a + 1, 90):
            d = min((int(rotated[r, a]) ^ int(upright[b])).bit_count() for r in range(4))
            if d <= 12:
                expected.add((a, b, d))
    assert set(zip(i.tolist(), j.tolist(), distance.tolist())) == expected
    assert len(expected) >= 30 and np.all(np.diff(distance) >= 0)


def test_dedup_command_writes_report_and_picture(hashed, tmp_path, capsys):
    hashes, _ = hashed
    root = tmp_path.parent / hashes.images[0].path.split("/")[-3]
    out = tmp_path / "report.json"
    assert (
        main(
            [
                "data",
                "dedup",
                str(root / "test"),
                str(root / "train"),
                "--out",
                str(out),
                "--across-only",
                "--no-progress",
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    assert report["threshold"] == dedup.DEFAULT_THRESHOLD and report["images"] == 48
    assert len(report["pairs"]) == 15 and {p["kind"] for p in report["pairs"]} == {"across"}
    assert {p["a_source"] for p in report["pairs"]} == {"test"} and all(
        p["b"].startswith("train/") for p in report["pairs"]
    )
    with Image.open(tmp_path / "report.png") as picture:
        assert picture.size[1] > 12 * 128
    assert main(["data", "dedup", str(root / "test"), "--out", str(out), "--threshold", "65"]) == 2
    assert "threshold must be" in capsys.readouterr().err
