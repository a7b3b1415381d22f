"""ONNX parity and CPU speed of every method at full size (random weights): export each graph,
then time PyTorch and onnxruntime on the same batch (median of alternating repeats).

    PYTHONPATH=src python scripts/benchmark_onnx.py --batch 8 --repeats 5 --out /tmp/onnx_bench
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from rs_retrieval.export.onnx import export_graph, graph_specs

BENCHMARKED_METHODS = ("amfmn", "galr", "msa", "cmpagl")


def full_size_model(method: str):
    from rs_retrieval.models.amfmn import AMFMNConfig, AMFMNModel
    from rs_retrieval.models.cmpagl import CMPAGLConfig, CMPAGLModel
    from rs_retrieval.models.galr import GaLRConfig, GaLRModel
    from rs_retrieval.models.msa import MSAConfig, MSAModel

    model_class, config_class = {
        "amfmn": (AMFMNModel, AMFMNConfig),
        "galr": (GaLRModel, GaLRConfig),
        "msa": (MSAModel, MSAConfig),
        "cmpagl": (CMPAGLModel, CMPAGLConfig),
    }[method]
    torch.manual_seed(0)
    return model_class(config_class()).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=list(BENCHMARKED_METHODS), choices=BENCHMARKED_METHODS)
    parser.add_argument("--batch", type=int, default=8, help="images / texts / pairs per timed call")
    parser.add_argument("--text-length", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, help="intra-op threads of PyTorch and onnxruntime (default: their own)")
    parser.add_argument("--out", help="folder for the .onnx files and results.json (default: a temporary folder)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out or tempfile.mkdtemp(prefix="onnx_bench_"))
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    print(
        "| method | graph | params | max abs diff | PyTorch ms | onnxruntime ms "
        f"| speed-up |  (batch {args.batch}, {torch.get_num_threads()} threads)"
    )
    print("|---|---|---|---|---|---|---|")
    for method in args.methods:
        model = full_size_model(method)
        params = sum(p.numel() for p in model.parameters())
        config = model.config
        image_size = getattr(config, "image_size", None) or config.vision_config.image_size
        for spec in graph_specs(model, image_size, args.text_length, check_batch=args.batch):
            report = export_graph(spec, out / f"{method}_{spec.name}.onnx", repeats=args.repeats, threads=args.threads)
            row = {"method": method, "params": params, **vars(report)}
            rows.append(row)
            print(
                f"| {method} | {spec.name} | {params / 1e6:.1f}M | "
                f"{report.max_abs_diff:.1e} | {report.torch_ms:.1f} | "
                f"{report.onnxruntime_ms:.1f} | {report.torch_ms / report.onnxruntime_ms:.2f}x |",
                flush=True,
            )
        del model
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
