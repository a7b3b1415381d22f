#!/usr/bin/env python
"""CLIP ViT encoding at fp32, bf16 and int8 against open_clip fp32, in one process, interleaved.

open_clip builds a ViT (random weights: the time does not depend on them); the package's
`CLIPRetrievalModel` gets the same weights (`convert.openclip`) and runs at each precision of
`rs_retrieval.precision`. Every round times each variant on the same images (PIL -> embeddings:
preprocessing included, each library with its own) and the same captions (tokenizing included),
one variant after the other, so all see the same machine load; the table gives the median round.
It also prints the embedding cosine of every variant against open_clip fp32, the FLOPs of one
image, and the GEMM throughput of this CPU per precision (torch fp32/bf16 2048^3, onnxruntime's
int8 MatMulInteger 2048^3 for int8).

open_clip needs torchvision, so run it in the open_clip venv with this package on the path
(that venv also needs `pip install onnxruntime onnx` for int8):

    PYTHONPATH=src .venv-openclip/bin/python scripts/benchmark_precision.py --threads 2 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from PIL import Image

from rs_retrieval.convert.openclip import (
    clip_config_from_open_clip,
    open_clip_to_transformers,
    resolve_architecture,
)
from rs_retrieval.models.clip import (
    CLIPRetrievalModel,
    DualEncoderProcessor,
    build_clip_processor,
)
from rs_retrieval.precision import with_precision


def gemm_gflops(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return round(2 * n**3 * repeats / (time.perf_counter() - start) / 1e9, 1)


def int8_gemm_gops(threads: int, n: int = 2048, repeats: int = 5) -> float:
    """uint8 x int8 -> int32 MatMulInteger in onnxruntime (the kernel dynamic quantization uses)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.random.default_rng(0).integers(-127, 127, (n, n), dtype=np.int8), "B")
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B"], ["C"])],
        "gemm",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [n, n])],
        [helper.make_tensor_value_info("C", TensorProto.INT32, [n, n])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feed = {"A": np.random.default_rng(1).integers(0, 255, (n, n), dtype=np.uint8)}
    session.run(None, feed)
    start = time.perf_counter()
    for _ in range(repeats):
        session.run(None, feed)
    return round(2 * n**3 * repeats / (time.perf_counter() - start) / 1e9, 1)


def image_flops(model: CLIPRetrievalModel, image_size: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model.encode_images(torch.randn(1, 3, image_size, image_size))
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="ViT-B-32")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument(
        "--captions",
        help=(
            "text file, one caption a line (the first captions-per-image "
            "x images are used); default: synthetic captions"
        ),
    )
    parser.add_argument("--captions-per-image", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    captions = Path(args.captions).read_text(encoding="utf-8").splitlines() if args.captions else []
    wanted = args.captions_per_image * args.images
    captions = (
        captions or [f"caption number {i} of a remote sensing image with some buildings" for i in range(wanted)]
    )[:wanted]
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)) for _ in range(args.images)]

    torch.manual_seed(0)
    reference, _, preprocess = open_clip.create_model_and_transforms(args.arch, pretrained=None)
    reference.eval()
    tokenizer = open_clip.get_tokenizer(args.arch)
    architecture = resolve_architecture(args.arch)
    ours = CLIPRetrievalModel(
        clip_config_from_open_clip(architecture, "quick_gelu" if architecture.get("quick_gelu") else "gelu")
    ).eval()
    ours.load_state_dict(open_clip_to_transformers(reference.state_dict()), strict=True)
    image_size = ours.config.vision_config.image_size
    processor = DualEncoderProcessor(build_clip_processor(image_size))
    # int8 graphs are cached per model fingerprint under $RS_RETRIEVAL_CACHE/int8, reused by the next run
    variants = {"open_clip fp32": None, "ours fp32": ours}
    for precision in ("bf16", "int8"):
        copy = CLIPRetrievalModel(ours.config).eval()
        copy.load_state_dict(ours.state_dict())
        tic = time.perf_counter()
        variants[f"ours {precision}"] = with_precision(copy, precision, processor)
        print(
            f"ours {precision}: ready in {time.perf_counter() - tic:.1f} "
            "s (int8: export + quantization, once per model)",
            flush=True,
        )

    def encode_images(name, model, batch):
        if model is None:
            return reference.encode_image(torch.stack([preprocess(image) for image in batch]))
        return model.encode_images(**processor.image_inputs({"image": batch}, train=False))["embeds"]

    def encode_texts(name, model, batch):
        if model is None:
            return reference.encode_text(tokenizer(batch))
        return model.encode_texts(**processor.text_inputs(batch))["embeds"]

    timings = {name: {"images": [], "captions": []} for name in variants}
    embeddings = {}
    with torch.inference_mode():
        for name, model in variants.items():  # warm-up (and the embeddings compared below)
            embeddings[name] = (
                encode_images(name, model, images[: args.batch_size]).float(),
                encode_texts(name, model, captions[: args.batch_size]).float(),
            )
        for _ in range(args.rounds):
            for name, model in variants.items():
                for kind, items, encode in (("images", images, encode_images), ("captions", captions, encode_texts)):
                    tic = time.perf_counter()
                    for start in range(0, len(items), args.batch_size):
                        encode(name, model, items[start : start + args.batch_size])
                    timings[name][kind].append(len(items) / (time.perf_counter() - tic))
    gemm = {"fp32": gemm_gflops(torch.float32), "bf16": gemm_gflops(torch.bfloat16), "int8": int8_gemm_gops(threads)}
    flops = image_flops(ours, image_size)
    base = {kind: statistics.median(timings["open_clip fp32"][kind]) for kind in ("images", "captions")}
    rows = []
    for name in variants:
        images_s, captions_s = (statistics.median(timings[name][kind]) for kind in ("images", "captions"))
        image_ref, text_ref = embeddings["open_clip fp32"]
        image_emb, text_emb = embeddings[name]
        precision = name.split()[-1]
        rows.append(
            {
                "variant": name,
                "images_per_s": round(images_s, 2),
                "captions_per_s": round(captions_s, 1),
                "images_vs_open_clip": round(images_s / base["images"], 2),
                "captions_vs_open_clip": round(captions_s / base["captions"], 2),
                "image_gflops": round(images_s * flops / 1e9, 1),
                "gemm_gflops": gemm[precision],
                "image_cosine_min": round(float(F.cosine_similarity(image_emb, image_ref).min()), 5),
                "text_cosine_min": round(float(F.cosine_similarity(text_emb, text_ref).min()), 5),
                "rounds_images_per_s": [round(v, 2) for v in timings[name]["images"]],
            }
        )
    result = {
        "arch": args.arch,
        "images": len(images),
        "captions": len(captions),
        "batch_size": args.batch_size,
        "threads": threads,
        "torch": torch.__version__,
        "image_gflop": round(flops / 1e9, 2),
        "gemm": gemm,
        "load_average": os.getloadavg(),
        "rows": rows,
    }
    print(
        f"{args.arch}: {len(images)} images, {len(captions)} captions, batch "
        f"{args.batch_size}, {threads} threads, torch {torch.__version__}, "
        f"{flops / 1e9:.2f} GFLOP/image; GEMM fp32 {gemm['fp32']} "
        f"/ bf16 {gemm['bf16']} GFLOP/s, int8 {gemm['int8']} GOP/s; "
        f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}"
    )
    print(
        "| variant | images/s | x open_clip | captions/s | x open_clip | "
        "image GFLOP/s (GEMM) | cosine vs open_clip (image / text, min) |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['variant']} | {r['images_per_s']} | {r['images_vs_open_clip']} "
            f"| {r['captions_per_s']} | {r['captions_vs_open_clip']} | "
            f"{r['image_gflops']} ({r['gemm_gflops']}) | {r['image_cosine_min']} / {r['text_cosine_min']} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
