"""Write a small STAC catalog of georeferenced COGs made from rs_synth tiles (no network).

Five Sentinel-2-like items of 512 x 512 px at 10 m, on both sides of the UTM zone border at 6°E
(EPSG:32631 west of it, EPSG:32632 east of it), on two dates; the second date's zone-32 item is
85 % cloudy, and one item has its western half outside the swath (nodata). Each item has three
single-band uint16 COGs `B04`, `B03`, `B02` holding L2A digital numbers (reflectance x 10000 +
1000, declared by `raster:bands` scale 0.0001 / offset -0.1 / nodata 0) and a uint8 RGB COG
`visual` (nodata 0). The catalog is written three ways: `catalog.json` (self-contained STAC catalog),
`items.json` (an ItemCollection) and `items.parquet` (stac-geoparquet).

    python scripts/make_stac_demo.py demo_stac/
    rs-retrieval index build --model M --stac demo_stac/catalog.json --out demo.index --max-cloud 50 --tile-size 128
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pystac
import rasterio
from PIL import Image
from rasterio.transform import from_origin
from rasterio.warp import transform, transform_bounds

from rs_retrieval.data.synth import generate_rs_synth

SIZE, PIXEL, TILE = 512, 10.0, 128
#: (item id, EPSG code, upper-left easting, northing, date, cloud cover %, nodata west half)
ITEMS = [
    ("S2_DEMO_31TGL_20240601", 32631, 729_000.0, 4_985_000.0, "2024-06-01", 3.0, False),
    ("S2_DEMO_32TLR_20240601", 32632, 265_000.0, 4_985_000.0, "2024-06-01", 5.0, False),
    ("S2_DEMO_31TGL_20240701", 32631, 729_000.0, 4_985_000.0, "2024-07-01", 12.0, True),
    ("S2_DEMO_32TLR_20240701", 32632, 265_000.0, 4_985_000.0, "2024-07-01", 85.0, False),
    ("S2_DEMO_32TLQ_20240701", 32632, 265_000.0, 4_975_000.0, "2024-07-01", 1.0, False),
]
L2A_SCALE, L2A_OFFSET, WHITE = 0.0001, -0.1, 0.3


def mosaic(tiles: list[Image.Image], seed: int) -> np.ndarray:
    """A 4 x 4 mosaic [512, 512, 3] uint8 of the synth tiles in a per-item order."""
    order = np.random.default_rng(seed).permutation(len(tiles))
    rows = [np.concatenate([np.asarray(tiles[i]) for i in order[r * 4 : r * 4 + 4]], axis=1) for r in range(4)]
    return np.concatenate(rows, axis=0)


def write_cog(path: Path, bands: np.ndarray, crs: str, origin: tuple[float, float], nodata=None) -> None:
    profile = dict(
        driver="COG",
        width=SIZE,
        height=SIZE,
        count=len(bands),
        dtype=bands.dtype.name,
        crs=crs,
        transform=from_origin(*origin, PIXEL, PIXEL),
        blocksize=TILE,
        compress="deflate",
        overview_resampling="average",
    )
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as out:
        out.write(bands)


def to_l2a(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB as L2A digital numbers: reflectance (pixel / 255 x 0.3) x 10000 + 1000."""
    return np.round((rgb.astype(np.float64) / 255 * WHITE - L2A_OFFSET) / L2A_SCALE).astype(np.uint16)


