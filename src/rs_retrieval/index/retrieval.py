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
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..errors import RSRetrievalError
from ..fileio import reporting_full_disk
from ..search.folder_search import _scores, _text_cache, model_fingerprint
from . import store
from .encode import assemble_rows, claim_parts, encode_inputs, encode_source, gather_results, load_parts
from .filters import FilterColumns, SearchFilter, filtered_search
from .geoparquet import DTYPES, EMBEDDINGS_DIR, embedding_matrix, model_metadata, read_embedding_parts, replace_parts
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
class BuildSettings:
    """What every build step needs besides the model and the source."""

    index: VectorIndexConfig
    fingerprint: str
    embedding_dtype: str
    progress: bool


@dataclass(frozen=True)
class SearchHit:
    """One result. Files have `path`; scene tiles have `tile_id`, `window` (col_off, row_off,
    width, height in pixels), `bounds` (left, bottom, right, top in `crs`; in pixels when the
    scene has no CRS) and `bounds_wgs84` (lon/lat box, georeferenced scenes only). Rows of an
    index built from embedding parts have `tile_id` (the row id), `item_id`, `datetime` (ISO 8601,
    UTC), `bounds_wgs84` (the bbox) and `geometry` (the footprint as WKB in EPSG:4326)."""

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
    item_id: str | None = None
    datetime: str | None = None
    geometry: bytes | None = field(default=None, repr=False)


def _window(value):
    """A window as a list (scene metadata) or a struct (embedding parts) -> (col_off, row_off, width, height)."""
    return [value[key] for key in ("col_off", "row_off", "width", "height")] if isinstance(value, dict) else value


def _box(value):
    return None if value is None else [value[key] for key in ("xmin", "ymin", "xmax", "ymax")]


