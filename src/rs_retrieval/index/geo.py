"""Scene search results as GeoJSON (tile footprints QGIS opens) and as a picture of the scene."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..fileio import save_png_atomic
from ..optional import require
from ..search.engine import _font
from ..imagery import to_rgb_uint8
from .sources import wgs84_corners

#: Scenes smaller than this (pixels, longest side) are drawn enlarged.
MIN_SIZE = 512
PIXEL_NOTE = "pixel coordinates (column, row) of the scene: it has no CRS"


def _ring(corners) -> list[list[float]]:
    return [[float(x), float(y)] for x, y in [*corners, corners[0]]]


def hits_to_geojson(hits) -> dict:
    """A FeatureCollection with one polygon per hit: the tile footprint in WGS84 (lon, lat) for
    georeferenced tiles (each from its own CRS), in pixel coordinates otherwise (said in the collection's `coordinates`);
    file hits (no footprint) have a null geometry."""
    tiles = [hit for hit in hits if hit.bounds is not None]
    footprint = {}
    for crs in {hit.crs for hit in tiles}:  # STAC hits come from items in several CRSs (UTM zones)
        group = [hit for hit in tiles if hit.crs == crs]
        corners = wgs84_corners([hit.bounds for hit in group], crs)
        footprint.update({id(hit): c for hit, c in zip(group, corners)})
    crs = tiles[0].crs if tiles else None
    features = []
    for hit in hits:
        geometry = None
        if hit.bounds is not None:
            left, bottom, right, top = hit.bounds
            ring = footprint[id(hit)] or [(left, bottom), (right, bottom), (right, top), (left, top)]
            geometry = {"type": "Polygon", "coordinates": [_ring(ring)]}
        properties = {"rank": hit.rank, "score": hit.score}
        properties.update({name: value for name in ("path", "tile_id", "window", "bounds", "crs", "bounds_wgs84")
                           if (value := getattr(hit, name)) is not None})
        features.append({"type": "Feature", "geometry": geometry, "properties": properties})
    collection = {"type": "FeatureCollection", "features": features}
    if tiles and crs is None:
        collection["coordinates"] = PIXEL_NOTE
    return collection


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
        pixels = data.read(scene["bands"], out_shape=shape, resampling=Resampling.average if scale < 1 else Resampling.nearest)
    picture = Image.fromarray(to_rgb_uint8(np.moveaxis(pixels, 0, -1), source=scene["scene"]))
    lines = textwrap.wrap(title, width=max(20, picture.width // 9))
    header = 8 + 20 * len(lines) if lines else 0
    canvas = Image.new("RGB", (picture.width, picture.height + header), "white")
    canvas.paste(picture, (0, header))
    draw, font = ImageDraw.Draw(canvas), _font(max(14, picture.width // 40))
    for number, line in enumerate(lines):
        draw.text((6, 4 + 20 * number), line, fill="black", font=_font(16))
    sx, sy = picture.width / scene["width"], picture.height / scene["height"]
    for hit in reversed(list(hits)):  # best hit drawn last, on top
        col, row, width, height = hit.window
        box = [col * sx, header + row * sy, (col + width) * sx - 1, header + (row + height) * sy - 1]
        color = "red" if hit.rank == 1 else "yellow"
        draw.rectangle(box, outline=color, width=max(2, picture.width // 300))
        draw.text((box[0] + 4, box[1] + 2), str(hit.rank), fill=color, font=font, stroke_width=2, stroke_fill="black")
    return save_png_atomic(canvas, out_path)
