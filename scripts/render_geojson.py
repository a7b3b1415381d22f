"""Draw a GeoJSON of search hits over its scene, independently of the index code that wrote it.

Each polygon is projected back from WGS84 (lon, lat) to the scene's CRS and then to pixels with
the scene's own transform, so the picture checks the GeoJSON's coordinates, not the tile windows.

    python scripts/render_geojson.py scene.tif hits.geojson hits_from_geojson.png
"""

import argparse
import json

import numpy as np
import rasterio
from PIL import Image, ImageDraw
from rasterio.warp import transform

from rs_retrieval.imagery import to_rgb_uint8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scene")
    parser.add_argument("geojson")
    parser.add_argument("out")
    parser.add_argument("--scale", type=float, default=2.0, help="picture pixels per scene pixel")
    args = parser.parse_args()
    features = json.loads(open(args.geojson, encoding="utf-8").read())["features"]
    with rasterio.open(args.scene) as scene:
        pixels = np.moveaxis(scene.read([1, 2, 3] if scene.count >= 3 else [1]), 0, -1)
        picture = Image.fromarray(to_rgb_uint8(pixels)).resize(
            (round(scene.width * args.scale), round(scene.height * args.scale)), Image.NEAREST
        )
        draw = ImageDraw.Draw(picture)
        for feature in features:
            lons, lats = zip(*feature["geometry"]["coordinates"][0])
            xs, ys = transform("EPSG:4326", scene.crs, lons, lats)
            ring = [(~scene.transform) * (x, y) for x, y in zip(xs, ys)]
            ring = [(col * args.scale, row * args.scale) for col, row in ring]
            rank = feature["properties"]["rank"]
            draw.line(ring, fill="red" if rank == 1 else "cyan", width=3)
            draw.text(
                (ring[3][0] + 5, ring[3][1] + 4),
                f"{rank}: {feature['properties']['score']:.2f}",
                fill="white",
                stroke_width=2,
                stroke_fill="black",
            )
    picture.save(args.out)
    print(args.out)


if __name__ == "__main__":
    main()
