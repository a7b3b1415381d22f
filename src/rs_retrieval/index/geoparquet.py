"""Embeddings as GeoParquet: the archive's encoded tiles, readable without this package.

Every `index build` (folder, dataset, scene or STAC catalog; local or Ray engine) writes
`INDEX/embeddings/part-*.parquet`, each written atomically, one row per encoded image or tile:

    id          string      stable id: `{item_id}/{col_off}_{row_off}_{width}_{height}` for STAC
                            and scene tiles (pixel grid of the read resolution), the path relative
                            to the images folder for folder builds, the image file name for datasets
    item_id     string      STAC item id (the scene file name for scenes; null for images)
    datetime    timestamp[us, tz=UTC]   acquisition time (null when unknown)
    geometry    binary      footprint polygon as WKB in EPSG:4326 / OGC:CRS84 (lon, lat); null
                            when the image is not georeferenced
    bbox        struct<xmin, ymin, xmax, ymax: double>   the footprint's box (GeoParquet 1.1
                            bbox covering column; lets readers skip row groups by place)
    source_crs  string      CRS of the pixels the tile was read from (e.g. "EPSG:32631")
    window      struct<col_off, row_off, width, height: int64>   pixel window in that raster
    embedding   fixed_size_list<float32>[D] (or float16)   L2-normalised first-stage vector

File key-value metadata: `geo` (GeoParquet 1.1: primary column `geometry`, WKB, CRS omitted =
OGC:CRS84, geometry types ["Polygon"], file bbox, `covering.bbox`) and `rs_retrieval`
({"format": 1, "model", "model_fingerprint", "dim", "dtype", "normalized": true}).

Reading (geopandas and DuckDB read the same files without this package):

    for batch in read_embedding_parts("my.index"):   # pyarrow RecordBatches, part by part
        vectors = embedding_matrix(batch)             # [rows, D] float32
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import RSRetrievalError
from ..fileio import atomic_file

EMBEDDINGS_DIR = "embeddings"
PART_GLOB = "part-*.parquet"
FORMAT = 1
DTYPES = ("float32", "float16")
#: Rows per part file written when a local build merges its rows.
PART_ROWS = 65_536
#: Columns of the contract besides `embedding`, in file order.
COLUMNS = ("id", "item_id", "datetime", "geometry", "bbox", "source_crs", "window")


class EmbeddingPartsError(RSRetrievalError, ValueError):
    """An embeddings part is not in this format (other model, other dimension, foreign file)."""


def _types():
    import pyarrow as pa

    bbox = pa.struct([(name, pa.float64()) for name in ("xmin", "ymin", "xmax", "ymax")])
    window = pa.struct([(name, pa.int64()) for name in ("col_off", "row_off", "width", "height")])
    return pa, bbox, window


def embedding_schema(dim: int, dtype: str = "float32"):
    """The Arrow schema of a part (without the file metadata)."""
    pa, bbox, window = _types()
    if dtype not in DTYPES:
        raise EmbeddingPartsError(f"embedding dtype must be one of {DTYPES}, got {dtype!r}")
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            ("item_id", pa.string()),
            ("datetime", pa.timestamp("us", tz="UTC")),
            ("geometry", pa.binary()),
            ("bbox", bbox),
            ("source_crs", pa.string()),
            ("window", window),
            pa.field("embedding", pa.list_(getattr(pa, dtype)(), dim), nullable=False),
        ]
    )


def polygon_wkb(ring: list[tuple[float, float]]) -> bytes:
    """WKB (little-endian) of a polygon with one exterior ring (closed here)."""
    points = [*ring, ring[0]]
    return struct.pack(
        f"<BIII{2 * len(points)}d", 1, 3, 1, len(points), *(float(v) for point in points for v in point)
    )


def corners_box(corners) -> list[float] | None:
    """[min lon, min lat, max lon, max lat] of a footprint's corners (None stays None)."""
    if corners is None:
        return None
    return [
        min(c[0] for c in corners),
        min(c[1] for c in corners),
        max(c[0] for c in corners),
        max(c[1] for c in corners),
    ]


def footprint_columns(corners: list[list[tuple[float, float]] | None]) -> dict[str, list]:
    """`geometry` (WKB) and `bbox` for each footprint given as 4 (lon, lat) corners, counterclockwise."""
    boxes = [corners_box(c) for c in corners]
    return {
        "geometry": [None if c is None else polygon_wkb(c) for c in corners],
        "bbox": [None if b is None else dict(zip(("xmin", "ymin", "xmax", "ymax"), b)) for b in boxes],
    }


def model_metadata(model_name: str, fingerprint: str, dim: int, dtype: str = "float32") -> dict:
    """The `rs_retrieval` file metadata of every part a build writes."""
    return {
        "format": FORMAT,
        "model": model_name,
        "model_fingerprint": fingerprint,
        "dim": int(dim),
        "dtype": dtype,
        "normalized": True,
    }


def geo_metadata(bounds: list[float] | None, **column_options) -> dict:
    """GeoParquet 1.1 `geo` file metadata for one WKB polygon column `geometry` in WGS84 (no `crs`
    means OGC:CRS84); `bounds` (W, S, E, N of all rows) when any row has a footprint."""
    column = {"encoding": "WKB", "geometry_types": ["Polygon"], **column_options}
    if bounds is not None:
        column["bbox"] = [float(v) for v in bounds]
    return {"version": "1.1.0", "primary_column": "geometry", "columns": {"geometry": column}}


