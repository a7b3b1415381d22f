"""STAC catalogs of COGs (the demo catalog of scripts/make_stac_demo.py) and the GeoParquet
embeddings every build writes, read back without the package."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from rs_retrieval.cli import main
from rs_retrieval.index import RetrievalIndex, StacError
from rs_retrieval.index.geoparquet import COLUMNS, embedding_matrix, part_paths, read_embedding_parts

pytest.importorskip("pystac")
rasterio = pytest.importorskip("rasterio")
from helpers import load_script, write_random_images
from rasterio.warp import transform as warp_transform
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds
from test_index import QUERY, tiny_amfmn

L2A = ["B04", "B03", "B02"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stac_demo")
    return load_script("make_stac_demo.py").make_stac_demo(folder)


@pytest.fixture(scope="module")
def dual():
    model, processor = tiny_amfmn(seed=1)
    model.score_is_cosine = True  # a dual encoder: one-stage search, what the Ray engine serves
    return model, processor


def build(model, processor, out, catalog, **options):
    options = {"tile_size": 256, "max_cloud": 50, "progress": False, **options}
    options.setdefault("assets", None if "asset" in options else L2A)
    return RetrievalIndex.build(model, processor, out, stac=catalog, **options)


def test_items_are_filtered_by_cloud_bbox_and_datetime_before_any_pixel_is_read(demo):
    from rs_retrieval.index.stac import StacSource

    every = StacSource(demo, 256, assets=L2A)
    assert every.description["items"] == 5 and len(every) == 5 * 4
    clear = StacSource(demo, 256, max_cloud=50, assets=L2A)
    assert (
        "S2_DEMO_32TLR_20240701" not in {item.id for item in clear.items}
        and clear.description["items_removed"]["cloud"] == 1
    )
    east = StacSource(demo, 256, bbox="6.0,44,7,46", assets=L2A)  # the zone border at 6°E: only zone-32 items
    assert {item.crs for item in east.items} == {"EPSG:32632"} and east.description["items_removed"]["bbox"] == 2
    june = StacSource(demo, 256, datetime_range="2024-06-01/2024-06-30", assets=L2A)
    assert [item.datetime.month for item in june.items] == [6, 6]
    assert StacSource(demo, 256, datetime_range="2024-07-01/..", assets=L2A).description["items"] == 3
    assert june.tile_id(3) == "S2_DEMO_31TGL_20240601/256_256_256_256"
    with pytest.raises(StacError, match="no item .* passes the filters .* cloud cover 0"):
        StacSource(demo, 256, bbox="20,10,21,11", assets=L2A)
    with pytest.raises(StacError, match="has no asset 'B08'"):
        StacSource(demo, 256, assets=["B08", "B03", "B02"])
    with pytest.raises(StacError, match="ends before it starts"):
        StacSource(demo, 256, datetime_range="2024-07-01/2024-06-01")
    with pytest.raises(StacError, match="W,S,E,N"):
        StacSource(demo, 256, bbox="6,44,7")


def test_item_collection_and_stac_geoparquet_list_the_same_tiles_as_the_catalog(demo):
    from rs_retrieval.index.stac import StacSource

    catalog = StacSource(demo, 256, max_cloud=50, assets=L2A)
    for other in (demo.parent / "items.json", demo.parent / "items.parquet"):
        source = StacSource(other, 256, max_cloud=50, assets=L2A)
        assert sorted(source.ids(range(len(source)))) == sorted(catalog.ids(range(len(catalog))))
        assert {item.id: item.datetime for item in source.items} == {item.id: item.datetime for item in catalog.items}
        row = source.ids(range(len(source))).index("S2_DEMO_32TLQ_20240701/256_0_256_256")
        assert np.array_equal(
            source.load(row),
            catalog.load(catalog.ids(range(len(catalog))).index("S2_DEMO_32TLQ_20240701/256_0_256_256")),
        )


def test_l2a_reflectance_gets_one_fixed_stretch_and_nodata_tiles_are_skipped(demo):
    from rs_retrieval.index.stac import StacSource

    bands = StacSource(demo, 256, assets=L2A)
    visual = StacSource(demo, 256, asset="visual")
    for row in (0, 5, 13):  # DN = (pixel / 255 x 0.3 + 0.1) x 10000: the stretch gives back pixel / 255
        assert np.allclose(bands.load(row) * 255, visual.load(row), atol=0.05)
    half = [
        i for i, tile_id in enumerate(bands.ids(range(len(bands)))) if tile_id.startswith("S2_DEMO_31TGL_20240701/")
    ]
    assert [bands.load(i) is None for i in half] == [True, False, True, False]  # west half outside the swath


def test_stac_build_writes_geoparquet_rows_reused_by_a_rerun(tmp_path, demo, dual):
    model, processor = dual
    index = build(model, processor, tmp_path / "index", demo)
    stats = index.manifest["build"]
    assert len(index) == 14 and stats["nodata"] == 2 and stats["encoded"] == 14 and index.is_tiled
    table = pa.Table.from_batches(list(read_embedding_parts(tmp_path / "index")))
    assert table.column_names == [*COLUMNS, "embedding"] and table.num_rows == 14
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 6)
    assert np.allclose(embedding_matrix(table), np.asarray(index.vectors), atol=1e-6)
    assert set(table.column("source_crs").to_pylist()) == {"EPSG:32631", "EPSG:32632"}
    meta = json.loads(pq.read_schema(part_paths(tmp_path / "index")[0]).metadata[b"rs_retrieval"])
    assert meta == {
        "format": 1,
        "model": "",
        "model_fingerprint": index.manifest["fingerprint"],
        "dim": 6,
        "dtype": "float32",
        "normalized": True,
    }

    hit = index.search(QUERY, k=1)[0]
    assert hit.tile_id in table.column("id").to_pylist() and hit.crs in ("EPSG:32631", "EPSG:32632")
    from rs_retrieval.app.service import AppInputError, IndexCorpus

    with pytest.raises(AppInputError, match="indexes a STAC catalog"):  # the app serves folders and scenes
        IndexCorpus(tmp_path / "index", model, processor)
    rerun = build(model, processor, tmp_path / "index", demo).manifest["build"]
    assert rerun["encoded"] == 0 and rerun["reused"] == 14
    half = build(model, processor, tmp_path / "index", demo, embedding_dtype="float16", bbox="6.0,44,7,46")
    assert len(half) == 8 and half.manifest["build"]["encoded"] == 0  # deselected items dropped, nothing re-encoded
    small = pa.Table.from_batches(list(read_embedding_parts(tmp_path / "index")))
    assert small.num_rows == 8 and small.schema.field("embedding").type == pa.list_(pa.float16(), 6)


READER = textwrap.dedent("""
    import importlib.abc, json, sys

    class NoPackage(importlib.abc.MetaPathFinder):  # the venv may hold an (editable) install: hide it
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "rs_retrieval":
                raise ImportError(f"{name} is hidden from this reader")

    sys.meta_path.insert(0, NoPackage())
    try:
        import rs_retrieval
    except ImportError:
        pass
    else:
        sys.exit("rs_retrieval must not be importable here")
    import duckdb, geopandas, numpy as np, rasterio
    from rasterio.warp import transform
    from rasterio.windows import Window, bounds
    folder, rasters = sys.argv[1], json.loads(sys.argv[2])
    frame = geopandas.read_parquet(folder)
    boxes = {i: (x, y) for i, x, y in duckdb.sql(f"SELECT id, bbox.xmin, bbox.ymax FROM read_parquet('{folder}/*.parquet')").fetchall()}
    assert frame.crs.to_string() == "OGC:CRS84", frame.crs  # GeoParquet without a crs: lon, lat on WGS84
    for row in frame.itertuples():
        w = row.window
        with rasterio.open(rasters[row.item_id]) as data:
            left, bottom, right, top = bounds(Window(w["col_off"], w["row_off"], w["width"], w["height"]), data.transform)
            lons, lats = transform(data.crs, "EPSG:4326", [left, right, right, left], [bottom, bottom, top, top])
        ring = np.asarray(row.geometry.exterior.coords)[:4]
        assert np.allclose(ring, np.c_[lons, lats], atol=1e-9), (row.id, ring)
        assert np.allclose(boxes[row.id], [min(lons), max(lats)])
    east = duckdb.sql(f"SELECT count(*) FROM read_parquet('{folder}/*.parquet') WHERE bbox.xmin > 6.0").fetchall()[0][0]
    dim = duckdb.sql(f"SELECT len(embedding) FROM read_parquet('{folder}/*.parquet') LIMIT 1").fetchall()[0][0]
    print(json.dumps({"rows": len(frame), "east": east, "dim": dim, "zones": sorted(set(frame.source_crs))}))
