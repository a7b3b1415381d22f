"""Search results as GeoJSON and GeoParquet (tile footprints QGIS and geopandas open) and as a
picture of the scene."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..fileio import save_png_atomic
from ..imagery import to_rgb_uint8
from ..optional import require
from ..search.folder_search import _font
from .sources import wgs84_corners

#: Scenes smaller than this (pixels, longest side) are drawn enlarged.
MIN_SIZE = 512
PIXEL_NOTE = "pixel coordinates (column, row) of the scene: it has no CRS"


def _ring(corners) -> list[list[float]]:
    return [[float(x), float(y)] for x, y in [*corners, corners[0]]]


def _footprints(hits) -> tuple[list[dict | None], bool]:
    """Each hit's footprint as a GeoJSON polygon (None for files), and whether they are in pixel
    coordinates (a scene without CRS) rather than WGS84 (lon, lat). Rows of embedding parts carry
    their footprint as WKB; scene and STAC tiles' boxes are transformed from their own CRS (items of
    one catalog can lie in several UTM zones), one batch per CRS."""
    tiles = [hit for hit in hits if hit.geometry is None and hit.bounds is not None]
    corners = {}
    for crs in {hit.crs for hit in tiles if hit.crs}:
        group = [hit for hit in tiles if hit.crs == crs]
        corners.update(zip(map(id, group), wgs84_corners([hit.bounds for hit in group], crs)))
    shapely = (
        require("shapely", "geo", "footprints of indexed tiles")
        if any(hit.geometry is not None for hit in hits)
        else None
    )
    footprints = []
    for hit in hits:
        if hit.geometry is not None:  # RFC 7946: exterior rings counter-clockwise
            footprints.append(shapely.geometry.mapping(shapely.orient_polygons(shapely.from_wkb(hit.geometry))))
        elif hit.bounds is not None:
            left, bottom, right, top = hit.bounds
            ring = corners.get(id(hit)) or [(left, bottom), (right, bottom), (right, top), (left, top)]
            footprints.append({"type": "Polygon", "coordinates": [_ring(ring)]})
        else:
            footprints.append(None)
    return footprints, bool(tiles) and tiles[0].crs is None


def hits_to_geojson(hits) -> dict:
    """An RFC 7946 FeatureCollection with one polygon per hit: the tile footprint in WGS84 (lon, lat)
    for a georeferenced scene or embedding parts, in pixel coordinates for a scene without CRS (said
    in the collection's `coordinates`); file hits (no footprint) have a null geometry."""
    footprints, pixels = _footprints(hits)
    features = []
    for hit, geometry in zip(hits, footprints):
        properties = {"rank": hit.rank, "score": hit.score}
        properties.update(
            {
                name: value
                for name in ("path", "tile_id", "item_id", "datetime", "window", "bounds", "crs", "bounds_wgs84")
                if (value := getattr(hit, name)) is not None
            }
        )
        features.append({"type": "Feature", "geometry": geometry, "properties": properties})
    collection = {"type": "FeatureCollection", "features": features}
    if pixels:
        collection["coordinates"] = PIXEL_NOTE
    return collection


def hits_to_geoparquet(hits, path: str | Path) -> Path:
    """Write the hits as GeoParquet 1.1 (rank, score, id, item_id, datetime, footprint as WKB in
    WGS84), atomically. Hits without a WGS84 footprint (files, scenes without CRS) get a null one."""
    import pyarrow as pa

    from .geoparquet import geo_metadata
    from .store import write_parquet

    shapely = require("shapely", "geo", "GeoParquet output")
    footprints, pixels = _footprints(hits)
    shapes = [None if pixels or g is None else shapely.geometry.shape(g) for g in footprints]
    present = [shape for shape in shapes if shape is not None]
    table = pa.table(
        {
            "rank": pa.array([hit.rank for hit in hits], pa.int32()),
            "score": pa.array([hit.score for hit in hits], pa.float32()),
            "id": pa.array([hit.tile_id or hit.path for hit in hits], pa.string()),
            "item_id": pa.array([hit.item_id for hit in hits], pa.string()),
            "datetime": pa.array([hit.datetime for hit in hits], pa.string()).cast(pa.timestamp("us", tz="UTC")),
            "geometry": pa.array([None if shape is None else shapely.to_wkb(shape) for shape in shapes], pa.binary()),
        }
    )
    geo = geo_metadata(shapely.total_bounds(present) if present else None)
    write_parquet(Path(path), table.replace_schema_metadata({b"geo": json.dumps(geo).encode()}))
    return Path(path)


def draw_scene_hits(scene: dict, hits, out_path: str | Path, title: str = "", max_size: int = 1024) -> Path:
    """PNG of the scene, downsampled on read (never the full raster in memory), with each hit's
    tile outlined and numbered by rank."""
    rasterio = require("rasterio", "geo", "scene pictures")
    from rasterio.enums import Resampling

    with rasterio.open(scene["scene"]) as data:
        longest = max(data.width, data.height)
        # Large scenes are read decimated; small ones are enlarged (whole pixels) to stay legible.
        scale = max_size / longest if longest > max_size else max(1, MIN_SIZE // longest)
        shape = (len(scene["bands"]), max(1, round(data.height * scale)), max(1, round(data.width * scale)))
        pixels = data.read(
            scene["bands"], out_shape=shape, resampling=Resampling.average if scale < 1 else Resampling.nearest
        )
    picture = Image.fromarray(to_rgb_uint8(np.moveaxis(pixels, 0, -1), source=scene["scene"]))
    canvas, header = _titled(picture, title)
    sx, sy = picture.width / scene["width"], picture.height / scene["height"]
    outlines = []
    for hit in hits:
        col, row, width, height = hit.window
        left, top, right, bottom = (
            col * sx,
            header + row * sy,
            (col + width) * sx - 1,
            header + (row + height) * sy - 1,
        )
        outlines.append((hit.rank, [(left, top), (right, top), (right, bottom), (left, bottom)]))
    _outline_hits(canvas, outlines, picture.width)
    return save_png_atomic(canvas, out_path)


def _titled(picture: Image.Image, title: str) -> tuple[Image.Image, int]:
    """The picture under its wrapped title; returns the canvas and the title's height."""
    lines = textwrap.wrap(title, width=max(20, picture.width // 9))
    header = 8 + 20 * len(lines) if lines else 0
    canvas = Image.new("RGB", (picture.width, picture.height + header), "white")
    canvas.paste(picture, (0, header))
    draw = ImageDraw.Draw(canvas)
    for number, line in enumerate(lines):
        draw.text((6, 4 + 20 * number), line, fill="black", font=_font(16))
    return canvas, header


def _outline_hits(canvas: Image.Image, outlines: list[tuple[int, list]], width: int) -> None:
    """Outline each (rank, polygon in canvas pixels) and number it; the best hit is drawn last, on top."""
    draw, font = ImageDraw.Draw(canvas), _font(max(14, width // 40))
    for rank, points in sorted(outlines, reverse=True):
        color = "red" if rank == 1 else "yellow"
        draw.polygon(points, outline=color, width=max(2, width // 300))
        left, top = min(x for x, _ in points), min(y for _, y in points)
        draw.text((left + 4, top + 2), str(rank), fill=color, font=font, stroke_width=2, stroke_fill="black")


def draw_stac_hits(source: dict, hits, out_path: str | Path, title: str = "", max_size: int = 1024) -> Path:
    """PNG map of STAC hits: the items that hold them, read from their overviews and reprojected
    into the CRS most of them share (items of another UTM zone are warped), each hit's footprint
    outlined and numbered by rank."""
    require("rasterio", "geo", "STAC hit maps")
    from collections import Counter

    from affine import Affine
    from rasterio.enums import Resampling
    from rasterio.transform import from_bounds
    from rasterio.warp import reproject, transform

    from .stac import item_overview, source_items

    items = source_items(source, {hit.tile_id.rsplit("/", 1)[0] for hit in hits})
    crs = Counter(item.crs for item in items).most_common(1)[0][0]
    xs, ys = [], []
    for item in items:
        width, height = item.width * item.transform[0], item.height * item.transform[4]
        x, y = transform(
            item.crs,
            crs,
            [item.transform[2], item.transform[2] + width] * 2,
            [item.transform[5]] * 2 + [item.transform[5] + height] * 2,
        )
        xs, ys = xs + list(x), ys + list(y)
    left, bottom, right, top = min(xs), min(ys), max(xs), max(ys)
    scale = max_size / max(right - left, top - bottom)
    size = (max(1, round((top - bottom) * scale)), max(1, round((right - left) * scale)))
    grid = from_bounds(left, bottom, right, top, size[1], size[0])
    mosaic = np.zeros((3, *size), dtype=np.uint8)
    for item in items:
        rgb, item_grid = item_overview(item, max_size)
        warped = np.zeros_like(mosaic)
        reproject(
            np.moveaxis(rgb, -1, 0),
            warped,
            src_transform=Affine(*item_grid),
            src_crs=item.crs,
            dst_transform=grid,
            dst_crs=crs,
            src_nodata=0,
            dst_nodata=0,
            resampling=Resampling.bilinear,
        )
        mosaic = np.where(warped.any(axis=0), warped, mosaic)
    canvas, header = _titled(Image.fromarray(np.moveaxis(mosaic, 0, -1)), title)
    outlines = []
    for hit in hits:
        x0, y0, x1, y1 = hit.bounds
        x, y = transform(hit.crs, crs, [x0, x1, x1, x0], [y0, y0, y1, y1])
        outlines.append((hit.rank, [(col, header + row) for col, row in (~grid * point for point in zip(x, y))]))
    _outline_hits(canvas, outlines, size[1])
    return save_png_atomic(canvas, out_path)
