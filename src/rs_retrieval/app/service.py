"""What the web app does, without the web: search a corpus, rank captions, classify zero-shot.

The UI layer (`ui.py`) only turns these results into components and `RSRetrievalError`s into
in-page messages, so everything here is testable without a browser. A folder corpus is encoded
in a background thread (`FolderCorpus.start`) so the first page renders while it runs.
"""

from __future__ import annotations

import json
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import RSRetrievalError
from ..fileio import atomic_write_text
from ..imagery import to_rgb_uint8
from ..optional import require
from ..search.folder_search import EncodedFolder, encode_folder, list_images, rank_captions, rank_encoded
from .files import served_copy, session_folder
from .uploads import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, Upload, read_upload

#: Image files a browser displays as they are.
BROWSER_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")
#: Images of the folder offered as upload examples.
EXAMPLES_SHOWN = 6
#: Most captions shown for one image.
CAPTIONS_SHOWN = 10


class AppInputError(RSRetrievalError, ValueError):
    """A request the app cannot answer as asked (empty query, empty class list, corpus not ready)."""


@dataclass(frozen=True)
class CorpusStatus:
    ready: bool
    done: int = 0
    total: int = 0
    error: str | None = None
    unit: str = "images"

    def message(self) -> str:
        if self.error:
            return f"Encoding failed: {self.error}"
        if not self.ready:
            return f"Encoding images: {self.done} / {self.total} new to the cache. Searches work when this finishes."
        skipped = f"; {self.total - self.done} unreadable files skipped" if self.done < self.total else ""
        return f"Ready: {self.done} {self.unit} searchable{skipped}."


@dataclass
class SearchResult:
    """Gallery items (image or path, caption) best first; for scene indexes also the hit footprints
    (GeoJSON) and a picture of the scene with the hits outlined."""

    items: list[tuple[object, str]]
    geojson: dict | None = None
    overview: str | None = None
    geojson_path: str | None = None


def _check_query(query: str) -> str:
    if not isinstance(query, str) or not query.strip():
        raise AppInputError("Type a query first, e.g. “two white planes beside a grey runway”.")
    return query.strip()


