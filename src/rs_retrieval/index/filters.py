"""Place and time filters for index search, exact with respect to the filter.

`--bbox W,S,E,N` (WGS84 degrees; W > E crosses the antimeridian) keeps the rows whose footprint
box intersects it; `--datetime START/END` (RFC 3339 as in the STAC API: an open end is `..`, a bare
date covers its whole UTC day, one instant alone keeps that instant) keeps the rows dated inside.
Rows with no footprint or no date fail a filter on it. The filter is evaluated on numpy columns
read once from the index's metadata (`FilterColumns`): no row becomes a Python object.

`filtered_search` then finds the best rows among the allowed ones, in one of three ways by how
many rows the filter allows:
  - few (<= `EXACT_ROWS`): their vectors are scored exactly (brute force over the subset);
  - a large share (>= `OVERFETCH_FROM` of the index): an unfiltered search asks for enough extra
    hits that k allowed ones are expected among them;
  - otherwise, or when over-fetching came back short: faiss searches with an id selector, so only
    allowed rows are scored inside the index. An IVF index probes enough lists to meet about as many
    allowed rows as an unfiltered query re-scores (`refine * k`; the allowed rows are spread over
    all lists), and more until it has k.
Every hit satisfies the filter, and no allowed row is missed beyond the index's own recall.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import numpy as np

from ..errors import RSRetrievalError
from .vectors import VectorIndexConfig, normalize_rows, search_faiss_index

#: Allowed rows up to this many are scored exactly from the vectors. Each row is a random read of
#: the memory-mapped vectors, as are the `refine * k` candidates of an IVF query, so this is about
#: the count one IVF query re-scores anyway (5,185 rows took 17 ms, 1M x 512 float16; benchmarks page).
EXACT_ROWS = 1_024
#: Above this share of the index allowed, an unfiltered search is over-fetched instead.
OVERFETCH_FROM = 0.25
_DAY_US = 86_400_000_000


class FilterError(RSRetrievalError, ValueError):
    """A malformed --bbox or --datetime, or a filter on a column the index does not hold."""


def parse_bbox(text: str | tuple | list) -> tuple[float, float, float, float]:
    """`W,S,E,N` in degrees -> a tuple; W > E is a box across the antimeridian."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    try:
        west, south, east, north = (float(p) for p in parts)
    except (TypeError, ValueError):
        raise FilterError(f"bbox must be four numbers W,S,E,N in degrees, got {text!r}") from None
    if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= north <= 90):
        raise FilterError(f"bbox {text!r} is not W,S,E,N in WGS84 degrees (-180..180, -90..90, S <= N)")
    return west, south, east, north


def _micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int((moment - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))


