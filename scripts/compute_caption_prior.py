#!/usr/bin/env python
"""Compute the prior caption-similarity matrix P[image, caption] for AMFMN's dynamic margin.

    python scripts/compute_caption_prior.py --captions data/rsitmd/train_caps.txt --out rsitmd_train_prior.npy
    python scripts/compute_caption_prior.py --dataset rs_synth --split train --out synth_prior.npy

Captions are in image order, `--captions-per-image` consecutive lines per image (the precomp
layout). The matrix (float32 .npy) is loaded in training with
`rs_retrieval.training.caption_prior.PrecomputedCaptionPrior.load(path)`; `CaptionPriorSimilarity` computes the
same values per batch without this step.
"""

import argparse
import sys
import time

from rs_retrieval.training.caption_prior import CaptionPriorSimilarity, save_caption_prior


def read_captions(args) -> list[str]:
    if args.captions:
        with open(args.captions, encoding="utf-8") as handle:
            lines = handle.read().split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return lines
    from rs_retrieval.data import load_dataset

    rows = load_dataset(args.dataset, data_dir=args.data_dir, split=args.split)
    return [caption for captions in rows["captions"] for caption in captions]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--captions", help="caption file, one caption per line")
    source.add_argument(
        "--dataset", help="dataset name for rs_retrieval.data.load_dataset (rows with a `captions` list)"
    )
    parser.add_argument("--data-dir", help="dataset folder (with --dataset)")
    parser.add_argument("--split", default="train", help="dataset split (with --dataset)")
    parser.add_argument("--captions-per-image", type=int, default=5)
    parser.add_argument("--out", required=True, help="output .npy file")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        prior = CaptionPriorSimilarity(read_captions(args), captions_per_image=args.captions_per_image)
        path = save_caption_prior(prior.full_matrix(), args.out)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{path}: {prior.shape[0]} images x {prior.shape[1]} captions in {time.perf_counter() - start:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
