"""Index measurements with real models on rs_synth.

* `two-stage`: for each model (AMFMN, CMPAGL: pair-dependent scores), index the rs_synth test split
  (flat first stage) and answer every test caption with k = 10 exactly (K' = all images) and in two
  stages at each K'; reports recall@10 of the two-stage top 10 against the exact top 10 and the
  time per query.
* `encode`: encoding throughput (images/s, encode stage only, from the index manifest) of
  `rs-retrieval index build` over N rs_synth images with 1 process and with
  `accelerate launch --multi_gpu --num_processes 2` (CPU, gloo).

    python scripts/benchmark_index_models.py two-stage --model runs/amfmn_synth/model --model runs/cmpagl_synth/model
    python scripts/benchmark_index_models.py encode --model runs/amfmn_synth/model --images 5000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def two_stage(args) -> None:
    from rs_retrieval import load_model_and_processor
    from rs_retrieval.data import flatten_captions, load_dataset
    from rs_retrieval.index import RetrievalIndex

    captions = flatten_captions(load_dataset("rs_synth", split="test", image_size=args.image_size))["caption"][
        : args.queries
    ]
    print("| model | K' | recall@10 vs exact | ms / query | exact ms / query |\n|---|---|---|---|---|")
    for model_dir in args.model:
        model, processor = load_model_and_processor(model_dir)
        with tempfile.TemporaryDirectory() as tmp:
            index = RetrievalIndex.build(
                model,
                processor,
                Path(tmp) / "index",
                dataset="rs_synth",
                dataset_options={"image_size": args.image_size},
                progress=False,
            )
            start = time.perf_counter()
            exact = [[h.row for h in index.search(c, k=10, candidates=len(index))] for c in captions]
            exact_ms = 1000 * (time.perf_counter() - start) / len(captions)
            for k_prime in args.k_prime:
                start = time.perf_counter()
                found = [[h.row for h in index.search(c, k=10, candidates=k_prime)] for c in captions]
                ms = 1000 * (time.perf_counter() - start) / len(captions)
                recall = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact)])
                print(
                    f"| {type(model).__name__} ({len(index)} images, {len(captions)} "
                    f"captions) | {k_prime} | {recall:.3f} | {ms:.1f} | {exact_ms:.1f} |",
                    flush=True,
                )


def encode(args) -> None:
    from rs_retrieval.data.synth import generate_rs_synth

    root = generate_rs_synth(
        args.cache_dir, train_size=args.images, val_size=0, test_size=0, image_size=args.image_size
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    build = [
        "-m",
        "rs_retrieval.cli",
        "index",
        "build",
        "--model",
        args.model,
        "--images",
        str(root / "images"),
        "--batch-size",
        "64",
        "--out",
    ]
    launch = [sys.executable, *"-m accelerate.commands.launch --multi_gpu --num_processes 2 --num_machines 1".split()]
    launch += "--mixed_precision no --dynamo_backend no".split()
    print("| processes | images | encode s | images/s |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for processes, command in ((1, [sys.executable]), (2, launch)):
            out = Path(tmp) / f"index{processes}"
            subprocess.run([*command, *build, str(out)], check=True, env=env, capture_output=True)
            stats = json.loads((out / "index.json").read_text())["build"]
            print(
                f"| {processes} | {stats['encoded']} | {stats['seconds']:.1f} "
                f"| {stats['encoded'] / stats['seconds']:.0f} |",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("two-stage")
    p.add_argument("--model", action="append", required=True)
    p.add_argument("--k-prime", type=int, nargs="+", default=[20, 50])
    p.add_argument("--queries", type=int, default=500)
    p.add_argument("--image-size", type=int, default=64)
    p.set_defaults(func=two_stage)
    p = commands.add_parser("encode")
    p.add_argument("--model", required=True)
    p.add_argument("--images", type=int, default=5000)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--cache-dir", default=None)
    p.set_defaults(func=encode)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
