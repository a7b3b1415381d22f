"""`rs-retrieval search` (text -> images in a folder) and `rs-retrieval rank-captions` (image -> texts)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputNotFoundError, UsageError
from .arguments import add_band_argument, add_model_arguments, load_model_from_args


def search(args: argparse.Namespace) -> int:
    if not Path(args.images).is_dir():  # before torch is even imported
        raise InputNotFoundError(f"{args.images} is not a folder")
    from ..search.folder_search import list_images, make_contact_sheet, search_images

    list_images(args.images, args.recursive)  # an empty folder fails before the model loads
    model, processor = load_model_from_args(args)
    results = search_images(
        args.query,
        args.images,
        model,
        processor,
        top_k=args.top_k,
        cache_dir=args.cache_dir,
        batch_size=args.batch_size,
        recursive=args.recursive,
        strict=args.strict,
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
        captions += [
            line.strip() for line in Path(args.captions_file).read_text(encoding="utf-8").splitlines() if line.strip()
        ]
    if not captions:
        raise UsageError("give captions with --captions or --captions-file")
    blank = [index for index, caption in enumerate(captions, start=1) if not caption.strip()]
    if blank:
        raise UsageError(f"caption(s) {blank} are empty; every caption needs words to be scored")
    if not Path(args.image).is_file():
        raise InputNotFoundError(f"image file {args.image} does not exist")
    from ..search.folder_search import rank_captions

    model, processor = load_model_from_args(args)
    ranked = rank_captions(args.image, captions, model, processor)
    print(f"{'rank':>4}  {'score':>9}  caption")
    for rank, (caption, score) in enumerate(ranked[: args.top_k], start=1):
        print(f"{rank:>4}  {score:9.4f}  {caption}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "search",
        help="rank the images of a folder for a text query",
        description="Text-to-image search. Image encodings are cached per model and image content, so repeated "
        "queries over the same folder only encode new or changed images.",
    )
    parser.add_argument("query", help='text query, e.g. "two ships in a harbour"')
    parser.add_argument("--images", required=True, help="folder of images (.jpg .png .tif ...)")
    add_model_arguments(parser)
    parser.add_argument("--top-k", type=int, default=10, help="number of results (default: 10)")
    parser.add_argument("--contact-sheet", help="also write a PNG grid of the results here")
    parser.add_argument(
        "--cache-dir", help="embedding cache (default: $RS_RETRIEVAL_CACHE/search or ~/.cache/rs_retrieval/search)"
    )
    parser.add_argument("--batch-size", type=int, default=32, help="images encoded per batch")
    parser.add_argument("--recursive", action="store_true", help="include images in sub-folders")
    parser.add_argument(
        "--strict", action="store_true", help="stop at the first unreadable image instead of skipping it"
    )
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
