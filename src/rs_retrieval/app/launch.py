"""Start the web app: load the model, open the corpus, serve the page. Used by `rs-retrieval serve`
and by a Space folder's `app.py` (`serve_space`, what `rs-retrieval space build` writes)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
from pathlib import Path

#: What a Space folder serves (written by `rs-retrieval space build`, read by `serve_space`).
SPACE_CONFIG = "space.json"
DEFAULT_MAX_UPLOAD_MB = 64.0
DEFAULT_MAX_UPLOAD_MEGAPIXELS = 64.0


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


def build_service(
    model: str,
    images: str | Path | None = None,
    index: str | Path | None = None,
    captions: str | Path | None = None,
    class_set: str | None = None,
    cache_dir: str | Path | None = None,
    batch_size: int = 32,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    max_upload_megapixels: float = DEFAULT_MAX_UPLOAD_MEGAPIXELS,
    **load_options,
):
    """Load the model (`load_options`: those of `load_model_and_processor`, bands included) and open
    the corpus, an image folder or an index (`service.corpus.start()` begins encoding it)."""
    from ..pretrained import load_model_and_processor
    from .service import AppService, FolderCorpus, IndexCorpus, read_caption_file

    if class_set:
        from ..zeroshot import load_class_set

        load_class_set(class_set)  # a bad name or file fails here, not in the page
    loaded, processor = load_model_and_processor(model, **load_options)
    if index:
        corpus = IndexCorpus(index, loaded, processor)
    elif images:
        corpus = FolderCorpus(images, loaded, processor, cache_dir=cache_dir, batch_size=batch_size)
    else:
        corpus = None
    captions_file = captions or (default_captions_file(images) if images else None)
    return AppService(
        loaded,
        processor,
        model,
        corpus,
        read_caption_file(captions_file) if captions_file else [],
        max_upload_bytes=int(max_upload_mb * 1024**2),
        max_upload_pixels=int(max_upload_megapixels * 1e6),
        extra_class_sets=[class_set] if class_set else [],
    )


def serve(model: str, host: str = "127.0.0.1", port: int | None = None, **service_options) -> int:
    """Serve the app over `model` until stopped (`service_options`: those of `build_service`)."""
    from ..optional import require

    require("gradio", "web", "the web app (rs-retrieval serve)")  # fail before loading the model
    from .ui import launch

    service = build_service(model, **service_options)
    if service.corpus is not None:
        service.corpus.start()  # encodes while the server starts and the first page renders
    print(
        f"model {model}; {service.corpus.description if service.corpus else 'no images'}; "
        f"{len(service.captions)} captions"
    )
    # SIGTERM (docker stop, systemd) ends like Ctrl-C: through exit handlers, which remove the uploads.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    launch(service, host=host, port=port)
    return 0


def serve_space(folder: str | Path) -> int:
    """Serve the app as a Space folder's `space.json` says (paths relative to the folder). Host and
    port come from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, which Hugging Face Spaces set; without
    them the app listens on 127.0.0.1:7860."""
    folder = Path(folder)
    config = json.loads((folder / SPACE_CONFIG).read_text(encoding="utf-8"))
    model = folder / config["model"] if (folder / config["model"]).is_dir() else config["model"]
    corpus = {key: str(folder / config[key]) for key in ("images", "index", "captions") if config.get(key)}
    host, port = os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"), int(os.environ.get("GRADIO_SERVER_PORT", "7860"))
    return serve(str(model), host=host, port=port, class_set=config.get("class_set") or None, **corpus)
