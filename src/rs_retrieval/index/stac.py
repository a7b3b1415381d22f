"""STAC catalogs of Cloud-Optimized GeoTIFFs as an index source: items filtered, then tiled.

A catalog is a local STAC Catalog / Collection JSON (items found recursively), an ItemCollection
(GeoJSON FeatureCollection) or a stac-geoparquet file. Items are filtered by bbox, datetime and
`eo:cloud_cover` from their metadata alone, before any pixel is read. Each remaining item is
tiled on the pixel grid of its first asset; a tile is one windowed read per asset (a COG serves
only the blocks the window touches), so no scene is ever held in memory.

Bands become the model's RGB by the package's image rule (`rs_retrieval.imagery.to_rgb_uint8`),
with one exception made for archives: assets that declare a `raster:bands` scale (Sentinel-2
L2A: reflectance = DN x 0.0001 - 0.1 since processing baseline 04.00) are converted to surface
reflectance and mapped with one fixed stretch, 0 .. `REFLECTANCE_WHITE` -> 0 .. 255, so that every
tile of every date is drawn with the same mapping (the per-tile percentile stretch would make a
lake and a desert look alike). Tiles where more than `NODATA_LIMIT` of the pixels are nodata in
every band (the asset's nodata value, or NaN) are skipped and counted.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..errors import RSRetrievalError
from ..optional import require
from .geoparquet import corners_box, footprint_columns
from .sources import Tile, UnreadableItemError, _offsets, wgs84_corners

logger = logging.getLogger(__name__)

#: Surface reflectance drawn as white (255) for scaled reflectance assets (true-colour convention).
REFLECTANCE_WHITE = 0.3
#: Tiles with a larger fraction of nodata pixels are skipped.
NODATA_LIMIT = 0.5
STAC_GEOPARQUET_SUFFIXES = (".parquet", ".geoparquet")


class StacError(RSRetrievalError, ValueError):
    """Bad catalog, filter or asset options (names what is wrong and what was found)."""


@dataclass(frozen=True)
class StacTileItem:
    """What tiling and reading need from one STAC item (picklable, no open files)."""

    id: str
    datetime: datetime | None
    hrefs: tuple[str, ...]
    #: 1-based band numbers read from each href (in order of the output bands).
    indexes: tuple[tuple[int, ...], ...]
    #: Per output band: (scale, offset) from `raster:bands`, or None.
    scales: tuple[tuple[float, float] | None, ...]
    nodata: tuple[float | None, ...]
    crs: str | None
    transform: tuple[float, ...]
    width: int
    height: int


# ------------------------------------------------------------------------------------ catalogs


def _parse_time(text: str, end: bool) -> datetime | None:
    text = text.strip()
    if text in ("", ".."):
        return None
    try:
        if len(text) == 10:  # a date: the whole day
            day = datetime.fromisoformat(text).replace(tzinfo=UTC)
            return day.replace(hour=23, minute=59, second=59, microsecond=999_999) if end else day
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as err:
        raise StacError(
            f"cannot read {text!r} as a date or RFC 3339 time (e.g. 2024-06-01 or 2024-06-01T10:00:00Z)"
        ) from err
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_datetime_range(text: str | None) -> tuple[datetime | None, datetime | None] | None:
    """`START/END` (either side may be `..` or empty), or one date / time, as aware UTC datetimes."""
    if not text:
        return None
    start, _, end = text.partition("/") if "/" in text else (text, "", text)
    result = (_parse_time(start, end=False), _parse_time(end, end=True))
    if result[0] and result[1] and result[0] > result[1]:
        raise StacError(f"datetime range {text!r} ends before it starts")
    return result


def parse_bbox(text: str | list | None) -> tuple[float, float, float, float] | None:
    """`W,S,E,N` in degrees (lon, lat)."""
    if text is None:
        return None
    try:
        west, south, east, north = (float(v) for v in (text.split(",") if isinstance(text, str) else text))
    except ValueError as err:
        raise StacError(f"bbox must be W,S,E,N in degrees, got {text!r}") from err
    if not (-180 <= west <= east <= 180 and -90 <= south <= north <= 90):
        raise StacError(
            f"bbox {text!r} is not W,S,E,N in degrees with W <= E and S "
            "<= N (a box across the antimeridian: build its two halves)"
        )
    return west, south, east, north


def _geoparquet_items(path: Path) -> list[dict]:
    """Item dicts from a stac-geoparquet file (one row per item, properties as columns)."""
    import pyarrow.parquet as pq

    shapely = require("shapely", "archive", "stac-geoparquet catalogs")
    core = {"type", "stac_version", "stac_extensions", "id", "geometry", "bbox", "links", "assets", "collection"}
    items = []
    for row in pq.read_table(path).to_pylist():
        properties = {}
        for key, value in row.items():
            if key in core or value is None:
                continue
            properties[key] = value.isoformat() if isinstance(value, datetime) else value
        bbox = row.get("bbox")
        items.append(
            {
                "type": "Feature",
                "stac_version": row.get("stac_version") or "1.0.0",
                "stac_extensions": row.get("stac_extensions") or [],
                "id": row["id"],
                "geometry": shapely.geometry.mapping(shapely.from_wkb(row["geometry"])),
                "bbox": [bbox["xmin"], bbox["ymin"], bbox["xmax"], bbox["ymax"]] if isinstance(bbox, dict) else bbox,
                "properties": properties,
                "links": row.get("links") or [],
                "assets": {
                    k: {n: v for n, v in a.items() if v is not None} for k, a in (row.get("assets") or {}).items() if a
                },
                **({"collection": row["collection"]} if row.get("collection") else {}),
            }
        )
    return items


def load_items(catalog: str | Path) -> list:
    """The pystac Items of a local catalog, collection, item collection or stac-geoparquet file,
    asset hrefs made absolute (relative hrefs resolve against the file that holds them)."""
    pystac = require("pystac", "archive", "STAC catalogs")
    path = Path(catalog).resolve()
    if not path.is_file():
        raise StacError(f"STAC catalog {path} does not exist")
    if path.suffix.lower() in STAC_GEOPARQUET_SUFFIXES:
        items = [pystac.Item.from_dict(d) for d in _geoparquet_items(path)]
        for item in items:  # relative asset hrefs are relative to the parquet file
            for asset in item.assets.values():
                if "://" not in asset.href and not Path(asset.href).is_absolute():
                    asset.href = str((path.parent / asset.href).resolve())
        return items
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise StacError(f"{path} is not a JSON STAC file or a stac-geoparquet file ({err})") from err
    kind = payload.get("type") if isinstance(payload, dict) else None
    try:
        if kind == "FeatureCollection":
            collection = pystac.ItemCollection.from_dict(payload, preserve_dict=False)
            for item in collection.items:
                item.set_self_href(str(path))  # relative asset hrefs resolve against this file
            return list(collection.items)
        if kind == "Feature":
            return [pystac.Item.from_file(str(path))]
        if kind in ("Catalog", "Collection"):
            return list(pystac.read_file(str(path)).get_items(recursive=True))
    except pystac.STACError as err:
        raise StacError(f"{path}: {err}") from err
    raise StacError(f"{path} is not a STAC Catalog, Collection, Item or ItemCollection (type {kind!r})")


def _item_range(item) -> tuple[datetime | None, datetime | None]:
    props = item.properties
    if item.datetime is not None:
        return item.datetime, item.datetime
    return (
        _parse_time(props["start_datetime"], False) if props.get("start_datetime") else None,
        _parse_time(props["end_datetime"], True) if props.get("end_datetime") else None,
    )


def filter_items(items: list, bbox=None, datetime_range=None, max_cloud: float | None = None) -> tuple[list, dict]:
    """Items that intersect `bbox`, overlap `datetime_range` and have `eo:cloud_cover` <= `max_cloud`
    (items without a cloud cover are kept); returns (items, how many each filter removed)."""
    removed = {"bbox": 0, "datetime": 0, "cloud": 0}
    kept = []
    for item in items:
        if bbox is not None and item.bbox is not None:
            west, south, east, north = (
                item.bbox[0],
                item.bbox[1],
                item.bbox[-3 if len(item.bbox) == 6 else 2],
                item.bbox[-2 if len(item.bbox) == 6 else 3],
            )
            if west > bbox[2] or east < bbox[0] or south > bbox[3] or north < bbox[1]:
                removed["bbox"] += 1
                continue
        if datetime_range is not None:
            first, last = _item_range(item)
            if (datetime_range[1] and first and first > datetime_range[1]) or (
                datetime_range[0] and last and last < datetime_range[0]
            ):
                removed["datetime"] += 1
                continue
        cloud = item.properties.get("eo:cloud_cover")
        if max_cloud is not None and cloud is not None and cloud > max_cloud:
            removed["cloud"] += 1
            continue
        kept.append(item)
    return kept, removed


def _raster_bands(asset) -> list[dict]:
    return asset.extra_fields.get("raster:bands") or [{}]


def tile_item(item, assets: list[str] | None, asset: str | None, rasterio) -> StacTileItem:
    """Read the grid of an item's first asset (header only) and its band rules."""
    if assets:
        names, multiband = list(assets), False
    else:
        names, multiband = [asset or "visual"], True
    missing = [name for name in names if name not in item.assets]
    if missing:
        raise StacError(
            f"item {item.id} has no asset {missing[0]!r} (it has "
            f"{', '.join(sorted(item.assets)) or 'none'}); choose --assets or --asset"
        )
    hrefs = tuple(item.assets[name].get_absolute_href() or item.assets[name].href for name in names)
    try:
        with rasterio.open(hrefs[0]) as first:
            crs = first.crs.to_string() if first.crs else None
            transform, width, height, count, nodata = (
                tuple(first.transform)[:6],
                first.width,
                first.height,
                first.count,
                first.nodata,
            )
    except rasterio.errors.RasterioIOError as err:
        raise StacError(f"cannot open asset {names[0]!r} of item {item.id} ({hrefs[0]}): {err}") from err
    if multiband:
        indexes = ((1, 2, 3) if count >= 3 else (1,),)
        bands = _raster_bands(item.assets[names[0]])
        scales = tuple(_scale(bands[min(i, len(bands) - 1)]) for i in range(len(indexes[0])))
        nodatas = (_nodata(bands[0], nodata),)
    else:
        if len(names) not in (1, 3):
            raise StacError(f"--assets takes 1 (grey) or 3 (R,G,B) single-band assets, got {len(names)}")
        indexes = tuple((1,) for _ in names)
        scales = tuple(_scale(_raster_bands(item.assets[name])[0]) for name in names)
        nodatas = tuple(
            _nodata(_raster_bands(item.assets[name])[0], nodata if i == 0 else None) for i, name in enumerate(names)
        )
    return StacTileItem(
        item.id, item.datetime or _item_range(item)[0], hrefs, indexes, scales, nodatas, crs, transform, width, height
    )


