"""`rs-retrieval push PATH REPO_ID`: publish a training run, a model directory, a dataset, the
metric or a Space; `rs-retrieval hub serve-local`: a local stand-in Hub to try that loop offline."""

from __future__ import annotations

import argparse
import importlib
import shlex
import threading
from pathlib import Path

from ..hub.push import KINDS


def push(args: argparse.Namespace) -> int:
    from ..hub.push import push_folder

    for module in args.import_modules:
        importlib.import_module(module)
    path = Path(args.path)
    if args.path == "metric":
        from ..evaluation.hf_evaluate import METRIC_DIR

        path = METRIC_DIR
    kind, commit = push_folder(
        path,
        args.repo_id,
        args.type,
        private=args.private or None,
        revision=args.revision,
        commit_message=args.message,
        card=not args.no_card,
        dataset_name=args.dataset_name,
        method=args.method,
        license=args.license,
        license_name=args.license_name,
        license_link=args.license_link,
    )
    print(f"pushed {kind} {path} -> {args.repo_id} in commit {commit.oid}\n{commit.commit_url}")
    return 0


def build_space_command(args: argparse.Namespace) -> int:
    from ..hub.space import build_space

    out = build_space(
        args.model,
        args.out,
        wheel=args.wheel,
        images=args.images,
        index=args.index,
        captions=args.captions,
        class_set=args.class_set,
        title=args.title,
        overwrite=args.overwrite,
    )
    print(
        f"Space folder {out}; try it with `pip install -r requirements.txt && python app.py` there, "
        f"publish it with `rs-retrieval push {out} ORG/NAME --type space`"
    )
    return 0


def register_space(subparsers) -> None:
    parser = subparsers.add_parser("space", help="build a Gradio Space that serves the web app")
    commands = parser.add_subparsers(dest="space_command", required=True)
    build = commands.add_parser(
        "build",
        help="write a Gradio Space folder: app, model, images or index, this package's wheel, pinned requirements",
        description="Write a Gradio Space folder that serves `rs-retrieval serve` over one model and an image folder or "
        "index; publish it with `rs-retrieval push SPACE_DIR ORG/NAME --type space`.",
    )
    build.add_argument(
        "--model", required=True, help="saved model or run directory (copied) or Hub id (loaded at start)"
    )
    corpus = build.add_mutually_exclusive_group(required=True)
    corpus.add_argument("--images", help="folder of images to search (copied)")
    corpus.add_argument("--index", help="index built by `rs-retrieval index build` (copied)")
    build.add_argument("--out", required=True, help="Space folder to write (created atomically)")
    build.add_argument(
        "--wheel", required=True, help="rs_retrieval wheel to install in the Space (`python -m build --wheel`)"
    )
    build.add_argument("--captions", help="caption set for image -> captions (default: dataset.json beside --images)")
    build.add_argument("--class-set", help="zero-shot class set offered first (packaged name)")
    build.add_argument("--title", help="Space title (default: from the model)")
    build.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    build.set_defaults(func=build_space_command)


def register(subparsers) -> None:
    register_push(subparsers)
    register_hub(subparsers)
    register_space(subparsers)


def register_push(subparsers) -> None:
    parser = subparsers.add_parser(
        "push",
        help="publish a trained model or a dataset to the Hugging Face Hub (one commit)",
        description="Publish a training run / model directory (weights, processor, remote code, model card) or a "
        "dataset (Parquet + dataset card) or an evaluate metric "
        "folder (a metric Space: script, card, app) to the Hub in a "
        "single commit (PATH `metric` = the package's rs_retrieval_recall). Uses HF_TOKEN / HF_ENDPOINT.",
    )
    parser.add_argument(
        "path",
        help=(
            "training run dir, model dir, Parquet export dir, "
            "save_to_disk dir, metric folder, `metric`, or a Space folder"
        ),
    )
    parser.add_argument("repo_id", help="target repository, e.g. my-org/amfmn-rsitmd")
    parser.add_argument("--type", choices=("auto", *KINDS), default="auto", help="what PATH holds (default: detect)")
    parser.add_argument(
        "--dataset-name", help="dataset the model was trained on / the dataset being pushed (rsitmd, rsicd, ...)"
    )
    parser.add_argument("--method", help="model_type for the card when config.json lacks it")
    parser.add_argument(
        "--license",
        help="model card licence id (default: apache-2.0 for a trained model, the release's "
        "own licence for a converted CLIP release)",
    )
    parser.add_argument("--license-name", help="short licence name, required with --license other")
    parser.add_argument("--license-link", help="URL of the licence text, for --license other")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--revision", help="branch to commit to (default: main)")
    parser.add_argument("--message", help="commit message")
    parser.add_argument("--no-card", action="store_true", help="keep the directory's own README.md")
    parser.add_argument(
        "--import",
        dest="import_modules",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first (registers a custom model)",
    )
    parser.set_defaults(func=push)


def serve_local(args: argparse.Namespace) -> int:
    from ..hub.local_hub import CLIENT_SETTINGS, LocalHub

    hub = LocalHub(port=args.port, max_lifetime_s=None).start()
    exports = {
        "HF_ENDPOINT": hub.endpoint,
        **{k: v for k, v in CLIENT_SETTINGS.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"},
    }
    print(
        f"Local test Hub on {hub.endpoint}: repositories live in memory and are gone when it stops; one user, no "
        "access control. For trying `rs-retrieval push` and loading without the real Hub, not for hosting.\n"
        "In the shells that push and load, set:\n"
        + "\n".join(f"export {k}={shlex.quote(v)}" for k, v in exports.items())
        + "\nStop with Ctrl-C.",
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        hub.stop()
    return 0


def register_hub(subparsers) -> None:
    parser = subparsers.add_parser("hub", help="a local stand-in Hugging Face Hub for trying push and load offline")
    commands = parser.add_subparsers(dest="hub_command", required=True)
    serve = commands.add_parser(
        "serve-local",
        help="serve an in-memory test Hub on 127.0.0.1 (for trying, not for hosting)",
        description="Serve the package's test Hub on 127.0.0.1 and print the HF_ENDPOINT/HF_TOKEN exports that point "
        "huggingface_hub, transformers, datasets and evaluate at it. Repositories live in memory only.",
    )
    serve.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default: 8765; 0 picks a free one)")
    serve.set_defaults(func=serve_local)
