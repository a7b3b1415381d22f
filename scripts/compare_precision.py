#!/usr/bin/env python
"""The quality gate of the inference precisions: a saved model's retrieval metrics at fp32, bf16
and int8 on one dataset split (and the zero-shot top-1 on rs_synth's scenes with --zeroshot),
with the embedding cosine against fp32 and whether mR moved by at most 0.5 points.

    python scripts/compare_precision.py --model runs/clip_synth/model --image-size 64 --zeroshot
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile

from rs_retrieval.data import load_dataset
from rs_retrieval.fileio import write_json_atomic
from rs_retrieval.precision import PRECISIONS
from rs_retrieval.precision_gate import compare_precisions


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="save_pretrained folder of a model and its processor")
    parser.add_argument("--dataset", default="rs_synth")
    parser.add_argument("--split", default="test")
    parser.add_argument("--image-size", type=int, help="rs_synth image size (the model's)")
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    parser.add_argument(
        "--zeroshot", action="store_true", help="also the zero-shot top-1 on rs_synth's test scenes (CLIP family)"
    )
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    options = {"image_size": args.image_size} if args.image_size else {}
    dataset = load_dataset(args.dataset, split=args.split, **options)
    with tempfile.TemporaryDirectory() as scratch:
        zeroshot = {}
        if args.zeroshot:
            from rs_retrieval.zeroshot.evaluate import rs_synth_image_folder

            zeroshot = {
                "zeroshot_dir": rs_synth_image_folder(f"{scratch}/zeroshot", split=args.split, **options),
                "class_set": "rs_synth",
            }
        rows = compare_precisions(args.model, dataset, args.precisions, batch_size=args.batch_size, **zeroshot)
    for precision, row in rows.items():
        recalls = " ".join(f"{k}={v:.2f}" for k, v in row.items() if "_R@" in k)
        extra = (
            f" mR change {row['mR_change']:+.2f} (gate {'met' if row['gate'] else 'NOT met'}), cosine "
            f"image {row['image_cosine']['min']:.4f} / text {row['text_cosine']['min']:.4f} (min)"
            if "gate" in row
            else ""
        )
        top1 = f" zero-shot top-1 {row['zeroshot_top1']:.2f}" if "zeroshot_top1" in row else ""
        print(f"{precision:5s} {recalls} mR={row['mR']:.2f}{top1}{extra} ({row['seconds']} s)")
    if args.json:
        write_json_atomic(args.json, rows)
    print(json.dumps({"model": args.model, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