def _instant(text: str, end: bool) -> tuple[int, bool]:
    """Microseconds since the epoch, and whether `text` was a bare date (which then covers its day)."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return _micros(datetime.combine(day, time.min)) + (_DAY_US - 1 if end else 0), True
        return _micros(datetime.fromisoformat(text)), False
    except ValueError:
        raise FilterError(
            f"{text!r} is not an RFC 3339 date-time (e.g. 2024-05-01T10:00:00Z) or a date (2024-05-01)"
        ) from None


def parse_datetime(text: str) -> tuple[int | None, int | None]:
    """`START/END`, `../END`, `START/..` or one instant -> inclusive (start, end) in µs since the epoch."""
    if "/" not in text:
        start, whole_day = _instant(text.strip(), end=False)
        return start, start + _DAY_US - 1 if whole_day else start
    begin, _, finish = (part.strip() for part in text.partition("/"))
    start = None if begin in ("", "..") else _instant(begin, end=False)[0]
    end = None if finish in ("", "..") else _instant(finish, end=True)[0]
    if start is None and end is None:
        raise FilterError(f"datetime {text!r} is open at both ends")
    if start is not None and end is not None and start > end:
        raise FilterError(f"datetime {text!r} ends before it starts")
    return start, end


@dataclass(frozen=True)
class SearchFilter:
    bbox: tuple[float, float, float, float] | None = None
    #: Inclusive bounds in microseconds since the epoch (UTC); None = open.
    start: int | None = None
    end: int | None = None
    has_datetime: bool = False

    @classmethod
    def parse(cls, bbox=None, datetime=None) -> SearchFilter:
        start, end = parse_datetime(datetime) if datetime else (None, None)
        return cls(parse_bbox(bbox) if bbox is not None else None, start, end, bool(datetime))

    @property
    def active(self) -> bool:
        return self.bbox is not None or self.has_datetime


class FilterColumns:
    """The footprint box (xmin, ymin, xmax, ymax; NaN where unknown) and the date (µs; `dated` where
    known) of every row, as numpy arrays. Read from an index's metadata: the `bbox` struct and
    `datetime` columns of embedding parts, or `bounds_wgs84` of a georeferenced scene index."""

    def __init__(self, boxes: np.ndarray | None, micros: np.ndarray | None, dated: np.ndarray | None):
        self.boxes, self.micros, self.dated = boxes, micros, dated

    @classmethod
    def from_table(cls, table) -> FilterColumns:
        import pyarrow as pa
        import pyarrow.compute as pc

        boxes = micros = dated = None
        names = table.column_names
        if "bbox" in names or "bounds_wgs84" in names:
            column = table.column("bbox" if "bbox" in names else "bounds_wgs84").combine_chunks()
            if pa.types.is_struct(column.type):
                fields = [column.field(name) for name in ("xmin", "ymin", "xmax", "ymax")]
            else:
                fields = [pc.list_element(column, i) for i in range(4)]
            boxes = np.stack([f.to_numpy(zero_copy_only=False).astype(np.float64) for f in fields], axis=1)
            boxes[~column.is_valid().to_numpy(zero_copy_only=False)] = np.nan
        if "datetime" in names:
            column = pc.cast(table.column("datetime"), pa.timestamp("us", tz="UTC")).combine_chunks()
            dated = column.is_valid().to_numpy(zero_copy_only=False)
            micros = pc.fill_null(column.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
        return cls(boxes, micros, dated)

    def mask(self, search_filter: SearchFilter, count: int) -> np.ndarray:
        """Bool per row: does it satisfy `search_filter`?"""
        allowed = np.ones(count, dtype=bool)
        if search_filter.bbox is not None:
            if self.boxes is None:
                raise FilterError(
                    "this index has no footprints (bbox) to filter by place; it was built from files without geometry"
                )
            west, south, east, north = search_filter.bbox
            xmin, ymin, xmax, ymax = self.boxes.T
            with np.errstate(invalid="ignore"):  # NaN (no footprint) compares False: the row fails
                across = (xmin <= east) & (xmax >= west) if west <= east else (xmin <= east) | (xmax >= west)
                allowed &= across & (ymin <= north) & (ymax >= south)
        if search_filter.has_datetime:
            if self.micros is None:
                raise FilterError("this index has no datetime column to filter by time")
            allowed &= self.dated
            if search_filter.start is not None:
                allowed &= self.micros >= search_filter.start
            if search_filter.end is not None:
                allowed &= self.micros <= search_filter.end
        return allowed


def exact_subset_search(
    vectors: np.ndarray, query: np.ndarray, rows: np.ndarray, k: int, chunk: int = 65_536
) -> tuple[np.ndarray, np.ndarray]:
    """Top-`k` of `rows` (sorted) by exact inner product with one query [1, D]."""
    scores = np.concatenate(
        [np.asarray(vectors[rows[s : s + chunk]], dtype=np.float32) @ query[0] for s in range(0, len(rows), chunk)]
    )
    order = np.argsort(-scores, kind="stable")[:k]
    return scores[order][None], rows[order][None]


def filtered_search(
    index,
    vectors: np.ndarray,
    query: np.ndarray,
    k: int,
    config: VectorIndexConfig,
    allowed: np.ndarray,
    exact_rows: int = EXACT_ROWS,
    overfetch_from: float = OVERFETCH_FROM,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-`k` (scores [1, k'], rows [1, k']) among the rows where `allowed` is set, for one
    L2-normalised query [1, D]; k' = min(k, allowed rows). See the module docstring for the ways."""
    query = normalize_rows(query)
    rows = np.flatnonzero(allowed)
    k = min(k, len(rows))
    if k == 0:
        return np.empty((1, 0), dtype=np.float32), np.empty((1, 0), dtype=np.int64)
    if len(rows) <= exact_rows:
        return exact_subset_search(vectors, query, rows, k)
    share = len(rows) / len(allowed)
    if share >= overfetch_from:
        scores, found = search_faiss_index(index, vectors, query, math.ceil(2 * k / share), config)
        keep = (found[0] >= 0) & allowed[np.maximum(found[0], 0)]
        if keep.sum() >= k:
            return scores[:, keep][:, :k], found[:, keep][:, :k]
    nprobe, nlist = config.nprobe, getattr(index, "nlist", None)
    if nlist is not None:  # probe lists enough to scan about as many allowed rows as an unfiltered query re-scores
        nprobe = max(nprobe, min(nlist, math.ceil(max(1, config.refine) * k * nlist / len(rows))))
    while True:
        scores, found = search_faiss_index(index, vectors, query, k, config, allowed=allowed, nprobe=nprobe)
        if (found[0] >= 0).sum() >= k or nlist is None or nprobe >= nlist:
            valid = found[0] >= 0
            return scores[:, valid], found[:, valid]
        nprobe = min(nlist, nprobe * 4)  # the probed lists held too few allowed rows
