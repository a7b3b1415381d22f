"""An index folder built out of core from GeoParquet embedding parts (`IDX/embeddings/part-*.parquet`).

Kind `ivf-ondisk` is IVF-PQ whose inverted lists live in a file beside the index (faiss
`OnDiskInvertedLists`, memory-mapped): it is trained on a sample of the rows, filled block by block
(each block is an index file of its own) and the blocks are merged into the on-disk lists, so the
build holds one block of rows in memory whatever the archive's size. The first-stage candidates are
re-scored with the exact vectors, kept as a float16 (or float32) `.npy` that queries memory-map.

Why IVF-PQ and not IVF-Flat with an HNSW coarse quantizer: the lists of IVF-Flat are the float
vectors themselves (2 KB per 512-d vector, 20 GB at 10 M), read at every probe; PQ codes are 64 B,
so the scanned lists stay in the page cache and the float vectors are read only for the few hundred
candidates of a query. The coarse quantizer is exact (flat) up to `HNSW_QUANTIZER_FROM` lists and an
HNSW graph over the centroids above, where scanning every centroid would dominate a query.

The other kinds (`flat`, `ivfpq`, `hnsw`) can be built from parts too: their vectors are written to
the float32 `vectors.npy` part by part and the faiss index is built over that memory-map.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import RSRetrievalError
from ..optional import require
from . import store
from .vectors import (
    ADD_CHUNK,
    ONDISK_KIND,
    VectorIndexConfig,
    build_faiss_index,
    normalize_rows,
    pq_nbits,
    pq_subquantizers,
    write_faiss_index,
)

PARTS_GLOB = "part-*.parquet"
PARTS_METADATA_KEY = b"rs_retrieval"
PARTS_FORMAT = 1
#: Above this many IVF lists the coarse quantizer is an HNSW graph over the centroids.
HNSW_QUANTIZER_FROM = 16_384
#: The file of the on-disk inverted lists, beside `vectors.faiss` in the generation folder.
IVFDATA_NAME = "vectors.ivfdata"


class PartsError(RSRetrievalError, ValueError):
    """The embedding parts are missing, unreadable or disagree (dimension, model, format)."""


@dataclass
class Parts:
    """The parts of a folder, read from their footers only."""

    paths: list[Path]
    rows: list[int]
    dim: int
    model: str | None
    fingerprint: str | None

    @property
    def count(self) -> int:
        return sum(self.rows)


def read_parts(folder: str | Path) -> Parts:
    """List `folder/part-*.parquet` and check that their `rs_retrieval` metadata agree."""
    import pyarrow.parquet as pq

    folder = Path(folder)
    paths = sorted(folder.glob(PARTS_GLOB))
    if not paths:
        raise PartsError(f"no embedding parts ({PARTS_GLOB}) in {folder}")
    rows, described = [], []
    for path in paths:
        try:
            footer = pq.read_metadata(path)
            info = json.loads((footer.metadata or {})[PARTS_METADATA_KEY])
        except KeyError:
            raise PartsError(f"{path} has no {PARTS_METADATA_KEY.decode()} metadata: not an embedding part") from None
        except (OSError, ValueError) as err:
            raise PartsError(f"cannot read embedding part {path}: {err}") from err
        if info.get("format") != PARTS_FORMAT:
            raise PartsError(
                f"{path} has parts format {info.get('format')!r}; this version reads format {PARTS_FORMAT}"
            )
        rows.append(footer.num_rows)
        described.append((int(info["dim"]), info.get("model"), info.get("model_fingerprint")))
    if len(set(described)) > 1:
        raise PartsError(
            f"the parts in {folder} disagree on (dim, model, fingerprint): {sorted(set(described), key=str)}"
        )
    dim, model, fingerprint = described[0]
    return Parts(paths, rows, dim, model, fingerprint)


def iter_part_batches(parts: Parts, batch_rows: int = ADD_CHUNK):
    """(vectors [n, D] float32 L2-normalised, the batch's other columns) part after part, in order."""
    import pyarrow.parquet as pq

    for path in parts.paths:
        handle = pq.ParquetFile(path)
        for batch in handle.iter_batches(batch_size=batch_rows):
            embedding = batch.column("embedding")
            if embedding.null_count:
                raise PartsError(f"{path} has {embedding.null_count} row(s) without an embedding")
            vectors = embedding.flatten().to_numpy(zero_copy_only=False).reshape(len(batch), -1)
            if vectors.shape[1] != parts.dim:
                raise PartsError(f"{path} has {vectors.shape[1]}-d embeddings but its metadata says {parts.dim}")
            yield normalize_rows(vectors), batch.drop_columns(["embedding"])


class NpyWriter:
    """A `.npy` of known shape written row block by row block with plain writes (no memory map,
    so the build's resident memory does not grow with the file)."""

    def __init__(self, path: Path, rows: int, dim: int, dtype: str):
        self.handle = open(path, "wb")
        self.dtype = np.dtype(dtype)
        np.lib.format.write_array_header_1_0(
            self.handle,
            {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": (rows, dim)},
        )
        self.header_bytes = self.handle.tell()

    def write(self, block: np.ndarray) -> None:
        self.handle.write(np.ascontiguousarray(block, dtype=self.dtype).tobytes())

    def close(self) -> None:
        self.handle.close()


def read_npy_rows(path: Path, header_bytes: int, start: int, count: int, dim: int, dtype: str) -> np.ndarray:
    """Rows [start, start + count) of a C-order .npy, read (not mapped) as float32."""
    dtype = np.dtype(dtype)
    with open(path, "rb") as handle:
        handle.seek(header_bytes + start * dim * dtype.itemsize)
        return np.fromfile(handle, dtype=dtype, count=count * dim).reshape(count, dim).astype(np.float32)


def _copy_parts(
    parts: Parts, gen: Path, vector_dtype: str, sample_rows: np.ndarray, progress
) -> tuple[np.ndarray, int]:
    """Pass 1: vectors -> gen/vectors.npy, other columns (+ `row`) -> gen/metadata.parquet; returns
    the training sample (rows `sample_rows`, sorted) and the .npy header size."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer, vectors_out = None, NpyWriter(gen / "vectors.npy", parts.count, parts.dim, vector_dtype)
    sample = np.empty((len(sample_rows), parts.dim), dtype=np.float32)
    start = 0
    try:
        for vectors, columns in iter_part_batches(parts):
            vectors_out.write(vectors)
            table = pa.Table.from_batches([columns]).add_column(
                0, "row", pa.array(np.arange(start, start + len(vectors), dtype=np.int64))
            )
            if writer is None:
                writer = pq.ParquetWriter(gen / "metadata.parquet", table.schema)
            elif table.schema != writer.schema:
                try:
                    table = table.cast(writer.schema)
                except (pa.ArrowInvalid, ValueError) as err:
                    raise PartsError(f"the parts' columns differ from the first part's ({err})") from err
            writer.write_table(table)
            lo, hi = np.searchsorted(sample_rows, [start, start + len(vectors)])
            sample[lo:hi] = vectors[sample_rows[lo:hi] - start]
            start += len(vectors)
            progress("copy", start)
    finally:
        vectors_out.close()
        if writer is not None:
            writer.close()
    return sample, vectors_out.header_bytes


def train_ivfpq(sample: np.ndarray, count: int, config: VectorIndexConfig):
    """An empty, trained IVF-PQ (inner product) for `count` vectors, from a sample of them."""
    faiss = require("faiss", "index", "the vector index")
    dim = sample.shape[1]
    nlist = max(1, min(config.nlist or int(4 * math.sqrt(count)), len(sample) // 39))
    if nlist >= HNSW_QUANTIZER_FROM:
        quantizer = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        quantizer.hnsw.efConstruction = 40
        quantizer.hnsw.efSearch = max(64, config.nprobe)  # the list each added vector goes to
    else:
        quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFPQ(
        quantizer, dim, nlist, pq_subquantizers(dim, config.pq_m), pq_nbits(len(sample)), faiss.METRIC_INNER_PRODUCT
    )
    index.own_fields = True
    quantizer.this.disown()
    if nlist >= HNSW_QUANTIZER_FROM:
        index.clustering_index = faiss.IndexFlatIP(
            dim
        )  # k-means on a flat index; the graph is built once, from the centroids
    index.cp.seed = config.seed
    index.train(sample)
    return index


def _add_blocks(
    trained, gen: Path, parts: Parts, header_bytes: int, vector_dtype: str, block_rows: int, progress
) -> None:
    """Pass 2: add the rows block by block (ids = rows), each block to its own index file, then merge
    the blocks' lists into the on-disk inverted lists and write `vectors.faiss`."""
    faiss = require("faiss", "index", "the vector index")
    from faiss.contrib.ondisk import merge_ondisk

    blocks_dir = gen / "blocks"
    blocks_dir.mkdir()
    trained_bytes = faiss.serialize_index(trained)
    block_paths = []
    for number, start in enumerate(range(0, parts.count, block_rows)):
        block = faiss.deserialize_index(trained_bytes)
        for sub in range(start, min(parts.count, start + block_rows), ADD_CHUNK):
            size = min(ADD_CHUNK, parts.count - sub, start + block_rows - sub)
            block.add_with_ids(
                read_npy_rows(gen / "vectors.npy", header_bytes, sub, size, parts.dim, vector_dtype),
                np.arange(sub, sub + size, dtype=np.int64),
            )
            progress("add", sub + size)
        block_paths.append(str(blocks_dir / f"block-{number:05d}.faiss"))
        faiss.write_index(block, block_paths[-1])
        del block
    merge_ondisk(trained, block_paths, str(gen / IVFDATA_NAME))
    faiss.write_index(trained, str(gen / "vectors.faiss"))
    shutil.rmtree(blocks_dir)


def build_from_parts(
    parts_folder: str | Path,
    out_folder: str | Path,
    config: VectorIndexConfig | None = None,
    *,
    manifest: dict | None = None,
    overwrite: bool = False,
    progress=None,
) -> Path:
    """Build (or rebuild as a new generation) the index folder `out_folder` from the embedding parts in
    `parts_folder`; returns `out_folder`. `config.kind` `ivf-ondisk` (the default here) is built out of
    core; the other kinds in memory over the memory-mapped vectors. `manifest` entries (e.g. the
    build's `source`, `model`) are merged into the manifest written. `progress(stage, rows_done)`."""
    config = config or VectorIndexConfig(kind=ONDISK_KIND)
    parts = read_parts(parts_folder)
    config = config.resolved(parts.count)
    folder = Path(out_folder)
    progress = progress or (lambda stage, done: None)
    previous = store.read_manifest(folder) if (folder / store.MANIFEST_NAME).is_file() else None
    if previous is not None and not overwrite and parts.fingerprint is not None:
        store.check_fingerprint(previous, parts.fingerprint, folder)
    generation = previous["generation"] + 1 if previous else 1
    gen = folder / store.generation_name(generation)
    if gen.exists():  # left over from a crashed build of the same generation
        shutil.rmtree(gen)
    gen.mkdir(parents=True)
    started = time.perf_counter()
    ondisk = config.kind == ONDISK_KIND
    vector_dtype = config.refine_dtype if ondisk else "float32"
    sample_rows = np.sort(
        np.random.default_rng(config.seed).choice(parts.count, min(config.train_size, parts.count), replace=False)
    )
    sample, header_bytes = _copy_parts(parts, gen, vector_dtype, sample_rows, progress)
    if ondisk:
        trained = train_ivfpq(sample, parts.count, config)
        del sample
        _add_blocks(trained, gen, parts, header_bytes, vector_dtype, config.block_rows, progress)
    else:
        del sample
        vectors = np.load(gen / "vectors.npy", mmap_mode="r")
        write_faiss_index(
            build_faiss_index(vectors, config, progress=lambda done: progress("add", done)), gen / "vectors.faiss"
        )
    written = {
        "format": store.FORMAT,
        "generation": generation,
        "fingerprint": parts.fingerprint,
        "model": {"class": None, "name_or_path": parts.model},
        "two_stage": False,
        "source": {"kind": "parts", "parts": str(Path(parts_folder).resolve())},
        "count": parts.count,
        "dim": parts.dim,
        "image_cache_keys": [],
        "vector_index": config.to_dict(),
        "build": {
            "encoded": 0,
            "reused": parts.count,
            "skipped": 0,
            "processes": 1,
            "seconds": round(time.perf_counter() - started, 3),
        },
        "skipped": [],
        **(manifest or {}),
        "files": store.generation_checksums(folder, generation),
    }
    store.commit(folder, written)
    return folder
