"""Options shared by several commands: the model a command loads (and how), and the bands it reads.

Imported by the command modules at `--help` time, so nothing here imports torch at module level.
"""

from __future__ import annotations

import argparse


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model, --trust-remote-code, --device, --allow-weight-mismatch, --precision: shared by every
    command that loads a model (`load_model_from_args` reads them)."""
    from ..precision import PRECISIONS

    parser.add_argument("--model", required=True, help="saved model directory or Hub id")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow the model repository's own code")
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    parser.add_argument(
        "--allow-weight-mismatch",
        action="store_true",
        help="load weights that lack layers of the config (left random) or hold extra ones, with a warning",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help=(
            "encoder precision: fp32 (default), bf16 (CPUs with bf16 "
            "instructions, GPUs) or int8 (CPU, ONNX Runtime); docs/precision.md"
        ),
    )


def add_band_argument(
    parser: argparse.ArgumentParser, help_prefix: str = "bands of multi-band images drawn as R, G, B"
) -> None:
    """--bands: a composite (s2-rgb, s2-false-color, ...), band names (B04,B03,B02) or 1-based numbers (4,3,2)."""
    parser.add_argument(
        "--bands",
        nargs="+",
        default=None,
        metavar="BANDS",
        help=f"{help_prefix}: a composite (s2-rgb, s2-false-color, s2-swir, s2-agriculture, landsat-rgb, "
        "landsat-false-color), band names (B04,B03,B02; sensor scaling applied) or 1-based numbers (4,3,2); "
        "see docs/multispectral.md",
    )


def load_model_from_args(args: argparse.Namespace, device: str | None = None):
    """The model and processor that `add_model_arguments`' options name (`device` overrides --device),
    with the command's `--bands` (if it has the option) applied to the processor."""
    from ..pretrained import load_model_and_processor

    return load_model_and_processor(
        args.model,
        args.trust_remote_code,
        device or args.device,
        args.allow_weight_mismatch,
        args.precision,
        bands=getattr(args, "bands", None),
    )
