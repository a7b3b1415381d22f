"""Write synthetic embedding parts (`part-*.parquet`, the GeoParquet 1.1 format an index build writes
to `IDX/embeddings/`) from a vector array, with footprints and dates, for tests and benchmarks.

Row r gets id `tile-<r>`, item `item-<r // 100>`, a footprint square of `tile_deg` degrees at a
seeded random place inside `region` (W, S, E, N), and a seeded random date in the `days` days after
`start`. Only pyarrow and numpy are used.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

WKB_POLYGON_HEADER = np.frombuffer(
    b"\x01" + np.array([3, 1, 5], dtype="<u4").tobytes(), dtype=np.uint8
)  # LE, Polygon, 1 ring, 5 points


def wkb_boxes(xmin, ymin, xmax, ymax) -> pa.Array:
    """WKB polygons (counter-clockwise closed rings) for arrays of boxes."""
    ring = np.stack([xmin, ymin, xmax, ymin, xmax, ymax, xmin, ymax, xmin, ymin], axis=1).astype("<f8")
    rows = np.concatenate([np.broadcast_to(WKB_POLYGON_HEADER, (len(ring), 13)), ring.view(np.uint8)], axis=1)
    fixed = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(rows.shape[1]), len(rows), [None, pa.py_buffer(np.ascontiguousarray(rows).tobytes())]
    )
    return fixed.cast(pa.binary())


def part_table(
    vectors: np.ndarray,
    first_row: int,
    rng: np.random.Generator,
    region,
    tile_deg: float,
    start: datetime,
    days: int,
    dtype: str,
) -> pa.Table:
    n, dim = vectors.shape
    rows = np.arange(first_row, first_row + n)
    west, south, east, north = region
    xmin = rng.uniform(west, east - tile_deg, n)
    ymin = rng.uniform(south, north - tile_deg, n)
    xmax, ymax = xmin + tile_deg, ymin + tile_deg
    micros = int(start.timestamp() * 1e6) + rng.integers(0, days, n) * 86_400_000_000
    embedding = pa.FixedSizeListArray.from_arrays(
        pa.array(np.ascontiguousarray(vectors, dtype=dtype).reshape(-1)), dim
    )
    return pa.table(
        {
            "id": pa.array([f"tile-{r:09d}" for r in rows]),
            "item_id": pa.array([f"item-{r // 100:07d}" for r in rows]),
            "datetime": pa.array(micros, type=pa.timestamp("us", tz="UTC")),
            "geometry": wkb_boxes(xmin, ymin, xmax, ymax),
            "bbox": pa.StructArray.from_arrays(
                [pa.array(a) for a in (xmin, ymin, xmax, ymax)], names=["xmin", "ymin", "xmax", "ymax"]
            ),
            "source_crs": pa.array(["EPSG:4326"] * n),
            "window": pa.StructArray.from_arrays(
                [pa.array(np.full(n, v, dtype=np.int64)) for v in (0, 0, 256, 256)],
                names=["col_off", "row_off", "width", "height"],
            ),
            "embedding": embedding,
        }
    )


def write_parts(
    folder: str | Path,
    blocks,
    *,
    model: str = "synthetic",
    fingerprint: str = "synthetic-0",
    region=(-10.0, 35.0, 30.0, 60.0),
    tile_deg: float = 0.025,
    start: datetime = datetime(2024, 1, 1, tzinfo=UTC),
    days: int = 365,
    dtype: str = "float32",
    seed: int = 0,
    first_part: int = 0,
    first_row: int = 0,
) -> list[Path]:
    """One part per block of vectors in `blocks` (an iterable of [n, D] arrays); returns the paths.
    `first_part` / `first_row` continue a folder written by an earlier call (e.g. another region)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, vectors in enumerate(blocks, start=first_part):
        table = part_table(
            vectors, first_row, np.random.default_rng([seed, number]), region, tile_deg, start, days, dtype
        )
        bbox = table.column("bbox").combine_chunks()
        geo = {
            "version": "1.1.0",
            "primary_column": "geometry",
            "columns": {
                "geometry": {
                    "encoding": "WKB",
                    "geometry_types": ["Polygon"],
                    "bbox": [
                        float(np.min(bbox.field(0))),
                        float(np.min(bbox.field(1))),
                        float(np.max(bbox.field(2))),
                        float(np.max(bbox.field(3))),
                    ],
                    "covering": {"bbox": {key: ["bbox", key] for key in ("xmin", "ymin", "xmax", "ymax")}},
                }
            },
        }
        info = {
            "format": 1,
            "model": model,
            "model_fingerprint": fingerprint,
            "dim": int(vectors.shape[1]),
            "dtype": dtype,
            "normalized": True,
        }
        table = table.replace_schema_metadata(
            {b"geo": json.dumps(geo).encode(), b"rs_retrieval": json.dumps(info).encode()}
        )
        paths.append(folder / f"part-{number:05d}.parquet")
        pq.write_table(table, paths[-1])
        first_row += len(vectors)
    return paths
