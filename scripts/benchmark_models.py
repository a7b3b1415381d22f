#!/usr/bin/env python
"""Inference benchmark of every registered retrieval method at its full-size default config.

For each method it reports images/s and captions/s through the encoders, the time of the score
matrix, and the end-to-end time to score a test set (default RSITMD: 452 images x 2,260 captions:
encode all images, encode all captions, then one `model.score`). Inputs are synthetic: random
pixels, random token ids with the word counts of the RSITMD test captions (4-27, mean 10.3; so
text batches pad as real ones do), or one fixed `--caption-length`; weights are random (speed
does not depend on them).

Next to each throughput it prints the achieved GFLOP/s of the encoder (FLOPs counted by
`torch.utils.flop_counter` on one batch) and the measured fp32/bf16 GEMM throughput of the
machine, so the distance to the hardware limit is visible.

    python scripts/benchmark_models.py                      # every method in BENCHMARKS, CPU
    python scripts/benchmark_models.py --methods amfmn --device cuda --json out.json
    python scripts/benchmark_models.py --dtype bfloat16     # bf16 weights and activations

To add a method, add a `BenchmarkEntry` to `BENCHMARKS` (its default config, and input builders
when it needs more than `pixel_values` / `input_ids` + `attention_mask`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoModel

import rs_retrieval.models  # noqa: F401  (registers the methods)
from rs_retrieval.fileio import write_json_atomic

try:
    from rs_retrieval.runtime import tune_malloc
except ImportError:  # an older tree (benchmark_before_after.py --before) has no runtime settings

    def tune_malloc() -> bool:
        return False


def default_image_inputs(config, count: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    size = config.image_size
    return {"pixel_values": torch.randn(count, 3, size, size, generator=generator)}


#: Word count -> number of captions, over the 2,260 RSITMD test captions.
RSITMD_CAPTION_LENGTHS = {
    4: 63,
    5: 84,
    6: 102,
    7: 253,
    8: 286,
    9: 289,
    10: 275,
    11: 203,
    12: 172,
    13: 141,
    14: 102,
    15: 82,
    16: 48,
    17: 50,
    18: 33,
    19: 27,
    20: 15,
    21: 15,
    22: 9,
    23: 6,
    24: 2,
    26: 2,
    27: 1,
}


def caption_lengths(count: int, generator: torch.Generator, fixed: int | None = None) -> torch.Tensor:
    """`count` caption lengths: `fixed`, or drawn from the RSITMD test distribution."""
    if fixed is not None:
        return torch.full((count,), fixed, dtype=torch.long)
    values = torch.tensor(list(RSITMD_CAPTION_LENGTHS))
    weights = torch.tensor(list(RSITMD_CAPTION_LENGTHS.values()), dtype=torch.float)
    return values[torch.multinomial(weights, count, replacement=True, generator=generator)]


def _right_padded(lengths: torch.Tensor, width: int) -> torch.Tensor:
    return (torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)).long()


def default_text_inputs(config, lengths: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Word-level captions: random ids, right-padded with id 0 to the batch's longest."""
    vocab_size = getattr(config, "vocab_size", None) or config.text_config.vocab_size
    mask = _right_padded(lengths, int(lengths.max()))
    return {"input_ids": torch.randint(1, vocab_size, mask.shape, generator=generator) * mask, "attention_mask": mask}


