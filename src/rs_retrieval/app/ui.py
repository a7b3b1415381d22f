"""The Gradio page: four tabs over an `AppService`; typed errors become in-page messages.

Built for Gradio 6 (theme and CSS go to `launch`, gallery buttons are a list). Uploads arrive as
files (`gr.File`), not `gr.Image`, so the app decodes them itself: a corrupt file or a 16-bit TIFF
then gets our message instead of a failed browser preview. The theme uses system fonts, so the
page needs no request outside the app (it works offline and in air-gapped networks).
"""

from __future__ import annotations

import html

from ..errors import RSRetrievalError
from ..optional import require
from .about import model_summary
from .files import session_folder
from .footprints import footprint_map_html
from .service import AppService, CorpusStatus

DEFAULT_K = 8
MAX_K = 50
CSS = """
.rs-message p { font-size: 1.05em; }
.rs-error { color: #b42318; }
.rs-note { color: #1d4e89; }
#corpus-status progress { width: 16em; vertical-align: middle; }
.prob-row { display: grid; grid-template-columns: 12em 1fr 4.5em; align-items: center; gap: .6em; margin: .25em 0; }
.prob-track { background: #eef1f4; height: 1.1em; border-radius: 3px; overflow: hidden; }
.prob-bar { display: block; height: 100%; background: #e8731c; }
.prob-value { text-align: right; font-variant-numeric: tabular-nums; }
"""
EXAMPLE_QUERY = "two white planes are parked beside a grey runway"


def _gradio():
    return require("gradio", "web", "the web app (rs-retrieval serve)")


def error_message(error: Exception) -> str:
    return f'<p class="rs-error"><b>Error:</b> {html.escape(str(error))}</p>'


def note_message(text: str) -> str:
    return f'<p class="rs-note">{html.escape(text)}</p>' if text else ""


def status_html(status: CorpusStatus | None) -> str:
    """Progress bar while the corpus encodes, its failure, or its size once ready."""
    if status is None:
        return "<p>No images to search: start with <code>--images DIR</code> or <code>--index INDEX</code>.</p>"
    if status.error:
        return error_message(status.message())
    if not status.ready:
        return (
            f'<p><progress value="{status.done}" max="{max(status.total, 1)}"></progress> '
            f"{html.escape(status.message())}</p>"
        )
    return f'<p class="rs-ready">{html.escape(status.message())}</p>'


def _caption_table(ranked: list[tuple[str, float]]) -> str:
    rows = "".join(
        f"<tr><td>{rank}</td><td>{score:.3f}</td><td>{html.escape(text)}</td></tr>"
        for rank, (text, score) in enumerate(ranked, 1)
    )
    return f'<table class="caption-table"><thead><tr><th>rank</th><th>score</th><th>caption</th></tr></thead><tbody>{rows}</tbody></table>'


def probability_bars(probabilities: dict[str, float]) -> str:
    """Horizontal bar chart (HTML), most probable class first."""
    rows = "".join(
        f'<div class="prob-row"><span class="prob-class">{html.escape(name)}</span>'
        f'<span class="prob-track"><span class="prob-bar" style="width:{100 * p:.2f}%"></span></span>'
        f'<span class="prob-value">{100 * p:.1f}%</span></div>'
        for name, p in sorted(probabilities.items(), key=lambda item: -item[1])
    )
    return f'<div class="prob-chart">{rows}</div>'


def _examples(paths: list[str], upload, elem_id: str) -> None:
    """A row of the corpus's images that fill `upload` when clicked (its change event runs the tab)."""
    if paths:
        _gradio().Examples(
            [[path] for path in paths], inputs=[upload], label="Or pick one of the searched images", elem_id=elem_id
        )


def _status_bar(demo, corpus) -> None:
    """The corpus status line, polled every second until the corpus is ready or failed."""
    gr = _gradio()

    def poll():
        status = corpus.status() if corpus is not None else None
        done = status is None or status.ready or status.error is not None
        return status_html(status), gr.Timer(active=not done)

    status_box = gr.HTML(status_html(corpus.status() if corpus is not None else None), elem_id="corpus-status")
    timer = gr.Timer(1.0, active=corpus is not None and not corpus.status().ready)
    for trigger in (timer.tick, demo.load):  # polls skip the queue: never wait behind a search
        trigger(poll, outputs=[status_box, timer], queue=False, show_progress="hidden")


def _search_tab(service: AppService) -> None:
    """Text -> images: a gallery of hits, plus footprints, overview and GeoJSON for a scene."""
    gr = _gradio()
    corpus = service.corpus
    scene = bool(corpus is not None and corpus.is_scene)

    def search(query, k):
        try:
            result = service.search(query, k)
        except RSRetrievalError as err:
            return (error_message(err), None) + (("", None, None) if scene else ())
        message = note_message(f"{len(result.items)} hits for “{query.strip()}”.")
        if not scene:
            return message, result.items
        footprints = (
            footprint_map_html(result.geojson)
            if corpus.georeferenced
            else (
                "<p>The scene has no CRS: footprints are in pixel "
                "coordinates (see the scene picture and the GeoJSON).</p>"
            )
        )
        return message, result.items, footprints, result.overview, result.geojson_path

    with gr.Tab("Text → images", id="search"):
        with gr.Row():
            query = gr.Textbox(label="Query", placeholder=EXAMPLE_QUERY, elem_id="query", scale=4)
            k = gr.Slider(1, MAX_K, value=DEFAULT_K, step=1, label="k (hits)", elem_id="k", scale=1)
        search_button = gr.Button("Search", variant="primary", elem_id="search-button")
        search_message = gr.HTML(elem_id="search-message", elem_classes="rs-message")
        gallery = gr.Gallery(
            label="Hits (rank, score, name); click to enlarge",
            columns=4,
            height="auto",
            object_fit="contain",
            elem_id="gallery",
        )
        outputs = [search_message, gallery]
        if scene:
            with gr.Row():
                footprints = gr.HTML(label="Hit footprints (WGS84)", elem_id="footprints")
                overview = gr.Image(
                    label="The scene, hits outlined (red: #1)",
                    type="filepath",
                    interactive=False,
                    elem_id="scene-overview",
                )
            geojson_file = gr.File(
                label="Hit footprints (GeoJSON, opens in QGIS)", elem_id="geojson", interactive=False
            )
            outputs += [footprints, overview, geojson_file]
        for trigger in (search_button.click, query.submit):
            trigger(search, [query, k], outputs)