def _scale(band: dict) -> tuple[float, float] | None:
    if "scale" not in band and "offset" not in band:
        return None
    return float(band.get("scale", 1.0)), float(band.get("offset", 0.0))


def _nodata(band: dict, fallback):
    value = band.get("nodata", fallback)
    return None if value is None else float(value)


def source_items(description: dict, item_ids: set[str]) -> list[StacTileItem]:
    """The items `item_ids` of the catalog a STAC index was built from, with its band choice."""
    rasterio = require("rasterio", "geo", "STAC catalogs of COGs")
    assets = None if description["multiband"] else description["assets"]
    asset = description["assets"][0] if description["multiband"] else None
    return [
        tile_item(item, assets, asset, rasterio) for item in load_items(description["catalog"]) if item.id in item_ids
    ]


# ------------------------------------------------------------------------------------ pixels


def read_item_bands(
    item: StacTileItem, window: Tile, shape: tuple[int, int], open_dataset
) -> tuple[np.ndarray, np.ndarray]:
    """Bands [H, W, C] of `window` (in the item's grid) read at `shape` (decimated when smaller),
    as float64 reflectance where the assets are scaled, else in the raster dtype; and the nodata
    mask [H, W] (True where every band is nodata or NaN). `open_dataset(href)` gives an open raster."""
    from rasterio.enums import Resampling
    from rasterio.windows import Window

    planes, nodata_planes = [], []
    for href, indexes, nodata in zip(item.hrefs, item.indexes, item.nodata):
        data = open_dataset(href)
        fx, fy = data.width / item.width, data.height / item.height  # assets of another resolution
        box = Window(window.col_off * fx, window.row_off * fy, window.width * fx, window.height * fy)
        pixels = data.read(list(indexes), window=box, out_shape=(len(indexes), *shape), resampling=Resampling.bilinear)
        for plane in pixels:
            invalid = np.isnan(plane) if plane.dtype.kind == "f" else np.zeros(plane.shape, dtype=bool)
            nodata_planes.append(invalid | (plane == nodata) if nodata is not None else invalid)
            planes.append(plane)
    mask = np.logical_and.reduce(nodata_planes)
    if all(scale is None for scale in item.scales):
        return np.stack(planes, axis=-1), mask
    scaled = [
        plane * scale[0] + scale[1] if scale else plane.astype(np.float64) for plane, scale in zip(planes, item.scales)
    ]
    return np.stack(scaled, axis=-1), mask


