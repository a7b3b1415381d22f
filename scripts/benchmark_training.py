#!/usr/bin/env python
"""Training throughput (image-caption pairs per second) of each method at its FULL-size config.

For every method it builds the reference-size model (random weights: the speed does not depend on
them) with a vocabulary from rs_synth captions, takes batches of rs_synth pairs through the
trainer's collate function (training augmentation included), and times forward + loss +
backward + optimizer step. Methods that are not registered are reported as skipped. Next to the
model throughput it prints the achieved GFLOP/s of the training step (FLOPs of forward + backward
counted on the warm-up step) and the machine's fp32/bf16 GEMM throughput.

The process runs as `rs-retrieval train` does (`rs_retrieval.runtime.tune_malloc`; turn it off
with --no-malloc-tuning to see what it gives), in fp32 or, with --mixed-precision bf16, under the
CPU autocast that `training.mixed_precision: bf16` uses.

    python scripts/benchmark_training.py --batch-size 16 32 --steps 3 [--methods amfmn msa] [--output bench.json]
    python scripts/benchmark_training.py --batch-size 16 --mixed-precision bf16
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import torch
from benchmark_models import count_flops, gemm_gflops  # scripts/ is on sys.path when a script runs

from rs_retrieval import list_methods
from rs_retrieval.data import flatten_captions, load_dataset
from rs_retrieval.fileio import write_json_atomic
from rs_retrieval.runtime import tune_malloc
from rs_retrieval.training import load_recipe
from rs_retrieval.training.data import build_train_loader
from rs_retrieval.training.model_setup import build_model_and_processor
from rs_retrieval.training.optim import build_optimizer

BENCHMARKED_METHODS = ("amfmn", "galr", "msa", "cmpagl")
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
#: Config fields kept from the synth recipe: GaLR's object graph needs node_dim >= 23 on rs_synth
#: (10 categories + 8 colours + 5 box numbers; 20 in the official DREA files). Everything else
#: is the method's default (reference) size.
KEEP_FIELDS = {"galr": ("num_nodes", "node_dim", "gcn_dims")}


def full_size_recipe(method: str, batch_size: int):
    # (--mixed-precision sets the autocast; "no" here also lets trees before `auto` read the recipe)
    recipe = load_recipe(CONFIGS / f"{method}_synth.yaml", ["training.mixed_precision=no"])
    keep = KEEP_FIELDS.get(method, ())
    model = dataclasses.replace(recipe.model, config={k: v for k, v in recipe.model.config.items() if k in keep})
    options = {k: v for k, v in recipe.processor.options.items() if k.startswith("object_")}
    processor = dataclasses.replace(recipe.processor, options=options)
    training = dataclasses.replace(recipe.training, batch_size=batch_size)
    return dataclasses.replace(recipe, model=model, processor=processor, training=training)


def benchmark(method: str, flat, batch_size: int, steps: int, mixed_precision: str = "no") -> dict:
    recipe = full_size_recipe(method, batch_size)
    torch.manual_seed(0)
    model, processor = build_model_and_processor(recipe, flat["caption"])
    optimizer = build_optimizer(model, recipe.training)
    loader, _, _ = build_train_loader(flat, processor, batch_size, seed=0, loss_input_names=model.loss_input_names)
    batches = iter(loader)
    model.train()

    def forward_backward(batch):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mixed_precision == "bf16"):
            loss = model(**batch, return_loss=True).loss
        loss.backward()

    data_time = step_time = 0.0
    flops_per_pair = 0.0
    for index in range(steps + 1):  # the first step warms up, counts the FLOPs and is not timed
        start = time.perf_counter()
        batch = next(batches)
        loaded = time.perf_counter()
        if index == 0:
            flops_per_pair = count_flops(forward_backward, batch) / batch_size
        else:
            forward_backward(batch)
        optimizer.step()
        optimizer.zero_grad()
        done = time.perf_counter()
        if index:
            data_time += loaded - start
            step_time += done - loaded
    pairs = steps * batch_size
    return {
        "parameters_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "image_size": int(batch["pixel_values"].shape[-1]),
        "model_pairs_per_s": round(pairs / step_time, 2),
        "step_gflop_per_pair": round(flops_per_pair / 1e9, 2),
        "model_gflops_per_s": round(flops_per_pair * pairs / step_time / 1e9, 1),
        "data_pairs_per_s": round(pairs / data_time, 2),
        "train_pairs_per_s": round(pairs / (step_time + data_time), 2),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(BENCHMARKED_METHODS))
    parser.add_argument("--batch-size", type=int, nargs="+", default=[8], help="one run per batch size")
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--mixed-precision", choices=["no", "bf16"], default="no", help="as training.mixed_precision")
    parser.add_argument("--no-malloc-tuning", action="store_true", help="keep the C library's allocator settings")
    parser.add_argument(
        "--api",
        action="store_true",
        help="a Python-API user's process: the script does not tune the allocator (the package may, on its first model)",
    )
    parser.add_argument("--output", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if args.no_malloc_tuning:
        os.environ["RS_RETRIEVAL_MALLOC_TUNING"] = "0"  # nor the package on its own
    malloc_tuned = False if args.no_malloc_tuning or args.api else tune_malloc()
    if args.threads:
        torch.set_num_threads(args.threads)
    registered = list_methods()
    dataset = load_dataset(
        "rs_synth", train_size=max(4, (args.steps + 1) * max(args.batch_size) // 5 + 1), val_size=0, test_size=0
    )
    flat = flatten_captions(dataset["train"])
    gemm = {name: round(gemm_gflops(getattr(torch, name)), 1) for name in ("float32", "bfloat16")}
    print(
        f"GEMM 2048^3 GFLOP/s: {gemm} ({torch.get_num_threads()} threads, mixed precision {args.mixed_precision}, "
        f"malloc tuned: {malloc_tuned})",
        flush=True,
    )
    results = {
        "batch_sizes": args.batch_size,
        "steps": args.steps,
        "threads": torch.get_num_threads(),
        "gemm_gflops_per_s": gemm,
        "mixed_precision": args.mixed_precision,
        "malloc_tuned": malloc_tuned,
        "runs": [],
    }
    for batch_size in args.batch_size:
        for method in args.methods:
            if method not in registered:
                row = {"skipped": "not registered"}
            else:
                row = benchmark(method, flat, batch_size, args.steps, args.mixed_precision)
            results["runs"].append({"method": method, "batch_size": batch_size, **row})
            print(method, batch_size, json.dumps(row), flush=True)
    if args.output:
        write_json_atomic(args.output, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