def _upload_handler(service: AppService, run, render):
    """An image tab's event handler: decode the upload, `run(upload, *options)`, and return
    (message, the image as the model sees it, `render(result)`); typed errors become the message."""

    def handle(upload_path, *options):
        if upload_path is None:  # the upload was cleared
            return "", None, ""
        try:
            upload = service.read_upload(upload_path)
            result = run(upload, *options)
        except RSRetrievalError as err:
            return error_message(err), None, ""
        return note_message(upload.note), upload.image, render(result)

    return handle


def _preview(prefix: str):
    """The message line and the image preview of an image tab."""
    gr = _gradio()
    message = gr.HTML(elem_id=f"{prefix}-message", elem_classes="rs-message")
    preview = gr.Image(
        label="The image as the model sees it", type="pil", interactive=False, height=256, elem_id=f"{prefix}-preview"
    )
    return message, preview


def _captions_tab(service: AppService, examples: list[str]) -> None:
    """Image -> captions: the app's (or pasted) captions ranked for an uploaded image."""
    gr = _gradio()
    captions = _upload_handler(service, service.rank_captions, _caption_table)
    with gr.Tab("Image → captions", id="captions"):
        with gr.Row():
            with gr.Column():
                upload = gr.File(
                    label="Image (PNG, JPEG, TIFF incl. 16-bit)",
                    file_types=["image", ".tif", ".tiff"],
                    elem_id="caption-upload",
                )
                _examples(examples, upload, "caption-examples")
                pasted = gr.Textbox(
                    label=f"Captions, one per line (empty: the app's {len(service.captions)} captions)",
                    lines=4,
                    elem_id="pasted-captions",
                )
                button = gr.Button("Rank captions", variant="primary", elem_id="caption-button")
            with gr.Column():
                message, preview = _preview("caption")
        results = gr.HTML(elem_id="caption-results")
        outputs = [message, preview, results]
        upload.change(captions, [upload, pasted], outputs)  # upload, example pick or clear
        button.click(captions, [upload, pasted], outputs)


def _zeroshot_tab(service: AppService, examples: list[str]) -> None:
    """Zero-shot classification of an uploaded image over a class set or typed classes."""
    gr = _gradio()
    classify = _upload_handler(service, service.classify, probability_bars)
    class_sets = service.class_sets()
    with gr.Tab("Zero-shot classification", id="zeroshot"):
        with gr.Row():
            with gr.Column():
                upload = gr.File(label="Image", file_types=["image", ".tif", ".tiff"], elem_id="class-upload")
                _examples(examples, upload, "class-examples")
                class_set = gr.Dropdown(
                    class_sets, value=class_sets[0] if class_sets else None, label="Class set", elem_id="class-set"
                )
                typed = gr.Textbox(
                    label="Or type classes (comma separated; uses the set's prompt templates)", elem_id="typed-classes"
                )
                button = gr.Button("Classify", variant="primary", elem_id="class-button")
            with gr.Column():
                message, preview = _preview("class")
                gr.Markdown("**Class probabilities**")
                probabilities = gr.HTML(elem_id="class-probabilities")
        outputs = [message, preview, probabilities]
        upload.change(classify, [upload, class_set, typed], outputs)
        button.click(classify, [upload, class_set, typed], outputs)


def _about_tab(service: AppService) -> None:
    """The model, its processor and the corpus, described (`about.model_summary`)."""
    gr = _gradio()
    corpus = service.corpus
    with gr.Tab("About", id="about"):
        gr.Markdown(
            model_summary(service.model, service.processor, service.model_path, corpus.description if corpus else ""),
            elem_id="about",
        )


def build_app(service: AppService, title: str = "rs_retrieval"):
    """The `gr.Blocks` of the app (not launched): the corpus status line over four tabs."""
    gr = _gradio()
    examples = [str(path) for path in getattr(service.corpus, "example_paths", [])]
    with gr.Blocks(title=title) as demo:
        gr.Markdown(f"# {title}: remote-sensing image-text retrieval")
        _status_bar(demo, service.corpus)
        _search_tab(service)
        _captions_tab(service, examples)
        _zeroshot_tab(service, examples)
        _about_tab(service)
    return demo


def launch(
    service: AppService, host: str = "127.0.0.1", port: int | None = None, block: bool = True, quiet: bool = False
):
    """Serve the app; with `block=False` return the running `gr.Blocks` (its `local_url`) at once.

    No `allowed_paths`: the server hands out only its own folder (uploads and copies of the hits
    shown, see `files`), never the image folder or where its symlinks point."""
    gr = _gradio()
    session_folder()  # Gradio's upload folder: set before any component exists
    demo = build_app(service)
    theme = gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
    )
    demo.queue(default_concurrency_limit=1)  # one model, one request at a time
    demo.launch(
        server_name=host,
        server_port=port,
        prevent_thread_lock=not block,
        quiet=quiet,
        allowed_paths=[],
        max_file_size=4 * service.max_upload_bytes,
        theme=theme,
        css=CSS,
        show_error=False,
    )
    return demo