def _iso(moment):
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


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
        self.faiss_index = store.read_index_file(gen / "vectors.faiss", lambda path: read_faiss_index(path, mmap=mmap))
        self.vectors = store.read_index_file(
            gen / "vectors.npy", lambda path: np.load(path, mmap_mode="r" if mmap else None)
        )
        self.metadata = store.read_index_file(
            gen / "metadata.parquet", lambda path: pq.read_table(path, memory_map=mmap)
        )
        self.shards = store.ShardReader(gen, manifest["image_cache_keys"])
        rows = {
            "vectors.faiss": self.faiss_index.ntotal,
            "vectors.npy": len(self.vectors),
            "metadata.parquet": self.metadata.num_rows,
        }
        if set(rows.values()) != {manifest["count"]}:
            raise store.IndexCorruptError(
                f"index files in {gen} do not agree with the manifest's "
                f"{manifest['count']} rows ({rows}): rebuild the index"
            )

    # ------------------------------------------------------------------ open / build
    @classmethod
    def open(
        cls, path: str | os.PathLike, model=None, processor=None, verify: bool = True, mmap: bool = True
    ) -> RetrievalIndex:
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
            from ..pretrained import load_model_and_processor

            model, processor = load_model_and_processor(
                str(model), precision=self.manifest["model"].get("precision", "fp32")
            )  # as the index was built
        if processor is None:
            raise IndexQueryError("a model object needs its processor (RetrievalIndex.open(path, model, processor))")
        store.check_fingerprint(self.manifest, model_fingerprint(model, processor), self.folder)
        self.model, self.processor = model.eval(), processor

    @classmethod
    def build(
        cls,
        model,
        processor,
        out: str | os.PathLike,
        *,
        images=None,
        dataset: str | None = None,
        scene=None,
        stac=None,
        split: str = "test",
        dataset_options: dict | None = None,
        recursive: bool = False,
        tile_size: int = 256,
        stride: int | None = None,
        bands: list[int] | None = None,
        bbox=None,
        datetime: str | None = None,
        max_cloud: float | None = None,
        assets: list[str] | None = None,
        asset: str | None = None,
        index: str | VectorIndexConfig = "auto",
        batch_size: int = 32,
        strict: bool = False,
        overwrite: bool = False,
        progress: bool = True,
        engine: str = "local",
        ray_address: str | None = None,
        num_gpus_per_worker: float = 0.0,
        ray_workers: int | None = None,
        embedding_dtype: str = "float32",
    ) -> RetrievalIndex:
        """Encode `images` (a folder), a `dataset` split (`dataset_options` go to `load_dataset`), a
        `scene` (GeoTIFF / COG, tiled by `tile_size` and `stride`; `bands` 1-based) or the items of
        a `stac` catalog (filtered by `bbox` W,S,E,N, `datetime` START/END and `max_cloud`; bands
        from `assets` or one multi-band `asset`, see `rs_retrieval.index.stac`) into `out`.

        If `out` already holds an index of this model, only new or changed files are encoded and removed files are
        dropped; a different model is refused unless `overwrite`. An interrupted build resumes. `engine="local"`
        encodes here (under `accelerate launch` the items are split across the processes); `engine="ray"` runs the
        encoding as a Ray Data job (`ray_address`: an existing cluster; `num_gpus_per_worker`: GPU actors;
        `ray_workers`: pool size), see `rs_retrieval.index.ray_engine`. Every build also writes the rows as GeoParquet
        (`out/embeddings`, `embedding_dtype`). Unreadable files are skipped with a warning (`strict`: raise instead).
        """
        chosen = [
            name
            for name, value in (("images", images), ("dataset", dataset), ("scene", scene), ("stac", stac))
            if value is not None
        ]
        if len(chosen) != 1:
            raise IndexBuildError(f"give exactly one of images=, dataset=, scene=, stac= (got {chosen or 'none'})")
        if engine not in ("local", "ray"):
            raise IndexBuildError(f"engine must be 'local' or 'ray', got {engine!r}")
        if embedding_dtype not in DTYPES:
            raise IndexBuildError(f"embedding dtype must be one of {', '.join(DTYPES)}, got {embedding_dtype!r}")
        if scene is not None:
            source = SceneSource(scene, tile_size, stride, bands)
        elif stac is not None:
            from .stac import StacSource

            source = StacSource(
                stac,
                tile_size,
                stride,
                bbox=bbox,
                datetime_range=datetime,
                max_cloud=max_cloud,
                assets=assets,
                asset=asset,
            )
        elif dataset is not None:
            source = FileSource.from_dataset(dataset, split, **(dataset_options or {}))
        else:
            source = FileSource.from_folder(images, recursive)
        config = index if isinstance(index, VectorIndexConfig) else VectorIndexConfig(kind=index)
        folder = Path(out)
        model.eval()
        fingerprint = model_fingerprint(model, processor)
        previous_manifest, previous = cls._previous(folder, fingerprint, overwrite)
        settings = BuildSettings(config, fingerprint, embedding_dtype, progress)

        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if engine == "ray":
            if world_size > 1:
                raise IndexBuildError(
                    "--engine ray runs its own workers: start it as one process, not under accelerate launch"
                )
            if getattr(model, "precision", "fp32") == "int8":
                raise IndexBuildError(
                    "--precision int8 encodes with ONNX Runtime sessions, which cannot be shipped to Ray actors: "
                    "use --precision fp32 or bf16 with --engine ray, or --engine local"
                )
            if is_two_stage(model):
                raise IndexBuildError(
                    f"--engine ray writes the first-stage embeddings only; {type(model).__name__} re-ranks with its "
                    "full image cache (two-stage search): build it with --engine local"
                )
            from .ray_engine import encode_with_ray

            started = time.perf_counter()
            stats = encode_with_ray(
                model,
                processor,
                source,
                folder,
                _model_location(model),
                fingerprint,
                embedding_dtype,
                batch_size=batch_size,
                address=ray_address,
                num_gpus_per_worker=num_gpus_per_worker,
                workers=ray_workers,
                strict=strict,
                progress=progress,
            )
            cls._merge_parts(model, folder, source, settings, previous_manifest, stats, time.perf_counter() - started)
            index = cls(folder, store.read_manifest(folder))
            index.model, index.processor = model, processor
            return index

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
        intact = "the previous index is unchanged" if previous_manifest else "no index was published"
        with reporting_full_disk(
            f"the index {folder}", f"{intact}; what was encoded is kept: run the same build again once there is space"
        ):
            encode_source(model, processor, source, folder, known, rank, world_size, batch_size, strict, progress)
            if accelerator:
                accelerator.wait_for_everyone()
            if rank == 0:
                cls._merge(
                    model,
                    folder,
                    source,
                    settings,
                    previous_manifest,
                    previous,
                    world_size,
                    time.perf_counter() - started,
                )
        if accelerator:
            accelerator.wait_for_everyone()
        index = cls(folder, store.read_manifest(folder))
        index.model, index.processor = model, processor  # fingerprint checked above
        return index

    @classmethod
    def from_parts(
        cls,
        model,
        processor,
        parts: str | os.PathLike,
        out: str | os.PathLike,
        *,
        index: str | VectorIndexConfig = "ivf-ondisk",
        overwrite: bool = False,
        progress: bool = True,
    ) -> RetrievalIndex:
        """Index the embedding parts (`part-*.parquet`) that `model` encoded, without encoding
        anything: kind `ivf-ondisk` (the default) is built out of core (`rs_retrieval.index.ondisk`).
        Refused when the parts were encoded by another model, or for a two-stage model (the parts
        hold its embeddings, not the image cache its re-ranking needs)."""
        from .ondisk import build_from_parts, read_parts

        if is_two_stage(model):
            raise IndexBuildError(
                f"{type(model).__name__} re-ranks with its image cache, which "
                "embedding parts do not hold; build from the images or the scene instead"
            )
        fingerprint = model_fingerprint(model.eval(), processor)
        found = read_parts(parts)
        if found.fingerprint != fingerprint:
            raise store.FingerprintMismatchError(
                f"the parts in {parts} were encoded by a model with fingerprint "
                f"{found.fingerprint}, not the given model's {fingerprint}"
            )
        config = index if isinstance(index, VectorIndexConfig) else VectorIndexConfig(kind=index)
        with tqdm(total=found.count, unit="row", disable=not progress) as bar:

            def report(stage: str, done: int) -> None:
                bar.set_description(f"{config.kind} index: {stage}", refresh=False)
                bar.update(done - bar.n)

            build_from_parts(
                parts,
                out,
                config,
                overwrite=overwrite,
                progress=report,
                manifest={"model": {"class": type(model).__name__, "name_or_path": _model_location(model)}},
            )
        opened = cls(Path(out), store.read_manifest(Path(out)))
        opened.model, opened.processor = model, processor  # fingerprint checked above
        return opened

    @staticmethod
    def _previous(folder: Path, fingerprint: str, overwrite: bool):
        """The current manifest of `folder` and (key -> row, shard reader) to reuse, if any."""
        import pyarrow.parquet as pq

        if not (folder / store.MANIFEST_NAME).is_file():
            if folder.exists() and any(p.name not in (store.PARTS_DIR, EMBEDDINGS_DIR) for p in folder.iterdir()):
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
        return manifest, (
            {key: row for row, key in enumerate(keys)},
            store.ShardReader(gen, manifest["image_cache_keys"]),
        )

    @staticmethod
    def _merge(model, folder, source, settings, previous_manifest, previous, world_size, encode_seconds) -> None:
        """Local engine: the ranks' parts (and reused rows of the previous generation) become the
        new generation and its GeoParquet embeddings."""
        results = gather_results(folder, world_size)
        order = sorted(results.keys)
        if not order:
            raise IndexBuildError(f"nothing to index: all {len(source)} items were unreadable or nodata")
        keys = [results.keys[i] for i in order]
        cache = assemble_rows(keys, load_parts(folder / store.PARTS_DIR), previous)
        vectors = normalize_rows(cache["embeds"].reshape(len(keys), -1))
        meta = model_metadata(_model_location(model), settings.fingerprint, vectors.shape[1], settings.embedding_dtype)
        replace_parts(folder, source.embedding_columns(order), vectors, meta)
        skipped = [f"{source.name(i)}: {reason}" for i, reason in sorted(results.skipped.items())]
        stats = {
            "encoded": results.encoded,
            "reused": len(set(keys)) - results.encoded,
            "skipped": len(skipped),
            "nodata": results.nodata,
            "engine": "local",
            "processes": world_size,
            "seconds": round(encode_seconds, 3),
        }
        RetrievalIndex._commit_generation(
            model, folder, source, settings, previous_manifest, order, keys, vectors, cache, stats, skipped
        )

    @staticmethod
    def _merge_parts(model, folder, source, settings, previous_manifest, stats, encode_seconds) -> None:
        """Ray engine: the GeoParquet parts (one row per encoded tile) become the new generation."""
        import pyarrow as pa

        position = {tile_id: i for i, tile_id in enumerate(source.ids(range(len(source))))}
        table = pa.Table.from_batches(list(read_embedding_parts(folder, ["id", "embedding"], settings.fingerprint)))
        rows = np.array([position[i] for i in table.column("id").to_pylist()], dtype=np.int64)
        if not len(rows):
            raise IndexBuildError(f"nothing to index: all {len(source)} items were unreadable or nodata")
        sort = np.argsort(rows, kind="stable")
        order = rows[sort].tolist()
        vectors = normalize_rows(embedding_matrix(table)[sort])
        keys = [source.key(i) for i in order]
        skipped = [f"{source.name(i)}: {reason}" for i, reason in sorted(stats.pop("skipped").items())]
        stats = {**stats, "skipped": len(skipped), "engine": "ray", "seconds": round(encode_seconds, 3)}
        cache = {"embeds": vectors}  # one-stage models: the first-stage vectors are the whole cache
        RetrievalIndex._commit_generation(
            model, folder, source, settings, previous_manifest, order, keys, vectors, cache, stats, skipped
        )

    @staticmethod
    def _commit_generation(
        model, folder, source, settings, previous_manifest, order, keys, vectors, cache, stats, skipped
    ) -> None:
        import pyarrow as pa

        config = settings.index.resolved(len(vectors))
        with tqdm(total=len(vectors), desc=f"{config.kind} index", unit="vec", disable=not settings.progress) as bar:
            faiss_index = build_faiss_index(vectors, config, progress=lambda done: bar.update(done - bar.n))
        metadata = pa.table({"row": np.arange(len(keys), dtype=np.int64), **source.metadata_columns(order, keys)})
        generation = (previous_manifest["generation"] + 1) if previous_manifest else 1
        files = store.write_generation(folder, generation, vectors, cache, metadata, faiss_index)
        manifest = {
            "format": store.FORMAT,
            "generation": generation,
            "fingerprint": settings.fingerprint,
            "model": {
                "class": type(model).__name__,
                "name_or_path": _model_location(model),
                "precision": getattr(model, "precision", "fp32"),
            },
            "two_stage": is_two_stage(model),
            "source": source.description,
            "count": len(keys),
            "dim": int(vectors.shape[1]),
            "image_cache_keys": sorted(cache),
            "vector_index": config.to_dict(),
            "embedding_dtype": settings.embedding_dtype,
            "build": stats,
            "skipped": skipped,
            "files": files,
        }
        store.commit(folder, manifest)
        if skipped:
            logger.warning(
                "skipped %d unreadable item(s) of %d (listed in %s)",
                len(skipped),
                len(source),
                folder / store.MANIFEST_NAME,
            )

    # ------------------------------------------------------------------ search
    @property
    def is_scene(self) -> bool:
        return self.manifest["source"]["kind"] == "scene"

    @property
    def is_tiled(self) -> bool:
        """Rows are tiles with windows and footprints (one scene or the items of a STAC catalog)."""
        return self.manifest["source"]["kind"] in ("scene", "stac")

    def __len__(self) -> int:
        return self.manifest["count"]

    def _require_model(self):
        if self.model is None:
            name = self.manifest["model"].get("name_or_path")
            if not name:
                raise IndexQueryError(
                    f"index {self.folder} was opened without a model and records no model path; pass model= to open()"
                )
            self.set_model(name)
        return self.model, self.processor

    @torch.no_grad()
    def search(
        self,
        query: str | Image.Image | np.ndarray,
        k: int = 20,
        candidates: int | None = None,
        bbox: str | tuple | None = None,
        datetime: str | None = None,
    ) -> list[SearchHit]:
        """The `k` best items for a text query (or, for an image query, a PIL image or a pixel array
        [H, W, bands], the most similar images by embedding cosine). Two-stage models re-rank
        `candidates` (K', default 10 k) first-stage hits with `model.score`. `bbox` (W,S,E,N in
        degrees) and `datetime` (START/END, RFC 3339) keep only the rows inside; the hits are the
        best of those (`rs_retrieval.index.filters`)."""
        if k < 1:
            raise IndexQueryError(f"k must be >= 1, got {k}")
        search_filter = SearchFilter.parse(bbox, datetime)
        allowed = self.filter_columns.mask(search_filter, len(self)) if search_filter.active else None
        if allowed is not None and not allowed.any():
            return []
        model, processor = self._require_model()
        if isinstance(query, (Image.Image, np.ndarray)):
            embeds = encode_inputs(model, [processor.image_inputs({"image": [query]}, train=False)])["embeds"]
            scores, rows = self._first_stage(embeds, k, allowed)
        elif isinstance(query, str) and query.strip():
            text_cache = _text_cache(model, processor, [query])
            if not self.manifest["two_stage"]:
                scores, rows = self._first_stage(text_cache["embeds"], k, allowed)
            else:
                _, rows = self._first_stage(
                    text_cache["embeds"], max(k, candidates or CANDIDATES_PER_HIT * k), allowed
                )
                image_cache = {name: torch.from_numpy(array) for name, array in self.shards.gather(rows).items()}
                exact = _scores(model, image_cache, text_cache)
                best = torch.sort(-exact, stable=True).indices[:k]
                scores, rows = exact[best].numpy(), rows[best.numpy()]
        else:
            raise IndexQueryError(f"query must be a non-empty string or a PIL image, got {query!r:.80}")
        return self._hits(rows, scores)

    @cached_property
    def filter_columns(self) -> FilterColumns:
        """Footprint boxes and dates of every row as numpy arrays (read on the first filtered query)."""
        return FilterColumns.from_table(self.metadata)

    def _first_stage(
        self, embeds: torch.Tensor, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        query = normalize_rows(embeds.float().cpu().numpy().reshape(1, -1))
        if allowed is None:
            scores, rows = search_faiss_index(self.faiss_index, self.vectors, query, k, self.vector_config)
        else:
            scores, rows = filtered_search(self.faiss_index, self.vectors, query, k, self.vector_config, allowed)
        valid = rows[0] >= 0
        return scores[0][valid], rows[0][valid]

    def _hits(self, rows: np.ndarray, scores: np.ndarray) -> list[SearchHit]:
        records = self.metadata.take(np.asarray(rows, dtype=np.int64)).to_pylist()
        return [
            SearchHit(
                rank=rank,
                score=float(score),
                row=record["row"],
                file_hash=record.get("file_hash") or record["id"],
                path=record.get("path"),
                tile_id=record.get("tile_id") or record.get("id"),
                window=_tuple(_window(record.get("window"))),
                bounds=_tuple(record.get("bounds")),
                crs=record.get("crs") or record.get("source_crs"),
                bounds_wgs84=_tuple(record.get("bounds_wgs84") or _box(record.get("bbox"))),
                item_id=record.get("item_id"),
                datetime=_iso(record.get("datetime")),
                geometry=record.get("geometry"),
            )
            for rank, (record, score) in enumerate(zip(records, scores), start=1)
        ]

    def to_geojson(self, hits: list[SearchHit]) -> dict:
        from .geo import hits_to_geojson

        return hits_to_geojson(hits)

    def draw(self, hits: list[SearchHit], out_path: str | os.PathLike, query: str = "") -> Path:
        """A picture of the hits under the query: the scene (or, for a STAC index, a map of the
        items holding the hits) with the tiles outlined, or a contact sheet of the images."""
        if self.manifest["source"]["kind"] == "stac":
            from .geo import draw_stac_hits

            return draw_stac_hits(self.manifest["source"], hits, out_path, f'Query: "{query}"' if query else "")
        if self.manifest["source"]["kind"] == "parts":
            raise IndexQueryError(
                "an index built from embedding parts holds no pixels to "
                "draw; write --geojson or --geoparquet and open it in a GIS"
            )
        if self.is_scene:
            from .geo import draw_scene_hits

            return draw_scene_hits(self.manifest["source"], hits, out_path, f'Query: "{query}"' if query else "")
        from ..search.folder_search import make_contact_sheet

        return make_contact_sheet(query, [(Path(hit.path), hit.score) for hit in hits], out_path)
