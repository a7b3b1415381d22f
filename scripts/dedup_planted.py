"""Precision and recall of `rs-retrieval data dedup` on planted duplicates (docs/training-recipes.md).

Originals are rs_synth scenes; each gets one planted copy (resized to 160 px, JPEG quality 60,
cropped by 4 px on every side, or rotated by 90 degrees, in turn); near-misses are re-drawn scenes of
the same classes. A pair counts as found when the report holds (copy, its original); every other
reported pair is a false match.

    PYTHONPATH=src python scripts/dedup_planted.py --originals 64 --near-misses 64
"""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path

from PIL import Image

from rs_retrieval.data import dedup
from rs_retrieval.data.synth import SYNTH_SCENES, render_image

KINDS = ("resize", "jpeg", "crop", "rot90")


def planted(folder: Path, originals: int, near_misses: int):
    images, copies = [], {}
    for k in range(originals):
        image, _ = render_image(SYNTH_SCENES[k % len(SYNTH_SCENES)], random.Random(k), 256)
        image.save(folder / f"o{k}.png")
        images.append(dedup.HashedImage(f"o{k}", str(folder / f"o{k}.png"), "test", "test"))
        kind = KINDS[k % len(KINDS)]
        name = f"c{k}_{kind}"
        if kind == "jpeg":
            path = folder / f"{name}.jpg"
            image.convert("RGB").save(path, "JPEG", quality=60)
        else:
            path = folder / f"{name}.png"
            {
                "resize": lambda image=image: image.resize((160, 160), Image.Resampling.BILINEAR),
                "crop": lambda image=image: image.crop((4, 4, 252, 252)),
                "rot90": lambda image=image: image.transpose(Image.Transpose.ROTATE_90),
            }[kind]().save(path)
        images.append(dedup.HashedImage(name, str(path), "train", "train"))
        copies[name] = f"o{k}"
    for k in range(near_misses):
        image, _ = render_image(SYNTH_SCENES[k % len(SYNTH_SCENES)], random.Random(1000 + k), 256)
        image.save(folder / f"n{k}.png")
        images.append(dedup.HashedImage(f"n{k}", str(folder / f"n{k}.png"), "train", "train"))
    return images, copies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--originals", type=int, default=64)
    parser.add_argument("--near-misses", type=int, default=64)
    parser.add_argument("--thresholds", type=int, nargs="+", default=[2, 4, 6, 8, 10, 12])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        images, copies = planted(Path(tmp), args.originals, args.near_misses)
        hashes = dedup.hash_images(images, progress=False)
    print(
        f"{args.originals} planted copies ({args.originals // 4} of each "
        f"kind), {args.near_misses} near-misses, {len(images)} images"
    )
    print("| threshold | precision | recall | " + " | ".join(f"{kind} found" for kind in KINDS) + " | false matches |")
    print("|--:|--:|--:|" + "--:|" * len(KINDS) + "--:|")
    for threshold in args.thresholds:
        pairs = dedup.duplicate_report(hashes, threshold)["pairs"]
        found = {(p["a"], p["b"]) for p in pairs} | {(p["b"], p["a"]) for p in pairs}
        hits = [copy for copy, original in copies.items() if (copy, original) in found]
        precision = len(hits) / len(pairs) if pairs else 1.0
        per_kind = " | ".join(f"{sum(h.endswith(kind) for h in hits)}/{args.originals // 4}" for kind in KINDS)
        default = " (default)" if threshold == dedup.DEFAULT_THRESHOLD else ""
        print(
            f"| {threshold}{default} | {precision:.3f} | "
            f"{len(hits) / len(copies):.3f} | {per_kind} | {len(pairs) - len(hits)} |"
        )


if __name__ == "__main__":
    main()