def galr_image_inputs(config, count: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    nodes = config.num_nodes
    return {
        **default_image_inputs(config, count, generator),
        "local_features": torch.rand(count, nodes, config.node_dim, generator=generator),
        "local_adjacency": torch.rand(count, nodes, nodes, generator=generator),
    }


def padded_text_inputs(config, lengths: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """BERT methods pad every caption to `config.max_text_len`; the words + [CLS]/[SEP] are real."""
    vocab_size = config.text_config.vocab_size
    ids = torch.randint(1, vocab_size, (len(lengths), config.max_text_len), generator=generator)
    return {
        "input_ids": ids,
        "attention_mask": _right_padded((lengths + 2).clamp(max=config.max_text_len), config.max_text_len),
    }


def swin_image_inputs(config, count: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    size = config.vision_config.image_size
    return {"pixel_values": torch.randn(count, 3, size, size, generator=generator)}


@dataclass
class BenchmarkEntry:
    """How to benchmark one method: its full-size config and its synthetic input builders."""

    config: Callable[[], object]
    image_inputs: Callable = default_image_inputs
    text_inputs: Callable = default_text_inputs


def _amfmn_config():
    from rs_retrieval.models.amfmn import AMFMNConfig

    return AMFMNConfig()


def _galr_config():
    from rs_retrieval.models.galr import GaLRConfig

    return GaLRConfig()


def _msa_config():
    from rs_retrieval.models.msa import MSAConfig

    return MSAConfig()


def _cmpagl_config():
    """Dual-encoder stage only (k=0) for the main row: the fusion re-rank is timed per k by
    `rerank_costs` (all of RSITMD at k=128 is ~350k fused pairs)."""
    from rs_retrieval.models.cmpagl import CMPAGLConfig

    return CMPAGLConfig(itm_k_test=0)


BENCHMARKS: dict[str, BenchmarkEntry] = {
    "amfmn": BenchmarkEntry(_amfmn_config),
    "galr": BenchmarkEntry(_galr_config, image_inputs=galr_image_inputs),
    "msa": BenchmarkEntry(_msa_config, text_inputs=padded_text_inputs),
    "cmpagl": BenchmarkEntry(_cmpagl_config, image_inputs=swin_image_inputs, text_inputs=padded_text_inputs),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gemm_gflops(dtype: torch.dtype = torch.float32, size: int = 2048, repeats: int = 5, device="cpu") -> float:
    """Best achieved GFLOP/s of a square `size` matmul: the machine's practical GEMM ceiling."""
    device = torch.device(device)
    a, b = (torch.randn(size, size, device=device).to(dtype) for _ in range(2))
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        tic = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - tic)
    return 2 * size**3 / best / 1e9


def count_flops(function, *args, **kwargs) -> int:
    """FLOPs of one call (matmuls, convolutions and attention, as `torch.utils.flop_counter` counts them)."""
    with FlopCounterMode(display=False) as counter:
        function(*args, **kwargs)
    return counter.get_total_flops()


def _encode_all(encode, make_inputs, total: int, batch: int, device, keys) -> tuple[dict[str, torch.Tensor], float]:
    """Encode `total` items in batches (inputs built outside the timer); returns (cache, seconds)."""
    parts, seconds = [], 0.0
    for start in range(0, total, batch):
        inputs = {k: v.to(device) for k, v in make_inputs(min(batch, total - start)).items()}
        _sync(device)
        tic = time.perf_counter()
        out = encode(**inputs)
        _sync(device)
        seconds += time.perf_counter() - tic
        parts.append({k: out[k] for k in keys})
    return {k: torch.cat([p[k] for p in parts]) for k in keys}, seconds


def rerank_costs(model, image_cache, text_cache, ks, sample_pairs: int, device) -> list[dict]:
    """Cost of a two-stage model's fusion re-rank for each k: candidate pairs of the whole test
    set, and the time to fuse them, measured on the first `sample_pairs` candidates and scaled."""
    similarity = model.similarity(image_cache["embeds"], text_cache["embeds"])
    rows = []
    for k in ks:
        if k == 0:
            rows.append({"k": 0, "pairs": 0, "measured_pairs": 0, "rerank_s": 0.0})
            continue
        candidates = torch.cat(model.rerank_pairs(similarity, k))
        pairs, measured = len(candidates), min(sample_pairs, len(candidates))
        _sync(device)
        tic = time.perf_counter()
        model.rerank(image_cache, text_cache, candidates[:measured])
        _sync(device)
        rows.append(
            {
                "k": k,
                "pairs": pairs,
                "measured_pairs": measured,
                "rerank_s": (time.perf_counter() - tic) * pairs / measured,
            }
        )
    return rows


@torch.inference_mode()
def benchmark(
    method: str,
    num_images: int,
    num_captions: int,
    caption_length: int | None,
    image_batch: int,
    text_batch: int,
    device: str,
    rerank_ks=(),
    rerank_sample_pairs: int = 1024,
    dtype: torch.dtype = torch.float32,
) -> dict:
    entry = BENCHMARKS[method]
    config = entry.config()
    device = torch.device(device)
    model = AutoModel.from_config(config).to(device=device, dtype=dtype).eval()
    generator = torch.Generator().manual_seed(0)

    def cast(inputs: dict) -> dict:
        return {k: v.to(dtype) if v.is_floating_point() else v for k, v in inputs.items()}

    images = lambda n: cast(entry.image_inputs(config, n, generator))
    texts = lambda n: cast(entry.text_inputs(config, caption_lengths(n, generator, caption_length), generator))
    flops_per_image = count_flops(model.encode_images, **{k: v.to(device) for k, v in images(2).items()}) / 2
    # Useful work per caption: two captions of the mean RSITMD length, so padding is not counted as throughput.
    mean_length = caption_length or round(
        sum(k * v for k, v in RSITMD_CAPTION_LENGTHS.items()) / sum(RSITMD_CAPTION_LENGTHS.values())
    )
    mean_captions = cast(entry.text_inputs(config, caption_lengths(2, generator, mean_length), generator))
    flops_per_caption = count_flops(model.encode_texts, **{k: v.to(device) for k, v in mean_captions.items()}) / 2
    # warm-up (allocator, kernels, lazy init)
    _encode_all(model.encode_images, images, min(2, num_images), image_batch, device, model.image_cache_keys)
    _encode_all(model.encode_texts, texts, min(2, num_captions), text_batch, device, model.text_cache_keys)
    image_cache, image_seconds = _encode_all(
        model.encode_images, images, num_images, image_batch, device, model.image_cache_keys
    )
    text_cache, text_seconds = _encode_all(
        model.encode_texts, texts, num_captions, text_batch, device, model.text_cache_keys
    )
    _sync(device)
    tic = time.perf_counter()
    scores = model.score(image_cache, text_cache)
    _sync(device)
    score_seconds = time.perf_counter() - tic
    if tuple(scores.shape) != (num_images, num_captions):
        raise RuntimeError(
            f"{method}: score matrix has shape {tuple(scores.shape)}, expected ({num_images}, {num_captions})"
        )
    rerank = []
    if rerank_ks and hasattr(model, "rerank_pairs"):
        rerank = rerank_costs(model, image_cache, text_cache, rerank_ks, rerank_sample_pairs, device)
    return {
        "method": method,
        "parameters": sum(p.numel() for p in model.parameters()),
        "images_per_s": num_images / image_seconds,
        "captions_per_s": num_captions / text_seconds,
        "image_gflops_per_s": flops_per_image * num_images / image_seconds / 1e9,
        "text_gflops_per_s": flops_per_caption * num_captions / text_seconds / 1e9,
        "image_gflop": flops_per_image / 1e9,
        "caption_gflop": flops_per_caption / 1e9,
        "dtype": str(dtype).removeprefix("torch."),
        "score_matrix_s": score_seconds,
        "test_set_s": image_seconds + text_seconds + score_seconds,
        "num_images": num_images,
        "num_captions": num_captions,
        "caption_length": caption_length or "rsitmd",
        "device": str(device),
        "threads": torch.get_num_threads(),
        "rerank": rerank,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=sorted(BENCHMARKS), choices=sorted(BENCHMARKS))
    parser.add_argument("--num-images", type=int, default=452)
    parser.add_argument("--num-captions", type=int, default=2260)
    parser.add_argument(
        "--caption-length", type=int, help="one length for every caption (default: RSITMD test word counts)"
    )
    parser.add_argument("--image-batch", type=int, default=32)
    parser.add_argument("--text-batch", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="weights and activations")
    parser.add_argument(
        "--rerank-k",
        type=int,
        nargs="*",
        default=[0, 16, 32, 64, 128],
        help="for two-stage methods (CMPAGL): fusion re-rank cost at each k (candidates per query)",
    )
    parser.add_argument(
        "--rerank-sample-pairs", type=int, default=1024, help="fused pairs timed per k (then scaled to all candidates)"
    )
    parser.add_argument(
        "--no-malloc-tuning", action="store_true", help="keep the C library's allocator settings (the CLI tunes them)"
    )
    parser.add_argument(
        "--api",
        action="store_true",
        help="a Python-API user's process: the script does not tune the allocator (the package may, on its first model)",
    )
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.no_malloc_tuning:
        os.environ["RS_RETRIEVAL_MALLOC_TUNING"] = "0"  # nor the package on its own
    malloc_tuned = False if args.no_malloc_tuning or args.api else tune_malloc()
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    gemm = {name: gemm_gflops(getattr(torch, name), device=args.device) for name in ("float32", "bfloat16")}
    print(
        f"GEMM 2048^3: float32 {gemm['float32']:.0f} GFLOP/s, bfloat16 {gemm['bfloat16']:.0f} GFLOP/s "
        f"({torch.get_num_threads()} threads, device {args.device}, malloc tuned: {malloc_tuned})",
        flush=True,
    )
    results = []
    print(
        "| method | params | images/s (GFLOP/s) | captions/s (GFLOP/s) | score matrix (s) | test set end-to-end (s) |"
    )
    print("|---|---|---|---|---|---|")
    for method in args.methods:
        r = benchmark(
            method,
            args.num_images,
            args.num_captions,
            args.caption_length,
            args.image_batch,
            args.text_batch,
            args.device,
            args.rerank_k,
            args.rerank_sample_pairs,
            dtype,
        )
        r["gemm_gflops_per_s"] = gemm
        r["malloc_tuned"] = malloc_tuned
        results.append(r)
        print(
            f"| {method} | {r['parameters'] / 1e6:.2f}M | {r['images_per_s']:.1f} ({r['image_gflops_per_s']:.0f}) | "
            f"{r['captions_per_s']:.1f} ({r['text_gflops_per_s']:.0f}) "
            f"| {r['score_matrix_s']:.3f} | {r['test_set_s']:.1f} |",
            flush=True,
        )
    lengths = f"{args.caption_length} tokens" if args.caption_length else "RSITMD test lengths"
    print(
        f"({args.num_images} images x {args.num_captions} captions of {lengths}, {args.dtype}, device {args.device}, "
        f"{torch.get_num_threads()} threads; GFLOP/s against the {args.dtype} GEMM figure {gemm[args.dtype]:.0f})"
    )
    for r in results:
        if r["rerank"]:
            print(f"\n{r['method']} fusion re-rank on top of the dual-encoder score (whole test set):")
            print("| k | candidate pairs | re-rank (s) | test set end-to-end (s) |")
            print("|---|---|---|---|")
            for row in r["rerank"]:
                print(
                    f"| {row['k']} | {row['pairs']} | {row['rerank_s']:.1f} "
                    f"| {r['test_set_s'] + row['rerank_s']:.1f} |"
                )
    if args.json:
        write_json_atomic(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
