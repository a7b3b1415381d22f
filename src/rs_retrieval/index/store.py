"""The index folder: a manifest with checksums, one complete generation of files, and encoded parts.

    INDEX/
      index.json             manifest: format, model fingerprint, source, vector-index settings,
                             generation, and the SHA-256 of every file of that generation
      g0001/vectors.npy      L2-normalised first-stage vectors [N, D] float32 (memory-mapped)
      g0001/vectors.faiss    the faiss index over them
      g0001/vectors.ivfdata  its inverted lists (kind ivf-ondisk only; vectors.npy may be float16)
      g0001/metadata.parquet one row per vector: path or tile id, file hash, window, bounds, CRS
      g0001/shards/<key>-00000.npy  the model's image cache (`image_cache_keys`) in row blocks,
                             what `model.score` re-ranks in the second stage
      parts/                 encoded-but-not-merged rows of a build in progress (per rank)
      embeddings/part-*.parquet  the rows as GeoParquet (id, time, footprint, window, vector),
                             readable without this package (`rs_retrieval.index.geoparquet`);
                             the Ray engine's unit of progress

A build or update writes a new generation beside the current one and then replaces `index.json`
atomically, so a crash leaves the previous index usable; the old generation is removed last.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from ..errors import RSRetrievalError
from ..fileio import atomic_file, sha256_file, write_json_atomic

FORMAT = 1
MANIFEST_NAME = "index.json"
PARTS_DIR = "parts"
#: Rows per image-cache shard file.
SHARD_ROWS = 65_536


class IndexFolderError(RSRetrievalError, ValueError):
    """Not an index folder, or one written by an incompatible version."""


class IndexCorruptError(RSRetrievalError, ValueError):
    """A file of the index is missing or its checksum does not match the manifest (names the file)."""


class FingerprintMismatchError(RSRetrievalError, ValueError):
    """The model given does not match the model the index was built with (names both fingerprints)."""


def generation_name(generation: int) -> str:
    return f"g{generation:04d}"


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise IndexFolderError(
            f"{folder} is not an index folder (no {MANIFEST_NAME}); build one with `rs-retrieval index build`"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise IndexCorruptError(f"{path} is not valid JSON ({err})") from err
    if manifest.get("format") != FORMAT:
        raise IndexFolderError(
            f"{path} has index format {manifest.get('format')!r}; this version reads format {FORMAT}"
        )
    return manifest


def verify_files(folder: Path, manifest: dict) -> None:
    """Raise `IndexCorruptError` naming the first missing or changed file of the manifest."""
    for relative, expected in manifest["files"].items():
        path = folder / relative
        if not path.is_file():
            raise IndexCorruptError(f"index file {path} is missing")
        actual = sha256_file(path)
        if actual != expected:
            raise IndexCorruptError(
                f"index file {path} is corrupt: SHA-256 {actual[:16]}... "
                f"does not match the manifest's {expected[:16]}..."
            )


def read_index_file(path: Path, read):
    """`read(path)`; a file that cannot be read (cut off or overwritten, opened with --no-verify)
    raises one `IndexCorruptError` naming it."""
    try:
        return read(path)
    except (OSError, EOFError, ValueError, RuntimeError) as err:  # numpy, pyarrow and faiss errors of damaged files
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise IndexCorruptError(
            f"index file {path} cannot be read ({reason[:200]}): it is damaged; `index search` without --no-verify "
            "checks every file, rebuild the index to repair it"
        ) from None


def check_fingerprint(manifest: dict, fingerprint: str, folder: Path) -> None:
    if manifest["fingerprint"] != fingerprint:
        raise FingerprintMismatchError(
            f"index {folder} was built with model fingerprint {manifest['fingerprint']} "
            f"({manifest.get('model', {}).get('name_or_path') or 'unnamed model'}), "
            f"but the given model has fingerprint {fingerprint}; "
            "use the same model (weights, config and image processor) or rebuild the index"
        )


def save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_file(path, suffix=".npy") as tmp:
        np.save(tmp, array)


def write_generation(
    folder: Path, generation: int, vectors: np.ndarray, image_cache: dict[str, np.ndarray], metadata, faiss_index
) -> dict[str, str]:
    """Write one generation's files; returns {relative path: SHA-256} for the manifest."""
    from .vectors import write_faiss_index

    gen = folder / generation_name(generation)
    if gen.exists():  # left over from a crashed build of the same generation
        shutil.rmtree(gen)
    try:
        (gen / "shards").mkdir(parents=True)
        save_npy(gen / "vectors.npy", vectors)
        write_faiss_index(faiss_index, gen / "vectors.faiss")
        write_parquet(gen / "metadata.parquet", metadata)
        for name, array in image_cache.items():
            for shard, start in enumerate(range(0, max(len(array), 1), SHARD_ROWS)):
                save_npy(gen / "shards" / f"{name}-{shard:05d}.npy", array[start : start + SHARD_ROWS])
    except Exception:  # e.g. a full disk: free the space, and leave the folder as a rerun expects it
        shutil.rmtree(gen, ignore_errors=True)
        raise
    return generation_checksums(folder, generation)


def generation_checksums(folder: Path, generation: int) -> dict[str, str]:
    """{path relative to `folder`: SHA-256} of every file of a written generation, for the manifest."""
    gen = folder / generation_name(generation)
    return {str(path.relative_to(folder)): sha256_file(path) for path in sorted(gen.rglob("*")) if path.is_file()}


def write_parquet(path: Path, table) -> None:
    import pyarrow.parquet as pq

    with atomic_file(path, suffix=".parquet") as tmp:
        pq.write_table(table, tmp)


def commit(folder: Path, manifest: dict) -> None:
    """Make `manifest` (whose generation is fully written) current, then drop older generations."""
    write_json_atomic(folder / MANIFEST_NAME, manifest)
    current = generation_name(manifest["generation"])
    for old in folder.glob("g[0-9][0-9][0-9][0-9]"):
        if old.name != current:
            shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(folder / PARTS_DIR, ignore_errors=True)


class ShardReader:
    """Rows of the image cache from memory-mapped shard files (only the rows asked for are read)."""

    def __init__(self, gen_dir: Path, names: list[str]):
        self.shards = {name: sorted((gen_dir / "shards").glob(f"{name}-*.npy")) for name in names}
        self._open: dict[Path, np.ndarray] = {}

    def _array(self, path: Path) -> np.ndarray:
        if path not in self._open:
            self._open[path] = read_index_file(path, lambda p: np.load(p, mmap_mode="r"))
        return self._open[path]

    def gather(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        rows = np.asarray(rows, dtype=np.int64)
        out = {}
        for name, paths in self.shards.items():
            first = self._array(paths[0])
            result = np.empty((len(rows), *first.shape[1:]), dtype=first.dtype)
            for shard in np.unique(rows // SHARD_ROWS):
                mask = rows // SHARD_ROWS == shard
                result[mask] = self._array(paths[shard])[rows[mask] - shard * SHARD_ROWS]
            out[name] = result
        return out
