"""`rs-retrieval search` (text -> images in a folder) and `rs-retrieval rank-captions` (image -> texts)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputNotFoundError, UsageError


def load_model(
    name_or_path: str, trust_remote_code: bool = False, device: str | None = None, allow_weight_mismatch: bool = False, precision: str = "fp32",
):
    """A retrieval model and its processor from a directory or Hub id, checked to be a pair."""
    from ..pretrained import load_model_and_processor

    return load_model_and_processor(name_or_path, trust_remote_code, device, allow_weight_mismatch, precision)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model, --trust-remote-code, --device, --allow-weight-mismatch, --precision: shared by every
    command that loads a model (`load_model_from_args` reads them)."""
    from ..precision import PRECISIONS

    parser.add_argument("--model", required=True, help="saved model directory or Hub id")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow the model repository's own code")
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    parser.add_argument(
        "--allow-weight-mismatch", action="store_true",
        help="load weights that lack layers of the config (left random) or hold extra ones, with a warning",
    )
    parser.add_argument(
        "--precision", choices=PRECISIONS, default="fp32",
        help="encoder precision: fp32 (default), bf16 (CPUs with bf16 instructions, GPUs) or int8 (CPU, ONNX Runtime); docs/precision.md",
    )


def add_band_argument(parser: argparse.ArgumentParser, help_prefix: str = "bands of multi-band images drawn as R, G, B") -> None:
    """--bands: a composite (s2-rgb, s2-false-color, ...), band names (B04,B03,B02) or 1-based numbers (4,3,2)."""
    parser.add_argument("--bands", nargs="+", default=None, metavar="BANDS",
                        help=f"{help_prefix}: a composite (s2-rgb, s2-false-color, s2-swir, s2-agriculture, landsat-rgb, "
                        "landsat-false-color), band names (B04,B03,B02; sensor scaling applied) or 1-based numbers (4,3,2); "
                        "see docs/multispectral.md")


def load_model_from_args(args: argparse.Namespace, device: str | None = None):
    """The model and processor that `add_model_arguments`' options name (`device` overrides --device),
    with the command's `--bands` (if it has the option) applied to the processor."""
    from ..multispectral import apply_bands, parse_bands

    choice = parse_bands(getattr(args, "bands", None))  # a bad band name fails before the model loads
    model, processor = load_model(args.model, args.trust_remote_code, device or args.device, args.allow_weight_mismatch, args.precision)
    return model, apply_bands(processor, choice)


def search(args: argparse.Namespace) -> int:
    if not Path(args.images).is_dir():  # before torch is even imported
        raise InputNotFoundError(f"{args.images} is not a folder")
    from ..search.engine import list_images, make_contact_sheet, search_images

    list_images(args.images, args.recursive)  # an empty folder fails before the model loads
    model, processor = load_model_from_args(args)
    results = search_images(
        args.query, args.images, model, processor, top_k=args.top_k, cache_dir=args.cache_dir,
        batch_size=args.batch_size, recursive=args.recursive, strict=args.strict,
    )
    print(f"{'rank':>4}  {'score':>9}  path")
    for rank, (path, score) in enumerate(results, start=1):
        print(f"{rank:>4}  {score:9.4f}  {path}")
    if args.contact_sheet:
        print(f"contact sheet: {make_contact_sheet(args.query, results, args.contact_sheet)}")
    return 0


def rank_captions_command(args: argparse.Namespace) -> int:
    captions = list(args.captions or [])
    if args.captions_file and not Path(args.captions_file).is_file():
        raise InputNotFoundError(f"captions file {args.captions_file} does not exist")
    if args.captions_file:
        captions += [line.strip() for line in Path(args.captions_file).read_text(encoding="utf-8").splitlines() if line.strip()]
    if not captions:
        raise UsageError("give captions with --captions or --captions-file")
    blank = [index for index, caption in enumerate(captions, start=1) if not caption.strip()]
    if blank:
        raise UsageError(f"caption(s) {blank} are empty; every caption needs words to be scored")
    if not Path(args.image).is_file():
        raise InputNotFoundError(f"image file {args.image} does not exist")
    from ..search.engine import rank_captions

    model, processor = load_model_from_args(args)
    ranked = rank_captions(args.image, captions, model, processor)
    print(f"{'rank':>4}  {'score':>9}  caption")
    for rank, (caption, score) in enumerate(ranked[: args.top_k], start=1):
        print(f"{rank:>4}  {score:9.4f}  {caption}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "search", help="rank the images of a folder for a text query",
        description="Text-to-image search. Image encodings are cached per model and image content, so repeated "
        "queries over the same folder only encode new or changed images.",
    )
    parser.add_argument("query", help='text query, e.g. "two ships in a harbour"')
    parser.add_argument("--images", required=True, help="folder of images (.jpg .png .tif ...)")
    add_model_arguments(parser)
    parser.add_argument("--top-k", type=int, default=10, help="number of results (default: 10)")
    parser.add_argument("--contact-sheet", help="also write a PNG grid of the results here")
    parser.add_argument("--cache-dir", help="embedding cache (default: $RS_RETRIEVAL_CACHE/search or ~/.cache/rs_retrieval/search)")
    parser.add_argument("--batch-size", type=int, default=32, help="images encoded per batch")
    parser.add_argument("--recursive", action="store_true", help="include images in sub-folders")
    parser.add_argument("--strict", action="store_true", help="stop at the first unreadable image instead of skipping it")
    add_band_argument(parser)
    parser.set_defaults(func=search)

    parser = subparsers.add_parser("rank-captions", help="rank captions for one image")
    parser.add_argument("image", help="image file")
    parser.add_argument("--captions", nargs="+", help="candidate captions")
    parser.add_argument("--captions-file", help="text file with one caption per line")
    add_model_arguments(parser)
    parser.add_argument("--top-k", type=int, default=None, help="show only the best K captions")
    add_band_argument(parser)
    parser.set_defaults(func=rank_captions_command)
