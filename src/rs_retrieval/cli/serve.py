"""`rs-retrieval serve`: the web app over one model and an image folder or index (gradio imported on use)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
from pathlib import Path

from .search import add_band_argument, add_model_arguments

#: What a Space folder serves (written by `rs-retrieval space build`, read by `serve_space`).
SPACE_CONFIG = "space.json"


def serve_command(model_path, images=None, index=None, captions=None, port: int | None = None) -> str:
    """The shell line that serves `model_path` (printed by the quickstart)."""
    line = f"rs-retrieval serve --model {shlex.quote(str(model_path))}"
    for flag, value in (("--index", index), ("--images", images), ("--captions", captions), ("--port", port)):
        if value:
            line += f" {flag} {shlex.quote(str(value))}"
    return line


def default_captions_file(images_dir: str | Path) -> Path | None:
    """The release JSON next to a dataset's image folder (rs_synth, RSITMD ... layout), if there is one."""
    images_dir = Path(images_dir).resolve()
    for candidate in (images_dir.parent / "dataset.json", images_dir / "dataset.json"):
        if candidate.is_file():
            return candidate
    return None


def build_service(args: argparse.Namespace):
    """Load the model and open the corpus (`service.corpus.start()` begins encoding it)."""
    from .search import load_model_from_args
    from ..app.service import AppService, FolderCorpus, IndexCorpus, read_caption_file

    if args.class_set:
        from ..zeroshot import load_class_set

        load_class_set(args.class_set)  # a bad name or file fails here, not in the page
    model, processor = load_model_from_args(args)
    if args.index:
        corpus = IndexCorpus(args.index, model, processor)
    elif args.images:
        corpus = FolderCorpus(args.images, model, processor, cache_dir=args.cache_dir, batch_size=args.batch_size)
    else:
        corpus = None
    captions_file = args.captions or (default_captions_file(args.images) if args.images else None)
    captions = read_caption_file(captions_file) if captions_file else []
    service = AppService(
        model, processor, args.model, corpus, captions,
        max_upload_bytes=int(args.max_upload_mb * 1024**2), max_upload_pixels=int(args.max_upload_megapixels * 1e6),
        extra_class_sets=[args.class_set] if args.class_set else [],
    )
    return service


def serve(args: argparse.Namespace) -> int:
    from ..optional import require

    require("gradio", "web", "the web app (rs-retrieval serve)")  # fail before loading the model
    from ..app.ui import launch

    service = build_service(args)
    if service.corpus is not None:
        service.corpus.start()  # encodes while the server starts and the first page renders
    print(f"model {args.model}; {service.corpus.description if service.corpus else 'no images'}; {len(service.captions)} captions")
    # SIGTERM (docker stop, systemd) ends like Ctrl-C: through exit handlers, which remove the uploads.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    launch(service, host=args.host, port=args.port)
    return 0


def serve_space(folder: str | Path) -> int:
    """Serve the app as a Space folder's `space.json` says (paths relative to the folder). Host and
    port come from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, which Hugging Face Spaces set; without
    them the app listens on 127.0.0.1:7860."""
    folder = Path(folder)
    config = json.loads((folder / SPACE_CONFIG).read_text(encoding="utf-8"))
    model = folder / config["model"] if (folder / config["model"]).is_dir() else config["model"]
    argv = ["serve", "--model", str(model)]
    for key in ("images", "index", "captions"):
        if config.get(key):
            argv += [f"--{key}", str(folder / config[key])]
    if config.get("class_set"):
        argv += ["--class-set", config["class_set"]]
    argv += ["--host", os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"), "--port", os.environ.get("GRADIO_SERVER_PORT", "7860")]
    parser = argparse.ArgumentParser(prog="app.py")
    register(parser.add_subparsers())
    return serve(parser.parse_args(argv))


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve", help="web app: text -> images, image -> captions, zero-shot classification",
        description="Serve a Gradio app for one model. The page opens while the image folder is encoded "
        "(embeddings cached as for `search`).",
    )
    add_model_arguments(parser)
    add_band_argument(parser, "bands of multi-band images (folder, uploads, index scenes' rendering) drawn as R, G, B")
    corpus = parser.add_mutually_exclusive_group()
    corpus.add_argument("--images", help="folder of images to search")
    corpus.add_argument("--index", help="index built by `rs-retrieval index build` (image folder or tiled scenes)")
    parser.add_argument("--captions", help="caption set for image -> captions: text file (one per line) or release JSON "
                        "(default: dataset.json next to --images, if any)")
    parser.add_argument("--class-set", help="zero-shot class set offered first: a packaged name (aid, rs_synth, ...) or a "
                        "file (.txt one class per line, .json)")
    parser.add_argument("--port", type=int, default=None, help="port (default: 7860 or the next free one)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0 for a Space or a container)")
    parser.add_argument("--cache-dir", help="embedding cache (default: as for `rs-retrieval search`)")
    parser.add_argument("--batch-size", type=int, default=32, help="images encoded per batch")
    parser.add_argument("--max-upload-mb", type=float, default=64.0, help="largest upload file (default: 64 MB)")
    parser.add_argument("--max-upload-megapixels", type=float, default=64.0, help="largest upload image (default: 64 MP)")
    parser.set_defaults(func=serve)
