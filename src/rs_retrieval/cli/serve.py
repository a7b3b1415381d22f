"""`rs-retrieval serve`: the web app over one model and an image folder or index (gradio imported on use)."""

from __future__ import annotations

import argparse

from ..app.launch import DEFAULT_MAX_UPLOAD_MB, DEFAULT_MAX_UPLOAD_MEGAPIXELS
from .arguments import add_band_argument, add_model_arguments


def service_options(args: argparse.Namespace) -> dict:
    """`app.launch.build_service` keyword arguments from the `serve` options (model excluded)."""
    names = (
        "images",
        "index",
        "captions",
        "class_set",
        "cache_dir",
        "batch_size",
        "max_upload_mb",
        "max_upload_megapixels",
        "trust_remote_code",
        "device",
        "allow_weight_mismatch",
        "precision",
        "bands",
    )
    return {name: getattr(args, name) for name in names}


def run_serve(args: argparse.Namespace) -> int:
    from ..app.launch import serve

    return serve(args.model, host=args.host, port=args.port, **service_options(args))


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="web app: text -> images, image -> captions, zero-shot classification",
        description="Serve a Gradio app for one model. The page opens while the image folder is encoded "
        "(embeddings cached as for `search`).",
    )
    add_model_arguments(parser)
    add_band_argument(parser, "bands of multi-band images (folder, uploads, index scenes' rendering) drawn as R, G, B")
    corpus = parser.add_mutually_exclusive_group()
    corpus.add_argument("--images", help="folder of images to search")
    corpus.add_argument("--index", help="index built by `rs-retrieval index build` (image folder or tiled scenes)")
    parser.add_argument(
        "--captions",
        help="caption set for image -> captions: text file (one per line) or release JSON "
        "(default: dataset.json next to --images, if any)",
    )
    parser.add_argument(
        "--class-set",
        help="zero-shot class set offered first: a packaged name (aid, rs_synth, ...) or a "
        "file (.txt one class per line, .json)",
    )
    parser.add_argument("--port", type=int, default=None, help="port (default: 7860 or the next free one)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (0.0.0.0 for a Space or a container)"
    )
    parser.add_argument("--cache-dir", help="embedding cache (default: as for `rs-retrieval search`)")
    parser.add_argument("--batch-size", type=int, default=32, help="images encoded per batch")
    parser.add_argument(
        "--max-upload-mb",
        type=float,
        default=DEFAULT_MAX_UPLOAD_MB,
        help=f"largest upload file (default: {DEFAULT_MAX_UPLOAD_MB:g} MB)",
    )
    parser.add_argument(
        "--max-upload-megapixels",
        type=float,
        default=DEFAULT_MAX_UPLOAD_MEGAPIXELS,
        help=f"largest upload image (default: {DEFAULT_MAX_UPLOAD_MEGAPIXELS:g} MP)",
    )
    parser.set_defaults(func=run_serve)
