"""First-stage vector search with faiss: L2-normalised vectors, inner product (= cosine).

Three kinds built in memory: `flat` (exact, the default below `FLAT_LIMIT` vectors), `ivfpq`
(inverted lists of product-quantised codes, trained on a sample; the candidates it returns are
re-scored exactly from the memory-mapped float vectors, so recall stays high while the index itself
is small) and `hnsw` (a graph over the full vectors); and `ivf-ondisk`, IVF-PQ built out of core from
embedding parts with its inverted lists in a file (`rs_retrieval.index.ondisk`). Indexes are written
atomically and read memory-mapped. Every kind can be searched under a row filter (`allowed`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import RSRetrievalError
from ..fileio import atomic_file
from ..optional import require

ONDISK_KIND = "ivf-ondisk"
KINDS = ("flat", "ivfpq", "hnsw", ONDISK_KIND)
#: Above this many vectors `kind="auto"` picks IVF-PQ instead of exact search.
FLAT_LIMIT = 1_000_000
#: Vectors added to a faiss index per call (bounds the copy of a memory-mapped array).
ADD_CHUNK = 65_536


class VectorIndexError(RSRetrievalError, ValueError):
    """Bad vector-index options (unknown kind, wrong dimension ...)."""


@dataclass
class VectorIndexConfig:
    """How the first-stage index is built and searched (stored in the index manifest)."""

    kind: str = "auto"
    #: IVF lists; None: about 4 sqrt(N), capped so each list gets >= 39 training vectors.
    nlist: int | None = None
    #: PQ sub-quantisers (bytes per vector); None: dim / 8.
    pq_m: int | None = None
    #: Vectors sampled to train IVF centroids and PQ codebooks.
    train_size: int = 100_000
    hnsw_m: int = 32
    ef_construction: int = 64
    #: Search-time parameters (can be changed on an opened index).
    nprobe: int = 32
    ef_search: int = 128
    #: IVF-PQ returns `refine * k` candidates, re-scored exactly from the float vectors (50 reached
    #: recall@10 0.965 on the 1M clustered benchmark, where 10 gave 0.61; README).
    refine: int = 50
    seed: int = 0
    #: ivf-ondisk: dtype of the re-scoring vectors on disk (float16 halves them; its recall cost is
    #: measured in docs/index-benchmarks.md) and rows added per block before the on-disk merge.
    refine_dtype: str = "float16"
    block_rows: int = 262_144

    def resolved(self, n: int) -> VectorIndexConfig:
        kind = self.kind
        if kind == "auto":
            kind = "flat" if n < FLAT_LIMIT else "ivfpq"
        if kind not in KINDS:
            raise VectorIndexError(f"unknown index kind {self.kind!r}; choose one of auto, {', '.join(KINDS)}")
        if self.refine_dtype not in ("float16", "float32"):
            raise VectorIndexError(f"refine_dtype must be float16 or float32, got {self.refine_dtype!r}")
        return VectorIndexConfig(**{**asdict(self), "kind": kind})

    def to_dict(self) -> dict:
        return asdict(self)


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def pq_subquantizers(dim: int, wanted: int | None) -> int:
    """Largest divisor of `dim` not above the wanted number of sub-quantisers."""
    wanted = max(1, min(dim, wanted or max(1, dim // 8)))
    return max(m for m in range(1, wanted + 1) if dim % m == 0)


def pq_nbits(train_rows: int) -> int:
    """Bits per PQ code: 2**nbits centroids per sub-quantiser need a few training vectors each."""
    return max(1, min(8, int(math.log2(max(2, train_rows // 4)))))


def _sample_rows(vectors: np.ndarray, size: int, seed: int) -> np.ndarray:
    n = len(vectors)
    if n <= size:
        return np.ascontiguousarray(vectors, dtype=np.float32)
    rows = np.sort(np.random.default_rng(seed).choice(n, size, replace=False))
    return np.ascontiguousarray(vectors[rows], dtype=np.float32)


def build_faiss_index(vectors: np.ndarray, config: VectorIndexConfig, progress=None):
    """A faiss index over `vectors` (already L2-normalised, [N, D] float32; may be a memmap).
    `progress(n_added)` is called after each added chunk."""
    faiss = require("faiss", "index", "the vector index")
    n, dim = vectors.shape
    config = config.resolved(n)
    if config.kind == ONDISK_KIND:
        raise VectorIndexError(
            f"kind {ONDISK_KIND} is built from embedding parts (rs_retrieval.index.ondisk.build_from_parts)"
        )
    if config.kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif config.kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = config.ef_construction
    else:
        sample = _sample_rows(vectors, config.train_size, config.seed)
        nlist = max(1, min(config.nlist or int(4 * math.sqrt(n)), len(sample) // 39))
        index = faiss.IndexIVFPQ(
            faiss.IndexFlatIP(dim),
            dim,
            nlist,
            pq_subquantizers(dim, config.pq_m),
            pq_nbits(len(sample)),
            faiss.METRIC_INNER_PRODUCT,
        )
        index.cp.seed = config.seed
        index.train(sample)
    for start in range(0, n, ADD_CHUNK):
        index.add(np.ascontiguousarray(vectors[start : start + ADD_CHUNK], dtype=np.float32))
        if progress is not None:
            progress(min(n, start + ADD_CHUNK))
    return index


def write_faiss_index(index, path: str | Path) -> None:
    faiss = require("faiss", "index", "the vector index")
    with atomic_file(path) as tmp:
        faiss.write_index(index, str(tmp))


def read_faiss_index(path: str | Path, mmap: bool = True):
    """Read an index; with `mmap` its codes stay on disk and are paged in on use. On-disk inverted
    lists (`<name>.ivfdata`, always memory-mapped) are found beside the index file, wherever the
    folder was moved; faiss reads such an index only from a plain file, not a memory-mapped one."""
    faiss = require("faiss", "index", "the vector index")
    if Path(path).with_suffix(".ivfdata").is_file():
        return faiss.read_index(str(path), faiss.IO_FLAG_ONDISK_SAME_DIR | faiss.IO_FLAG_READ_ONLY)
    return faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY if mmap else 0)


def _search_parameters(index, config: VectorIndexConfig, k: int, selector=None):
    """faiss search parameters for `index` (IVF nprobe, HNSW breadth, coarse HNSW breadth) and an
    optional id selector (which the caller keeps alive during the search)."""
    faiss = require("faiss", "index", "the vector index")
    if isinstance(index, faiss.IndexHNSW):
        return faiss.SearchParametersHNSW(efSearch=max(config.ef_search, k), sel=selector)
    if isinstance(index, faiss.IndexIVF):
        nprobe = min(config.nprobe, index.nlist)
        quantizer = faiss.downcast_index(index.quantizer)
        coarse = (
            faiss.SearchParametersHNSW(efSearch=max(config.ef_search, nprobe))
            if isinstance(quantizer, faiss.IndexHNSW)
            else None
        )
        if coarse is None:
            return faiss.SearchParametersIVF(nprobe=nprobe, sel=selector)
        params = faiss.SearchParametersIVF(nprobe=nprobe, sel=selector, quantizer_params=coarse)
        params.referenced_objects = [coarse]
        return params
    return faiss.SearchParameters(sel=selector) if selector is not None else None


def row_selector(allowed: np.ndarray):
    """A faiss id selector for the rows where the bool mask `allowed` is set (ids are rows)."""
    faiss = require("faiss", "index", "the vector index")
    bits = np.packbits(np.asarray(allowed, dtype=bool), bitorder="little")
    selector = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))
    selector.bits_array = bits  # the selector reads this buffer during the search
    return selector


def search_faiss_index(
    index,
    vectors: np.ndarray,
    queries: np.ndarray,
    k: int,
    config: VectorIndexConfig,
    allowed: np.ndarray | None = None,
    nprobe: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-`k` (scores [Q, k], rows [Q, k]) for L2-normalised `queries`; rows are -1 past the end.

    For IVF kinds, `refine * k` approximate candidates are re-scored with the exact inner product
    from `vectors` (a memmap of the indexed vectors, float32 or float16). `allowed` (bool per row)
    restricts the search to those rows inside faiss (id selector); `nprobe` overrides the config's."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if queries.ndim != 2 or queries.shape[1] != index.d:
        raise VectorIndexError(f"queries must be [Q, {index.d}], got {tuple(queries.shape)}")
    k = max(1, min(k, index.ntotal))
    if nprobe is not None:
        config = VectorIndexConfig(**{**asdict(config), "nprobe": nprobe})
    selector = row_selector(allowed) if allowed is not None else None
    params = _search_parameters(index, config, k, selector)
    if getattr(index, "nlist", None) is not None:  # IVF: over-fetch, then re-score exactly
        _, rows = index.search(queries, min(index.ntotal, k * max(1, config.refine)), params=params)
        return exact_rescore(vectors, queries, rows, k)
    return index.search(queries, k, params=params)


def exact_rescore(vectors: np.ndarray, queries: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner products of each query with its candidate rows (-1 = none), best `k` first."""
    flat = rows.reshape(-1)
    valid = flat >= 0
    unique, inverse = np.unique(flat[valid], return_inverse=True)
    gathered = np.asarray(vectors[unique], dtype=np.float32)  # one sorted read from the memmap
    candidate_vectors = np.zeros((flat.size, vectors.shape[1]), dtype=np.float32)
    candidate_vectors[valid] = gathered[inverse]
    scores = np.einsum("qkd,qd->qk", candidate_vectors.reshape(*rows.shape, -1), queries)
    scores[rows < 0] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    top_rows = np.take_along_axis(rows, order, axis=1)
    top_scores = np.take_along_axis(scores, order, axis=1)
    return top_scores.astype(np.float32), np.where(np.isfinite(top_scores), top_rows, -1)