def make_item(folder: Path, spec, tiles, seed: int) -> pystac.Item:
    item_id, epsg, east, north, day, cloud, nodata_west = spec
    crs = f"EPSG:{epsg}"
    rgb = mosaic(tiles, seed)
    dn = to_l2a(rgb)
    if nodata_west:  # outside the swath: nodata in every band
        rgb[:, : SIZE // 2], dn[:, : SIZE // 2] = 0, 0
    item_dir = folder / item_id
    item_dir.mkdir(parents=True, exist_ok=True)
    for number, name in enumerate(("B04", "B03", "B02")):
        write_cog(item_dir / f"{name}.tif", dn[None, :, :, number], crs, (east, north), nodata=0)
    write_cog(item_dir / "visual.tif", np.moveaxis(rgb, -1, 0), crs, (east, north), nodata=0)  # as Sentinel-2's TCI
    west, south, east_lon, north_lat = transform_bounds(
        crs, "EPSG:4326", east, north - SIZE * PIXEL, east + SIZE * PIXEL, north
    )
    xs, ys = (
        [east, east + SIZE * PIXEL, east + SIZE * PIXEL, east],
        [north - SIZE * PIXEL, north - SIZE * PIXEL, north, north],
    )
    lons, lats = transform(crs, "EPSG:4326", xs, ys)
    geometry = {
        "type": "Polygon",
        "coordinates": [[[lon, lat] for lon, lat in zip([*lons, lons[0]], [*lats, lats[0]])]],
    }
    properties = {"eo:cloud_cover": cloud, "proj:code": crs, "proj:shape": [SIZE, SIZE], "platform": "demo"}
    item = pystac.Item(
        item_id,
        geometry,
        [west, south, east_lon, north_lat],
        datetime.fromisoformat(f"{day}T10:30:00+00:00"),
        properties,
        stac_extensions=[
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
            "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
        ],
    )
    band = {"data_type": "uint16", "scale": L2A_SCALE, "offset": L2A_OFFSET, "nodata": 0, "spatial_resolution": PIXEL}
    for name, colour in (("B04", "red"), ("B03", "green"), ("B02", "blue")):
        item.add_asset(
            name,
            pystac.Asset(
                str((item_dir / f"{name}.tif").resolve()),
                title=f"{colour} reflectance",
                media_type=pystac.MediaType.COG,
                roles=["data"],
                extra_fields={"raster:bands": [band]},
            ),
        )
    item.add_asset(
        "visual",
        pystac.Asset(
            str((item_dir / "visual.tif").resolve()),
            title="true colour",
            media_type=pystac.MediaType.COG,
            roles=["visual"],
        ),
    )
    return item


def write_stac_geoparquet(items: list[pystac.Item], path: Path) -> None:
    """The items as stac-geoparquet: one row, core fields as columns, properties flattened, WKB geometry."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import shapely

    rows = []
    for item in items:
        data = item.to_dict(include_self_link=False)
        properties = data.pop("properties")
        rows.append(
            {
                "type": "Feature",
                "stac_version": data["stac_version"],
                "stac_extensions": data["stac_extensions"],
                "id": data["id"],
                "geometry": shapely.to_wkb(shapely.geometry.shape(data["geometry"])),
                "bbox": dict(zip(("xmin", "ymin", "xmax", "ymax"), data["bbox"])),
                "assets": {
                    k: {
                        "href": Path(a["href"]).relative_to(path.parent).as_posix()
                        if Path(a["href"]).is_absolute()
                        else a["href"],
                        "type": a.get("type"),
                        "roles": a.get("roles"),
                        "raster:bands": a.get("raster:bands"),
                    }
                    for k, a in data["assets"].items()
                },
                "datetime": item.datetime,
                "eo:cloud_cover": properties["eo:cloud_cover"],
                "proj:code": properties["proj:code"],
            }
        )
    table = pa.Table.from_pylist(rows)
    pq.write_table(table, path)


def make_stac_demo(out: str | Path, cache_dir: str | Path | None = None) -> Path:
    """Write the demo catalog into `out` (rs_synth cached in `cache_dir`); returns `out/catalog.json`."""
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    synth = generate_rs_synth(cache_dir or out / "rs_synth", train_size=0, val_size=0, test_size=16, image_size=TILE)
    tiles = [Image.open(p).convert("RGB") for p in sorted((synth / "images").glob("*.png"))]
    items = [make_item(out / "items", spec, tiles, seed) for seed, spec in enumerate(ITEMS)]
    catalog = pystac.Catalog(
        "rs-retrieval-demo", "rs_synth tiles as Sentinel-2-like COGs around the UTM 31/32 border at 6°E"
    )
    catalog.add_items([item.clone() for item in items])
    catalog.normalize_hrefs(str(out))
    catalog.make_all_asset_hrefs_relative()
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    collection = pystac.ItemCollection(items)
    (out / "items.json").write_text(json.dumps(collection.to_dict(transform_hrefs=False)), encoding="utf-8")
    write_stac_geoparquet(items, out / "items.parquet")
    return out / "catalog.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="folder for the catalog and its COGs")
    args = parser.parse_args()
    print(make_stac_demo(args.out))


if __name__ == "__main__":
    main()
