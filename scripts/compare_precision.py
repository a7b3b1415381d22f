#!/usr/bin/env python
"""Retrieval metrics of a saved model in float32 and in bfloat16, on one dataset split.

bf16 inference is only worth offering where it ranks exactly as float32 does: this prints both
metric sets, the time of each run and whether every R@K is identical.

    python scripts/compare_precision.py --model runs/amfmn_synth/model --dataset rs_synth --image-size 64
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from transformers import AutoModel, AutoProcessor

import rs_retrieval  # noqa: F401  (registers the methods)
from rs_retrieval.data import load_dataset
from rs_retrieval.evaluation.engine import evaluate_retrieval
from rs_retrieval.fileio import write_json_atomic


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="save_pretrained folder of a model and its processor")
    parser.add_argument("--dataset", default="rs_synth")
    parser.add_argument("--split", default="test")
    parser.add_argument("--image-size", type=int, help="rs_synth image size (the model's)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    options = {"image_size": args.image_size} if args.image_size else {}
    dataset = load_dataset(args.dataset, split=args.split, **options)
    processor = AutoProcessor.from_pretrained(args.model)
    results = {}
    for dtype in ("float32", "bfloat16"):
        model = AutoModel.from_pretrained(args.model).to(getattr(torch, dtype))
        tic = time.perf_counter()
        metrics = evaluate_retrieval(model, processor, dataset, batch_size=args.batch_size, progress=False)["none"]
        results[dtype] = {"seconds": round(time.perf_counter() - tic, 2), **metrics}
    recalls = [key for key in results["float32"] if "_R@" in key]
    results["identical_recalls"] = all(results["float32"][k] == results["bfloat16"][k] for k in recalls)
    for dtype in ("float32", "bfloat16"):
        row = results[dtype]
        print(f"{dtype:9s} " + " ".join(f"{k}={row[k]:.2f}" for k in (*recalls, "mR")) + f" ({row['seconds']} s, ties {row['tie_policy']})")
    print("identical R@K:", results["identical_recalls"])
    if args.json:
        write_json_atomic(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
