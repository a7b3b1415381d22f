"""`RetrievalIndex`: build, open and search an index of image files or of a scene's tiles.

Search has one or two stages. Models whose `score` is the cosine of the `embeds` (dual encoders)
are answered by the vector index alone. Pair-dependent methods (AMFMN's image-guided gate,
CMPAGL's fusion re-rank; `score_is_cosine = False`) use the cosine of the same embeddings as a
factorised first stage that returns K' candidates, which `model.score` then re-ranks exactly
from the stored image cache. K' (`candidates`) trades time for recall against brute force.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..errors import RSRetrievalError
from ..search.engine import _scores, _text_cache, model_fingerprint
from . import store
from .encode import assemble_rows, claim_parts, encode_inputs, encode_source, gather_results, load_parts
from .sources import FileSource, SceneSource
from .vectors import VectorIndexConfig, build_faiss_index, normalize_rows, read_faiss_index, search_faiss_index

logger = logging.getLogger(__name__)

#: Default K' per requested hit for two-stage search.
CANDIDATES_PER_HIT = 10


class IndexBuildError(RSRetrievalError, ValueError):
    """Bad build options, or nothing left to index."""


class IndexQueryError(RSRetrievalError, ValueError):
    """Bad query (empty text, wrong type, k < 1) or an index opened without a model."""


@dataclass(frozen=True)
class SearchHit:
    """One result. Files have `path`; scene tiles have `tile_id`, `window` (col_off, row_off,
    width, height in pixels), `bounds` (left, bottom, right, top in `crs`; in pixels when the
    scene has no CRS) and `bounds_wgs84` (lon/lat box, georeferenced scenes only)."""

    rank: int
    score: float
    row: int
    file_hash: str
    path: str | None = None
    tile_id: str | None = None
    window: tuple[int, int, int, int] | None = None
    bounds: tuple[float, float, float, float] | None = None
    crs: str | None = None
    bounds_wgs84: tuple[float, float, float, float] | None = None


def is_two_stage(model) -> bool:
    return not getattr(model, "score_is_cosine", True)


def _tuple(value):
    return None if value is None else tuple(value)


def _model_location(model) -> str:
    """Where `open` can load the model from later: an absolute folder, or the Hub id as given."""
    name = str(getattr(model, "name_or_path", "") or "")
    return str(Path(name).resolve()) if name and Path(name).exists() else name


def _accelerator(world_size: int):
    """The process group of an `accelerate launch` run (gloo on CPU-only machines)."""
    from accelerate import Accelerator

    # Without cpu=True, ranks launched on a machine with no accelerator would each run alone.
    accelerator = Accelerator(cpu=not torch.accelerator.is_available())
    if accelerator.num_processes != world_size:
        raise RuntimeError(f"launched {world_size} processes but accelerate runs {accelerator.num_processes}")
    return accelerator


class RetrievalIndex:
    """An opened index folder (see `rs_retrieval.index.store` for the layout)."""

    def __init__(self, folder: Path, manifest: dict, model=None, processor=None, mmap: bool = True):
        import pyarrow.parquet as pq

        self.folder, self.manifest = folder, manifest
        self.model, self.processor = model, processor
        gen = folder / store.generation_name(manifest["generation"])
        self.vector_config = VectorIndexConfig(**manifest["vector_index"])
        self.faiss_index = read_faiss_index(gen / "vectors.faiss", mmap=mmap)
        self.vectors = np.load(gen / "vectors.npy", mmap_mode="r" if mmap else None)
        self.metadata = pq.read_table(gen / "metadata.parquet", memory_map=mmap)
        self.shards = store.ShardReader(gen, manifest["image_cache_keys"])

    # ------------------------------------------------------------------ open / build
    @classmethod
    def open(cls, path: str | os.PathLike, model=None, processor=None, verify: bool = True, mmap: bool = True) -> "RetrievalIndex":
        """Open an index memory-mapped. `model`: a loaded model (with `processor`), a model path or
        Hub id, or None to load the model recorded at build time on the first query. `verify`
        checks every file against the manifest's checksums."""
        folder = Path(path)
        manifest = store.read_manifest(folder)
        if verify:
            store.verify_files(folder, manifest)
        index = cls(folder, manifest, mmap=mmap)
        if model is not None:
            index.set_model(model, processor)
        return index

    def set_model(self, model, processor=None) -> None:
        """Attach the model queries are encoded with; refused unless its fingerprint matches."""
        if isinstance(model, (str, os.PathLike)):
            from ..search.commands import load_model

            model, processor = load_model(str(model), precision=self.manifest["model"].get("precision", "fp32"))  # as the index was built
        if processor is None:
            raise IndexQueryError("a model object needs its processor (RetrievalIndex.open(path, model, processor))")
        store.check_fingerprint(self.manifest, model_fingerprint(model, processor), self.folder)
        self.model, self.processor = model.eval(), processor

    @classmethod
    def build(
        cls, model, processor, out: str | os.PathLike, *, images=None, dataset: str | None = None, scene=None,
        split: str = "test", dataset_options: dict | None = None, recursive: bool = False, tile_size: int = 256, stride: int | None = None,
        bands: list[int] | None = None, index: str | VectorIndexConfig = "auto", batch_size: int = 32,
        strict: bool = False, overwrite: bool = False, progress: bool = True,
    ) -> "RetrievalIndex":
        """Encode `images` (a folder), a `dataset` split (`dataset_options` go to `load_dataset`), or
        a `scene` (GeoTIFF / COG, tiled by `tile_size` and `stride`; `bands` 1-based) into `out`.

        If `out` already holds an index of this model, only new or changed files are encoded and
        removed files are dropped; a different model is refused unless `overwrite`. An interrupted
        build resumes. Under `accelerate launch` the items are split across the processes.
        Unreadable files are skipped with a warning (`strict`: raise instead).
        """
        chosen = [name for name, value in (("images", images), ("dataset", dataset), ("scene", scene)) if value is not None]
        if len(chosen) != 1:
            raise IndexBuildError(f"give exactly one of images=, dataset=, scene= (got {chosen or 'none'})")
        if scene is not None:
            source = SceneSource(scene, tile_size, stride, bands)
        elif dataset is not None:
            source = FileSource.from_dataset(dataset, split, **(dataset_options or {}))
        else:
            source = FileSource.from_folder(images, recursive)
        config = index if isinstance(index, VectorIndexConfig) else VectorIndexConfig(kind=index)
        folder = Path(out)
        model.eval()
        fingerprint = model_fingerprint(model, processor)
        previous_manifest, previous = cls._previous(folder, fingerprint, overwrite)

        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        accelerator = _accelerator(world_size) if world_size > 1 else None
        rank = accelerator.process_index if accelerator else 0
        if accelerator:
            model.to(accelerator.device)
        started = time.perf_counter()
        if rank == 0:
            claim_parts(folder, fingerprint)
        if accelerator:
            accelerator.wait_for_everyone()
        known = set(previous[0]) if previous else set()
        encode_source(model, processor, source, folder, known, rank, world_size, batch_size, strict, progress)
        if accelerator:
            accelerator.wait_for_everyone()
        if rank == 0:
            cls._merge(model, folder, source, config, fingerprint, previous_manifest, previous, world_size, time.perf_counter() - started, progress)
        if accelerator:
            accelerator.wait_for_everyone()
        index = cls(folder, store.read_manifest(folder))
        index.model, index.processor = model, processor  # fingerprint checked above
        return index

    @staticmethod
    def _previous(folder: Path, fingerprint: str, overwrite: bool):
        """The current manifest of `folder` and (key -> row, shard reader) to reuse, if any."""
        import pyarrow.parquet as pq

        if not (folder / store.MANIFEST_NAME).is_file():
            if folder.exists() and any(p.name != store.PARTS_DIR for p in folder.iterdir()):
                raise IndexBuildError(f"{folder} exists and is not an index folder; choose a new output folder")
            return None, None
        manifest = store.read_manifest(folder)
        if manifest["fingerprint"] != fingerprint:
            if not overwrite:
                store.check_fingerprint(manifest, fingerprint, folder)
            return manifest, None
        store.verify_files(folder, manifest)
        gen = folder / store.generation_name(manifest["generation"])
        keys = pq.read_table(gen / "metadata.parquet", columns=["file_hash"]).column("file_hash").to_pylist()
        return manifest, ({key: row for row, key in enumerate(keys)}, store.ShardReader(gen, manifest["image_cache_keys"]))

    @staticmethod
    def _merge(model, folder, source, config, fingerprint, previous_manifest, previous, world_size, encode_seconds, progress) -> None:
        import pyarrow as pa

        results = gather_results(folder, world_size)
        order = sorted(results.keys)
        if not order:
            raise IndexBuildError(f"nothing to index: all {len(source)} items were unreadable")
        keys = [results.keys[i] for i in order]
        cache = assemble_rows(keys, load_parts(folder / store.PARTS_DIR), previous)
        vectors = normalize_rows(cache["embeds"].reshape(len(keys), -1))
        config = config.resolved(len(vectors))
        with tqdm(total=len(vectors), desc=f"{config.kind} index", unit="vec", disable=not progress) as bar:
            faiss_index = build_faiss_index(vectors, config, progress=lambda done: bar.update(done - bar.n))
        metadata = pa.table({"row": np.arange(len(keys), dtype=np.int64), **source.metadata_columns(order, keys)})
        generation = (previous_manifest["generation"] + 1) if previous_manifest else 1
        files = store.write_generation(folder, generation, vectors, cache, metadata, faiss_index)
        skipped = [f"{source.name(i)}: {reason}" for i, reason in sorted(results.skipped.items())]
        manifest = {
            "format": store.FORMAT, "generation": generation, "fingerprint": fingerprint,
            "model": {"class": type(model).__name__, "name_or_path": _model_location(model), "precision": getattr(model, "precision", "fp32")},
            "two_stage": is_two_stage(model), "source": source.description, "count": len(keys), "dim": int(vectors.shape[1]),
            "image_cache_keys": sorted(cache), "vector_index": config.to_dict(),
            "build": {"encoded": results.encoded, "reused": len(set(keys)) - results.encoded, "skipped": len(skipped),
                      "processes": world_size, "seconds": round(encode_seconds, 3)},
            "skipped": skipped, "files": files,
        }
        store.commit(folder, manifest)
        if skipped:
            logger.warning("skipped %d unreadable item(s) of %d (listed in %s)", len(skipped), len(source), folder / store.MANIFEST_NAME)

    # ------------------------------------------------------------------ search
    @property
    def is_scene(self) -> bool:
        return self.manifest["source"]["kind"] == "scene"

    def __len__(self) -> int:
        return self.manifest["count"]

    def _require_model(self):
        if self.model is None:
            name = self.manifest["model"].get("name_or_path")
            if not name:
                raise IndexQueryError(f"index {self.folder} was opened without a model and records no model path; pass model= to open()")
            self.set_model(name)
        return self.model, self.processor

    @torch.no_grad()
    def search(self, query: "str | Image.Image | np.ndarray", k: int = 20, candidates: int | None = None) -> list[SearchHit]:
        """The `k` best items for a text query (or, for an image query, a PIL image or a pixel array
        [H, W, bands], the most similar images by embedding cosine). Two-stage models re-rank
        `candidates` (K', default 10 k) first-stage hits with `model.score`."""
        if k < 1:
            raise IndexQueryError(f"k must be >= 1, got {k}")
        model, processor = self._require_model()
        if isinstance(query, (Image.Image, np.ndarray)):
            embeds = encode_inputs(model, [processor.image_inputs({"image": [query]}, train=False)])["embeds"]
            scores, rows = self._first_stage(embeds, k)
        elif isinstance(query, str) and query.strip():
            text_cache = _text_cache(model, processor, [query])
            if not self.manifest["two_stage"]:
                scores, rows = self._first_stage(text_cache["embeds"], k)
            else:
                _, rows = self._first_stage(text_cache["embeds"], max(k, candidates or CANDIDATES_PER_HIT * k))
                image_cache = {name: torch.from_numpy(array) for name, array in self.shards.gather(rows).items()}
                exact = _scores(model, image_cache, text_cache)
                best = torch.sort(-exact, stable=True).indices[:k]
                scores, rows = exact[best].numpy(), rows[best.numpy()]
        else:
            raise IndexQueryError(f"query must be a non-empty string or a PIL image, got {query!r:.80}")
        return self._hits(rows, scores)

    def _first_stage(self, embeds: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
        query = normalize_rows(embeds.float().cpu().numpy().reshape(1, -1))
        scores, rows = search_faiss_index(self.faiss_index, self.vectors, query, k, self.vector_config)
        valid = rows[0] >= 0
        return scores[0][valid], rows[0][valid]

    def _hits(self, rows: np.ndarray, scores: np.ndarray) -> list[SearchHit]:
        records = self.metadata.take(np.asarray(rows, dtype=np.int64)).to_pylist()
        return [
            SearchHit(
                rank=rank, score=float(score), row=record["row"], file_hash=record["file_hash"], path=record.get("path"),
                tile_id=record.get("tile_id"), window=_tuple(record.get("window")), bounds=_tuple(record.get("bounds")),
                crs=record.get("crs"), bounds_wgs84=_tuple(record.get("bounds_wgs84")),
            )
            for rank, (record, score) in enumerate(zip(records, scores), start=1)
        ]

    def to_geojson(self, hits: list[SearchHit]) -> dict:
        from .geo import hits_to_geojson

        return hits_to_geojson(hits)

    def draw(self, hits: list[SearchHit], out_path: str | os.PathLike, query: str = "") -> Path:
        """A picture of the hits under the query: the scene with the tiles outlined (scene index)
        or a contact sheet of the images."""
        if self.is_scene:
            from .geo import draw_scene_hits

            return draw_scene_hits(self.manifest["source"], hits, out_path, f'Query: "{query}"' if query else "")
        from ..search.engine import make_contact_sheet

        return make_contact_sheet(query, [(Path(hit.path), hit.score) for hit in hits], out_path)