class FolderCorpus:
    """A folder of images; encodings come from (and go to) the search embedding cache."""

    is_scene = False

    def __init__(
        self, images_dir: str | Path, model, processor, cache_dir: str | Path | None = None, batch_size: int = 32
    ):
        self.images_dir = Path(images_dir)
        self.model, self.processor = model, processor
        self.cache_dir, self.batch_size = cache_dir, batch_size
        paths = list_images(self.images_dir)  # a bad folder fails at start-up, before the page
        self.num_images = len(paths)
        #: A few images of the folder offered as examples in the upload tabs.
        self.example_paths = paths[:: max(1, len(paths) // EXAMPLES_SHOWN)][:EXAMPLES_SHOWN]
        self._lock = threading.Lock()
        self._status = CorpusStatus(ready=False, total=self.num_images)
        self._encoded: EncodedFolder | None = None
        self._thread: threading.Thread | None = None

    @property
    def description(self) -> str:
        return f"{self.num_images} images in `{self.images_dir}`"

    def start(self) -> FolderCorpus:
        """Encode in the background; `status()` reports progress."""
        self._thread = threading.Thread(target=self._encode, name="rs-retrieval-encode", daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> CorpusStatus:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.status()

    def _progress(self, done: int, total: int) -> None:
        with self._lock:
            self._status = CorpusStatus(ready=False, done=done, total=total)

    def _encode(self) -> None:
        try:
            encoded = encode_folder(
                self.images_dir, self.model, self.processor, self.cache_dir, self.batch_size, progress=self._progress
            )
        except Exception as err:  # shown in the page; the server keeps running for the other tabs
            with self._lock:
                self._status = CorpusStatus(ready=False, error=f"{type(err).__name__}: {err}")
            return
        with self._lock:
            self._encoded = encoded
            self._status = CorpusStatus(ready=True, done=len(encoded.paths), total=self.num_images)

    def status(self) -> CorpusStatus:
        with self._lock:
            return self._status

    def search(self, query: str, k: int) -> SearchResult:
        status = self.status()
        if not status.ready:
            raise AppInputError(status.message())
        ranked = rank_encoded(query, self._encoded, self.model, self.processor, top_k=k)
        return SearchResult(
            [
                (self._gallery_image(path), f"#{rank} {score:.3f} {path.name}")
                for rank, (path, score) in enumerate(ranked, 1)
            ]
        )

    def _gallery_image(self, path: Path):
        """A served copy of the file where browsers can show it; otherwise (TIFF, 16-bit ...) its rendering by the processor's rule."""
        return served_copy(path) if path.suffix.lower() in BROWSER_IMAGE_SUFFIXES else _render(path, self.processor)


class IndexCorpus:
    """A prebuilt `rs_retrieval.index.RetrievalIndex` over image files or the tiles of a scene."""

    def __init__(self, index_path: str | Path, model, processor):
        from ..index import RetrievalIndex

        self.index_path = Path(index_path)
        self.index = RetrievalIndex.open(index_path, model=model, processor=processor)
        if self.index.manifest["source"]["kind"] == "stac":
            raise AppInputError(
                f"{index_path} indexes a STAC catalog; the app serves folder and scene indexes: "
                "search it with `rs-retrieval index search` (--geojson, --picture)"
            )
        self.processor = processor
        self.is_scene = bool(self.index.is_scene)
        self.source = self.index.manifest["source"]
        self.georeferenced = bool(self.is_scene and self.source.get("georeferenced"))
        self._outputs = Path(
            tempfile.mkdtemp(prefix="scene_", dir=session_folder())
        )  # the latest scene picture and GeoJSON

    @property
    def description(self) -> str:
        what = f"tiles of the scene `{self.source['scene']}`" if self.is_scene else "images"
        return f"index `{self.index_path}`: {len(self.index)} {what}"

    def start(self) -> IndexCorpus:
        return self

    def wait(self, timeout: float | None = None) -> CorpusStatus:
        return self.status()

    def status(self) -> CorpusStatus:
        return CorpusStatus(
            ready=True, done=len(self.index), total=len(self.index), unit="tiles" if self.is_scene else "images"
        )

    def search(self, query: str, k: int) -> SearchResult:
        hits = self.index.search(query, k)
        images = (
            self._tile_images(hits) if self.is_scene else [_render(Path(hit.path), self.processor) for hit in hits]
        )
        items = [
            (image, f"#{hit.rank} {hit.score:.3f} {hit.tile_id or Path(hit.path).name}")
            for image, hit in zip(images, hits)
        ]
        if not self.is_scene:
            return SearchResult(items)
        geojson = self.index.to_geojson(hits)
        geojson_path = self._outputs / "hits.geojson"  # one query at a time (the app's queue); Gradio copies it
        atomic_write_text(geojson_path, json.dumps(geojson))
        overview = self.index.draw(hits, self._outputs / "scene_hits.png")
        return SearchResult(items, geojson, str(overview), str(geojson_path))

    def _tile_images(self, hits) -> list[Image.Image]:
        """Each hit's window of the scene (the index's bands), rendered by the processor's rule."""
        rasterio = require("rasterio", "geo", "scene tiles")
        from rasterio.windows import Window

        with rasterio.open(self.source["scene"]) as scene:
            windows = [
                np.moveaxis(scene.read(self.source["bands"], window=Window(*hit.window)), 0, -1) for hit in hits
            ]
        mode, _ = rendering_rule(self.processor)  # the index already picked the bands
        return [Image.fromarray(to_rgb_uint8(pixels, mode), "RGB") for pixels in windows]


def rendering_rule(processor) -> tuple[str, list[int] | None]:
    """(rescale_mode, bands) the processor turns pixels into RGB with (CLIP-family processors: the defaults)."""
    image_processor = getattr(processor, "image_processor", None)
    return getattr(image_processor, "rescale_mode", "auto"), getattr(image_processor, "bands", None)


def _render(path: Path, processor) -> Image.Image:
    """An image file as the model sees it."""
    return Image.fromarray(to_rgb_uint8(path, *rendering_rule(processor)), "RGB")


@dataclass
class AppService:
    """The loaded model and what the app searches; each method answers one tab."""

    model: object
    processor: object
    model_path: str
    corpus: FolderCorpus | IndexCorpus | None = None
    captions: list[str] = field(default_factory=list)
    max_upload_bytes: int = DEFAULT_MAX_BYTES
    max_upload_pixels: int = DEFAULT_MAX_PIXELS
    #: Class-set files (or packaged names) offered first in the zero-shot tab.
    extra_class_sets: list[str] = field(default_factory=list)
    _classifiers: dict = field(default_factory=dict, init=False, repr=False)

    def read_upload(self, path: str | Path | None) -> Upload:
        return read_upload(path, self.max_upload_bytes, self.max_upload_pixels, *rendering_rule(self.processor))

    def search(self, query: str, k: int) -> SearchResult:
        query = _check_query(query)
        if self.corpus is None:
            raise AppInputError("No images to search: start the app with --images DIR or --index INDEX.")
        return self.corpus.search(query, int(k))

    def rank_captions(self, upload: Upload, pasted: str = "") -> list[tuple[str, float]]:
        """Top captions for the image: the pasted list (one per line) if any, else the app's caption set."""
        captions = [line.strip() for line in (pasted or "").splitlines() if line.strip()] or self.captions
        if not captions:
            raise AppInputError(
                "No captions to rank: paste some (one per line) or start the app with --captions FILE."
            )
        return rank_captions(upload.pixels, captions, self.model, self.processor)[:CAPTIONS_SHOWN]

    def classify(self, upload: Upload, class_set: str | None, typed: str = "") -> dict[str, float]:
        """Class probabilities for the chosen class set, or for typed classes (comma or line separated) with its templates."""
        typed_classes = tuple(
            dict.fromkeys(c.strip() for c in (typed or "").replace("\n", ",").split(",") if c.strip())
        )
        if not class_set:
            raise AppInputError("Pick a class set (typed classes use its prompt templates).")
        if len(typed_classes) == 1:
            raise AppInputError("Type at least two classes to choose between.")
        classifier = self._classifier(class_set, typed_classes)
        probabilities = classifier.predict_proba([upload.image])[0]
        return {name: float(p) for name, p in zip(classifier.classes, probabilities.tolist())}

    def _classifier(self, class_set: str, typed_classes: tuple[str, ...]):
        """One `ZeroShotClassifier` per (set, typed classes): its class prompts are encoded once."""
        key = (class_set, typed_classes)
        if key not in self._classifiers:
            from ..zeroshot import ClassSet, ZeroShotClassifier, load_class_set

            chosen = load_class_set(class_set)
            if typed_classes:
                chosen = ClassSet(name="typed", classes=typed_classes, templates=chosen.templates)
            self._classifiers[key] = ZeroShotClassifier(self.model, self.processor, chosen)
        return self._classifiers[key]

    def class_sets(self) -> list[str]:
        from ..zeroshot import list_class_sets

        return list(dict.fromkeys([*self.extra_class_sets, *list_class_sets()]))


def read_caption_file(path: str | Path) -> list[str]:
    """Unique non-blank captions from a text file (one per line) or a Karpathy-style release JSON."""
    path = Path(path)
    if not path.is_file():
        raise AppInputError(f"caption file {path} not found")
    if path.suffix.lower() == ".json":
        from ..data.readers import read_release_json

        captions: Sequence[str] = [
            c for split in read_release_json(path).values() for record in split for c in record.captions
        ]
    else:
        captions = path.read_text(encoding="utf-8").splitlines()
    return list(dict.fromkeys(c.strip() for c in captions if c.strip()))