""")


def test_geopandas_and_duckdb_read_the_parts_without_the_package(tmp_path, demo, dual):
    pytest.importorskip("geopandas")
    pytest.importorskip("duckdb")
    model, processor = dual
    build(model, processor, tmp_path / "index", demo, asset="visual")
    rasters = {path.parent.name: str(path) for path in (demo.parent / "items").glob("*/visual.tif")}
    script = tmp_path / "read_parts.py"
    script.write_text(READER)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    # -I: isolated mode (no cwd, no PYTHONPATH, no user site): this checkout's src is not importable
    run = subprocess.run(
        [sys.executable, "-I", str(script), str(tmp_path / "index" / "embeddings"), json.dumps(rasters)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout) == {"rows": 14, "east": 8, "dim": 6, "zones": ["EPSG:32631", "EPSG:32632"]}


def test_folder_and_scene_builds_write_the_same_format(tmp_path, demo, dual):
    model, processor = dual
    scene = demo.parent / "items" / "S2_DEMO_32TLQ_20240701" / "visual.tif"
    RetrievalIndex.build(model, processor, tmp_path / "scene", scene=scene, tile_size=256, progress=False)
    tiles = pq.read_table(part_paths(tmp_path / "scene")[0]).to_pylist()
    assert [t["id"] for t in tiles] == [f"visual.tif/{c}_{r}_256_256" for r in (0, 256) for c in (0, 256)]
    with rasterio.open(scene) as data:
        left, bottom, right, top = window_bounds(Window(256, 0, 256, 256), data.transform)
        lons, lats = warp_transform(data.crs, "EPSG:4326", [left, right, right, left], [bottom, bottom, top, top])
    ring = np.frombuffer(tiles[1]["geometry"][13:], dtype="<f8").reshape(-1, 2)  # WKB: byte order, type, rings, points
    assert np.allclose(ring, np.c_[[*lons, lons[0]], [*lats, lats[0]]]) and tiles[1]["source_crs"] == "EPSG:32632"

    folder = write_random_images(tmp_path / "imgs" / "sub", 3)
    write_random_images(tmp_path / "imgs", 2)
    RetrievalIndex.build(
        model, processor, tmp_path / "files", images=tmp_path / "imgs", recursive=True, progress=False
    )
    table = pq.read_table(part_paths(tmp_path / "files")[0])
    assert sorted(table.column("id").to_pylist()) == sorted(
        ["img_00.png", "img_01.png", *(f"sub/{p.name}" for p in folder.glob("*.png"))]
    )
    assert (
        table.column("geometry").null_count == 5
        and json.loads(table.schema.metadata[b"geo"])["primary_column"] == "geometry"
    )


def test_cli_builds_a_stac_index_and_names_bad_filters(tmp_path, demo, dual, capsys):
    model, processor = dual
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    args = [
        "index",
        "build",
        "--model",
        str(tmp_path / "model"),
        "--stac",
        str(demo),
        "--out",
        str(tmp_path / "index"),
        "--tile-size",
        "256",
        "--assets",
        "B04,B03,B02",
        "--max-cloud",
        "50",
        "--datetime",
        "2024-07-01/..",
    ]
    assert main(args) == 0
    assert (
        "6 tiles, flat index, two-stage search; last build encoded "
        "6, reused 0, skipped 0 unreadable, 2 nodata tiles (1 process" in capsys.readouterr().out
    )
    search = [
        "index",
        "search",
        str(tmp_path / "index"),
        QUERY,
        "-k",
        "2",
        "--geojson",
        str(tmp_path / "hits.geojson"),
    ]
    assert main([*search, "--picture", str(tmp_path / "hits.png")]) == 0
    picture = np.asarray(Image.open(tmp_path / "hits.png").convert("RGB"))
    assert (
        max(picture.shape[:2]) >= 1024 and ((picture == (255, 0, 0)).all(axis=-1)).sum() > 100
    )  # the map, rank 1 in red
    assert main([*search[:5], "6", *search[6:]]) == 0  # every tile: hits from both UTM zones in one collection
    features = json.loads((tmp_path / "hits.geojson").read_text())["features"]
    assert {f["properties"]["crs"] for f in features} == {"EPSG:32631", "EPSG:32632"}
    for feature in features:  # each footprint from its own zone, as rasterio transforms the window
        hit = feature["properties"]
        with rasterio.open(demo.parent / "items" / hit["tile_id"].split("/")[0] / "B04.tif") as data:
            left, bottom, right, top = window_bounds(Window(*hit["window"]), data.transform)
            lons, lats = warp_transform(data.crs, "EPSG:4326", [left, right, right, left], [bottom, bottom, top, top])
        assert np.allclose(feature["geometry"]["coordinates"][0][:4], np.c_[lons, lats])
    assert main([*args[:-2], "--datetime", "2024-07-01/2024-06-01"]) == 2
    assert "error: datetime range '2024-07-01/2024-06-01' ends before it starts" in capsys.readouterr().err
    assert main([*args, "--engine", "ray"]) == 2  # refused before any cluster starts
    assert "error: --engine ray writes the first-stage embeddings only; AMFMNModel re-ranks" in capsys.readouterr().err


def test_keep_rows_leaves_each_selected_id_once_and_updates_the_file_bbox(tmp_path):
    from rs_retrieval.index.geoparquet import footprint_columns, keep_rows, model_metadata, write_embedding_part

    meta = model_metadata("m", "f" * 32, 2)

    def square(x):
        return [(x, 0.0), (x + 1, 0.0), (x + 1, 1.0), (x, 1.0)]

    for name, ids in (("part-a", ["t0", "t1", "t2"]), ("part-b", ["t2", "t3"])):  # t2 written twice (a retried batch)
        columns = {"id": ids, **footprint_columns([square(float(i[1])) for i in ids])}
        write_embedding_part(
            tmp_path / "embeddings" / f"{name}.parquet", columns, np.eye(len(ids), 2, dtype=np.float32), meta
        )
    assert keep_rows(tmp_path, {"t1", "t2", "t3"}) == 2  # t0 deselected, the second t2 a copy
    assert [t.column("id").to_pylist() for t in map(pq.read_table, part_paths(tmp_path))] == [["t1", "t2"], ["t3"]]
    geo = json.loads(pq.read_schema(part_paths(tmp_path)[0]).metadata[b"geo"])
    assert geo["columns"]["geometry"]["bbox"] == [1.0, 0.0, 3.0, 1.0]
    assert keep_rows(tmp_path, {"t1"}) == 2 and len(part_paths(tmp_path)) == 1  # a part left empty is removed


def test_stac_parts_become_an_out_of_core_index_with_the_same_filtered_hits(tmp_path, demo, dual):
    """The archive route end to end: a STAC build writes embedding parts; `--parts ... --kind
    ivf-ondisk` indexes them without encoding; place and time filters give the same tiles on both."""
    model, processor = dual
    tiles = build(model, processor, tmp_path / "stac", demo)
    archive = RetrievalIndex.from_parts(
        model, processor, tmp_path / "stac" / "embeddings", tmp_path / "archive", progress=False
    )
    assert archive.manifest["vector_index"]["kind"] == "ivf-ondisk" and len(archive) == len(tiles) == 14
    for where in ({}, {"bbox": "6.0,44,7,46"}, {"datetime": "2024-06-01/2024-06-30"}):
        expected, found = tiles.search(QUERY, k=5, **where), archive.search(QUERY, k=5, **where)
        assert [hit.tile_id for hit in found] == [hit.tile_id for hit in expected], where
        assert np.allclose(
            [hit.score for hit in found], [hit.score for hit in expected], atol=1e-3
        )  # float16 re-scoring vectors
    east = archive.search(QUERY, k=14, bbox="6.0,44,7,46")
    assert len(east) == 8 and all(hit.bounds_wgs84[0] >= 6.0 for hit in east)
