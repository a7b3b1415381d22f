"""`rs-retrieval export onnx --model M --out DIR`: ONNX graphs of a saved model, checked with onnxruntime."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="export a saved model to another runtime (onnx)")
    formats = parser.add_subparsers(dest="format", required=True)
    onnx = formats.add_parser(
        "onnx",
        help="image/text encoders (+ score head) as ONNX, checked against PyTorch with onnxruntime",
        description="Write image_encoder.onnx, text_encoder.onnx and, for AMFMN/CMPAGL, score_head.onnx (dynamic batch "
        "axes), the processor and onnx_export.json (inputs, outputs, max |onnxruntime - PyTorch|, timings). "
        "Needs pip install 'rs-retrieval[onnx]'.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    onnx.add_argument("--model", required=True, help="saved model directory or Hub id")
    onnx.add_argument("--out", required=True, help="output folder (written atomically)")
    onnx.add_argument(
        "--text-length", type=int, default=32, help="example text length; AMFMN/GaLR's GRU graph is fixed to it"
    )
    onnx.add_argument("--opset", type=int, default=17)
    onnx.add_argument(
        "--benchmark-repeats",
        type=int,
        default=0,
        help="time PyTorch and onnxruntime on the check batch (median of N)",
    )
    onnx.add_argument("--trust-remote-code", action="store_true", help="allow the model repository's own code")
    onnx.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    onnx.set_defaults(func=run_export_onnx)


def run_export_onnx(args: argparse.Namespace) -> int:
    from ..export.onnx import export_onnx
    from ..pretrained import load_model_and_processor

    model, processor = load_model_and_processor(
        args.model, args.trust_remote_code, "cpu"
    )  # ONNX graphs are traced on CPU
    report = export_onnx(
        model,
        args.out,
        processor,
        text_length=args.text_length,
        opset=args.opset,
        repeats=args.benchmark_repeats,
        overwrite=args.overwrite,
    )
    print(f"{report['model_type']} -> {args.out} (opset {report['opset']}, parity tolerance {report['tolerance']:g})")
    for graph in report["graphs"]:
        timing = (
            f", PyTorch {graph['torch_ms']:.2f} ms, onnxruntime {graph['onnxruntime_ms']:.2f} ms"
            if graph["torch_ms"] is not None
            else ""
        )
        print(
            f"  {graph['file']}: {', '.join(graph['inputs'])} -> "
            f"{', '.join(graph['outputs'])}; max |diff| {graph['max_abs_diff']:.2e}{timing}"
        )
    for name, reason in report["not_exported"].items():
        print(f"  {name}: not exported: {reason}")
    return 0