def _geo_metadata(bboxes: list[dict | None]) -> dict:
    present = [b for b in bboxes if b is not None]
    bounds = (
        [
            min(b["xmin"] for b in present),
            min(b["ymin"] for b in present),
            max(b["xmax"] for b in present),
            max(b["ymax"] for b in present),
        ]
        if present
        else None
    )
    covering = {"bbox": {key: ["bbox", key] for key in ("xmin", "ymin", "xmax", "ymax")}}
    return geo_metadata(bounds, orientation="counterclockwise", covering=covering)


def write_embedding_part(path: str | Path, columns: dict[str, list], vectors: np.ndarray, meta: dict) -> Path:
    """Write one part atomically: `columns` holds the COLUMNS lists (missing ones are null),
    `vectors` [rows, D] (already L2-normalised), `meta` from `model_metadata`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    vectors = np.ascontiguousarray(vectors, dtype=meta["dtype"])
    rows, dim = vectors.shape
    if dim != meta["dim"]:
        raise EmbeddingPartsError(f"vectors have dimension {dim}, the part metadata says {meta['dim']}")
    schema = embedding_schema(dim, meta["dtype"])
    arrays = [pa.array(columns.get(name, [None] * rows), type=schema.field(name).type) for name in COLUMNS]
    embedding = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim)
    table = pa.Table.from_arrays([*arrays, embedding], schema=schema)
    geo = _geo_metadata(columns.get("bbox", []))
    table = table.replace_schema_metadata({"geo": json.dumps(geo), "rs_retrieval": json.dumps(meta)})
    path = Path(path)
    with atomic_file(path, suffix=".parquet") as tmp:
        pq.write_table(table, tmp, row_group_size=16_384)
    return path


def part_paths(folder: str | Path) -> list[Path]:
    """The part files of an index folder (or of an `embeddings` folder itself), sorted."""
    folder = Path(folder)
    parts_dir = folder if folder.name == EMBEDDINGS_DIR else folder / EMBEDDINGS_DIR
    return sorted(parts_dir.glob(PART_GLOB))


def part_metadata(path: str | Path) -> dict:
    """The `rs_retrieval` metadata of one part (reads only the footer)."""
    import pyarrow.parquet as pq

    metadata = pq.read_schema(path).metadata or {}
    if b"rs_retrieval" not in metadata:
        raise EmbeddingPartsError(f"{path} is not an embeddings part (no rs_retrieval metadata)")
    return json.loads(metadata[b"rs_retrieval"])


def read_embedding_parts(
    folder: str | Path, columns: list[str] | None = None, fingerprint: str | None = None
) -> Iterator:
    """Yield the rows of every part as pyarrow RecordBatches (part by part, row group by row
    group: memory stays one row group). `fingerprint`: refuse parts written by another model."""
    import pyarrow.parquet as pq

    for path in part_paths(folder):
        meta = part_metadata(path)
        if fingerprint is not None and meta["model_fingerprint"] != fingerprint:
            raise EmbeddingPartsError(f"{path} was written by model {meta['model_fingerprint']}, not {fingerprint}")
        yield from pq.ParquetFile(path).iter_batches(columns=columns)


def embedding_matrix(batch) -> np.ndarray:
    """The `embedding` column of a batch or table as a [rows, D] float32 array."""
    column = batch.column("embedding")
    if hasattr(column, "combine_chunks"):
        column = column.combine_chunks()
    return column.values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(len(column), -1)


def part_ids(folder: str | Path, fingerprint: str | None = None) -> set[str]:
    """Ids already written (what a resumed build skips)."""
    return {
        value
        for batch in read_embedding_parts(folder, ["id"], fingerprint)
        for value in batch.column("id").to_pylist()
    }


def keep_rows(folder: str | Path, keep: set[str]) -> int:
    """Rewrite parts so each id of `keep` appears once and nothing else remains (an id written
    twice by a retried task, rows of tiles no longer selected); returns the rows dropped."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    seen, dropped = set(), 0
    for path in part_paths(folder):
        table = pq.read_table(path)
        ids = table.column("id").to_pylist()
        mask = [i in keep and i not in seen and not seen.add(i) for i in ids]
        if all(mask):
            continue
        dropped += mask.count(False)
        if not any(mask):
            path.unlink()
            continue
        kept = table.filter(pa.array(mask))
        geo = json.dumps(_geo_metadata(kept.column("bbox").to_pylist()))
        kept = kept.replace_schema_metadata({**kept.schema.metadata, b"geo": geo.encode()})
        with atomic_file(path, suffix=".parquet") as tmp:
            pq.write_table(kept, tmp, row_group_size=16_384)
    return dropped


def replace_parts(
    folder: str | Path, columns: dict[str, list], vectors: np.ndarray, meta: dict, part_rows: int = PART_ROWS
) -> list[Path]:
    """Write all rows as `part-00000.parquet`, ... in place of the folder's current parts (the new
    set is written beside the old one and swapped in, so a crash leaves one complete set)."""
    import shutil

    target = Path(folder) / EMBEDDINGS_DIR
    staging, old = target.with_name(f".{EMBEDDINGS_DIR}.new"), target.with_name(f".{EMBEDDINGS_DIR}.old")
    for leftover in (staging, old):
        shutil.rmtree(leftover, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        for number, start in enumerate(range(0, max(len(vectors), 1), part_rows)):
            chunk = {name: values[start : start + part_rows] for name, values in columns.items()}
            write_embedding_part(
                staging / f"part-{number:05d}.parquet", chunk, vectors[start : start + part_rows], meta
            )
    except BaseException:  # e.g. a full disk: free the space and leave the folder as a rerun expects it
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return part_paths(target)