def model_image(item: StacTileItem, bands: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Pixels the processor converts by the image rule; scaled reflectance gets the fixed stretch
    as a [0, 1] float image; nodata pixels are black."""
    if any(item.scales):
        return np.where(mask[..., None], 0.0, np.clip(bands / REFLECTANCE_WHITE, 0.0, 1.0)).astype(np.float32)
    if mask.any():
        bands = bands.copy()
        bands[mask] = 0
    return bands


def item_overview(item: StacTileItem, max_size: int) -> tuple[np.ndarray, tuple[float, ...]]:
    """The whole item as RGB uint8, decimated on read to at most `max_size` px (COG overviews
    serve it), and the affine transform of that picture."""
    import rasterio

    from ..imagery import to_rgb_uint8

    scale = min(1.0, max_size / max(item.width, item.height))
    shape = (max(1, round(item.height * scale)), max(1, round(item.width * scale)))
    with contextlib.ExitStack() as stack:
        bands, mask = read_item_bands(
            item, Tile(0, 0, item.width, item.height), shape, lambda href: stack.enter_context(rasterio.open(href))
        )
    a, b, c, d, e, f = item.transform
    sx, sy = item.width / shape[1], item.height / shape[0]
    return to_rgb_uint8(model_image(item, bands, mask)), (a * sx, b * sy, c, d * sx, e * sy, f)


# ------------------------------------------------------------------------------------ source


class StacSource:
    """Tiles of the filtered items of a STAC catalog (an index source like `SceneSource`)."""

    kind = "stac"

    def __init__(
        self,
        catalog: str | Path,
        tile_size: int = 256,
        stride: int | None = None,
        bbox=None,
        datetime_range: str | None = None,
        max_cloud: float | None = None,
        assets: list[str] | None = None,
        asset: str | None = None,
    ):
        rasterio = require("rasterio", "geo", "STAC catalogs of COGs")
        if assets and asset:
            raise StacError(
                "give either --assets (single-band assets, e.g. "
                "B04,B03,B02) or --asset (one multi-band asset), not both"
            )
        self.tile_size, self.stride = tile_size, stride or tile_size
        if tile_size < 1 or self.stride < 1:
            raise StacError(f"tile size and stride must be >= 1, got {tile_size} and {self.stride}")
        box, times = parse_bbox(bbox), parse_datetime_range(datetime_range)
        items = load_items(catalog)
        selected, removed = filter_items(items, box, times, max_cloud)
        if not selected:
            raise StacError(
                f"no item of {catalog} passes the filters ({len(items)} items; removed by bbox {removed['bbox']}, "
                f"datetime {removed['datetime']}, cloud cover {removed['cloud']})"
            )
        self.items = [tile_item(item, assets, asset, rasterio) for item in selected]
        self.assets = list(assets) if assets else [asset or "visual"]
        self.tiles: list[tuple[int, Tile]] = []
        too_small = []
        for number, item in enumerate(self.items):
            if tile_size > min(item.width, item.height):
                too_small.append(item.id)
                continue
            self.tiles += [
                (number, Tile(col, row, tile_size, tile_size))
                for row in _offsets(item.height, tile_size, self.stride)
                for col in _offsets(item.width, tile_size, self.stride)
            ]
        if too_small:
            logger.warning(
                "%d item(s) smaller than the %d px tile were left out: %s",
                len(too_small),
                tile_size,
                ", ".join(too_small[:5]),
            )
        self.description = {
            "kind": "stac",
            "catalog": str(Path(catalog).resolve()),
            "tile_size": tile_size,
            "stride": self.stride,
            "assets": self.assets,
            "multiband": not assets,
            "filters": {"bbox": list(box) if box else None, "datetime": datetime_range, "max_cloud": max_cloud},
            "items": len(self.items),
            "items_in_catalog": len(items),
            "items_removed": removed,
            "items_too_small": too_small,
            "georeferenced": True,
            "reflectance_white": REFLECTANCE_WHITE,
            "nodata_limit": NODATA_LIMIT,
        }
        self._open = {}

    def __getstate__(self):  # open datasets stay in the process that opened them
        return {**self.__dict__, "_open": {}}

    def __len__(self) -> int:
        return len(self.tiles)

    def tile_id(self, index: int) -> str:
        number, tile = self.tiles[index]
        return f"{self.items[number].id}/{tile.col_off}_{tile.row_off}_{tile.width}_{tile.height}"

    def ids(self, rows) -> list[str]:
        """Stable ids (the embeddings parts' `id`): `{item id}/{col_off}_{row_off}_{width}_{height}`."""
        return [self.tile_id(i) for i in rows]

    def key(self, index: int) -> str:
        """The tile id plus the assets read (a tile read from other bands is another encoding)."""
        return f"{self.tile_id(index)}:{json.dumps(self.assets)}"

    def name(self, index: int) -> str:
        return f"tile {self.tile_id(index)}"

    def _dataset(self, href: str):
        import rasterio

        if href not in self._open:
            if len(self._open) >= 64:  # a worker reads many items over a build: keep the newest open
                self._open.pop(next(iter(self._open))).close()
            self._open[href] = rasterio.open(href)
        return self._open[href]

    def read_bands(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The tile's bands [H, W, C] and nodata mask [H, W] (see `read_item_bands`)."""
        number, tile = self.tiles[index]
        return read_item_bands(self.items[number], tile, (tile.height, tile.width), self._dataset)

    def load(self, index: int) -> np.ndarray | None:
        """The tile as the model reads it, or None when it is mostly nodata."""
        try:
            bands, mask = self.read_bands(index)
        except Exception as err:  # GDAL reports damaged blocks as several exception types
            raise UnreadableItemError(f"cannot read {self.name(index)}: {err}") from err
        if mask.mean() > NODATA_LIMIT:
            return None
        return model_image(self.items[self.tiles[index][0]], bands, mask)

    def processor_row(self, index: int) -> dict[str, list] | None:
        image = self.load(index)
        return None if image is None else {"image": [image]}

    def _native_bounds(self, rows: list[int]) -> list[tuple[float, float, float, float]]:
        from affine import Affine
        from rasterio.windows import Window, bounds

        out = []
        for i in rows:
            number, tile = self.tiles[i]
            out.append(
                tuple(
                    map(
                        float,
                        bounds(
                            Window(tile.col_off, tile.row_off, tile.width, tile.height),
                            Affine(*self.items[number].transform),
                        ),
                    )
                )
            )
        return out

    def _corners(self, rows: list[int], native: list) -> list:
        """WGS84 corners per row, transformed in one batch per CRS."""
        corners: list = [None] * len(rows)
        by_crs: dict[str | None, list[int]] = {}
        for position, i in enumerate(rows):
            by_crs.setdefault(self.items[self.tiles[i][0]].crs, []).append(position)
        for crs, positions in by_crs.items():
            for position, value in zip(positions, wgs84_corners([native[p] for p in positions], crs)):
                corners[position] = value
        return corners

    def metadata_columns(self, rows: list[int], keys: list[str]) -> dict[str, list]:
        native = self._native_bounds(rows)
        corners = self._corners(rows, native)
        return {
            "tile_id": [self.tile_id(i) for i in rows],
            "item_id": [self.items[self.tiles[i][0]].id for i in rows],
            "datetime": [self.items[self.tiles[i][0]].datetime for i in rows],
            "file_hash": keys,
            "window": [[t.col_off, t.row_off, t.width, t.height] for t in (self.tiles[i][1] for i in rows)],
            "bounds": [list(b) for b in native],
            "crs": [self.items[self.tiles[i][0]].crs for i in rows],
            "bounds_wgs84": [corners_box(c) for c in corners],
        }

    def embedding_columns(self, rows: list[int]) -> dict[str, list]:
        """The GeoParquet columns (`geoparquet.COLUMNS`) of these rows."""
        native = self._native_bounds(rows)
        tiles = [self.tiles[i] for i in rows]
        return {
            "id": self.ids(rows),
            "item_id": [self.items[n].id for n, _ in tiles],
            "datetime": [self.items[n].datetime for n, _ in tiles],
            "source_crs": [self.items[n].crs for n, _ in tiles],
            "window": [
                {"col_off": t.col_off, "row_off": t.row_off, "width": t.width, "height": t.height} for _, t in tiles
            ],
            **footprint_columns(self._corners(rows, native)),
        }
