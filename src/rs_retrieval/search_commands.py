"""`rs-retrieval search` (text -> images in a folder) and `rs-retrieval rank-captions` (image -> texts)."""

from __future__ import annotations

import argparse
from pathlib import Path


def load_model(name_or_path: str, trust_remote_code: bool = False, device: str = "cpu"):
    """A retrieval model and its processor from a directory or Hub id (package methods and
    CLIP-family folders)."""
    from .models import load_retrieval_model, load_retrieval_processor

    model = load_retrieval_model(name_or_path, trust_remote_code=trust_remote_code).to(device).eval()
    return model, load_retrieval_processor(name_or_path, trust_remote_code=trust_remote_code)


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="saved model directory or Hub id")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow the model repository's own code")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")


def search(args: argparse.Namespace) -> int:
    from .search import make_contact_sheet, search_images

    model, processor = load_model(args.model, args.trust_remote_code, args.device)
    results = search_images(
        args.query, args.images, model, processor, top_k=args.top_k, cache_dir=args.cache_dir,
        batch_size=args.batch_size, recursive=args.recursive,
    )
    print(f"{'rank':>4}  {'score':>9}  path")
    for rank, (path, score) in enumerate(results, start=1):
        print(f"{rank:>4}  {score:9.4f}  {path}")
    if args.contact_sheet:
        print(f"contact sheet: {make_contact_sheet(args.query, results, args.contact_sheet)}")
    return 0


def rank_captions_command(args: argparse.Namespace) -> int:
    from .search import SearchError, rank_captions

    captions = list(args.captions or [])
    if args.captions_file:
        captions += [line.strip() for line in Path(args.captions_file).read_text(encoding="utf-8").splitlines() if line.strip()]
    if not captions:
        raise SearchError("give captions with --captions or --captions-file")
    model, processor = load_model(args.model, args.trust_remote_code, args.device)
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
    _add_model_arguments(parser)
    parser.add_argument("--top-k", type=int, default=10, help="number of results (default: 10)")
    parser.add_argument("--contact-sheet", help="also write a PNG grid of the results here")
    parser.add_argument("--cache-dir", help="embedding cache (default: $RS_RETRIEVAL_CACHE/search or ~/.cache/rs_retrieval/search)")
    parser.add_argument("--batch-size", type=int, default=32, help="images encoded per batch")
    parser.add_argument("--recursive", action="store_true", help="include images in sub-folders")
    parser.set_defaults(func=search)

    parser = subparsers.add_parser("rank-captions", help="rank captions for one image")
    parser.add_argument("image", help="image file")
    parser.add_argument("--captions", nargs="+", help="candidate captions")
    parser.add_argument("--captions-file", help="text file with one caption per line")
    _add_model_arguments(parser)
    parser.add_argument("--top-k", type=int, default=None, help="show only the best K captions")
    parser.set_defaults(func=rank_captions_command)
