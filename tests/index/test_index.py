"""Vector index: exact equality with brute force, two-stage recall, incremental and resumed builds,
corruption and fingerprint checks, georeferenced scenes (4 x 4 rs_synth mosaic), the CLI."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from tiny_methods import TINY_CONFIGS

from rs_retrieval.cli import main
from rs_retrieval.data.synth import generate_rs_synth
from rs_retrieval.imagery import ImageReadError, to_rgb_uint8
from rs_retrieval.index import (
    FingerprintMismatchError,
    IndexBuildError,
    IndexCorruptError,
    IndexQueryError,
    RetrievalIndex,
    VectorIndexConfig,
)
from rs_retrieval.index import encode as encode_module
from rs_retrieval.index.vectors import build_faiss_index, normalize_rows, search_faiss_index
from rs_retrieval.models.amfmn import AMFMNConfig, AMFMNModel, AMFMNProcessor

rasterio = pytest.importorskip("rasterio")
from helpers import ACCELERATE_TWO_CPU_RANKS, write_random_images
from rasterio.transform import from_origin
from rasterio.warp import transform as warp_transform

TINY = {**TINY_CONFIGS["amfmn"], "image_size": 32, "train_resize": 36}
VOCAB = {w: i for i, w in enumerate("ship port green tree field road river building car plane".split(), start=1)} | {
    "<unk>": 11
}
QUERY = "ship port river"
UTM_33N, ORIGIN, PIXEL = "EPSG:32633", (500_000.0, 4_000_000.0), 10.0


def tiny_amfmn(seed=0):
    torch.manual_seed(seed)
    config = AMFMNConfig(**TINY)
    return AMFMNModel(config).eval(), AMFMNProcessor.from_config(config, VOCAB)


@pytest.fixture(scope="module")
def amfmn():
    return tiny_amfmn()


@torch.no_grad()
def brute_force(model, processor, paths, query):
    images = [Image.open(p).convert("RGB") for p in paths]
    image_cache = model.encode_images(**processor.image_inputs({"image": images}))
    return model.score(image_cache, model.encode_texts(**processor.text_inputs([query])))[:, 0], image_cache


def test_two_stage_with_all_candidates_equals_brute_force_and_small_k_prime_reranks_first_stage(tmp_path, amfmn):
    model, processor = amfmn
    folder = write_random_images(tmp_path / "imgs", 9)
    index = RetrievalIndex.build(model, processor, tmp_path / "index", images=folder, progress=False)
    assert index.manifest["two_stage"] and index.manifest["vector_index"]["kind"] == "flat" and len(index) == 9
    paths = sorted(folder.glob("*.png"))
    exact, image_cache = brute_force(model, processor, paths, QUERY)
    hits = index.search(QUERY, k=9, candidates=9)
    assert [h.path for h in hits] == [str(paths[i]) for i in torch.argsort(-exact, stable=True).tolist()]
    assert [h.score for h in hits] == pytest.approx(torch.sort(exact, descending=True).values.tolist(), abs=1e-5)
    assert [h.rank for h in hits] == list(range(1, 10))

    # K' = 3: the hits are the first stage's top 3 (cosine of the embeddings), re-ranked by model.score.
    text = model.encode_texts(**processor.text_inputs([QUERY]))["embeds"]
    cosine = (F.normalize(image_cache["embeds"], dim=-1) @ F.normalize(text, dim=-1).t())[:, 0]
    first_three = {str(paths[i]) for i in torch.topk(cosine, 3).indices.tolist()}
    top = index.search(QUERY, k=3, candidates=3)
    assert {h.path for h in top} == first_three
    assert [h.score for h in top] == sorted((float(exact[paths.index(Path(h.path))]) for h in top), reverse=True)


def test_one_stage_model_scores_are_the_embedding_cosine_and_image_query_finds_itself(tmp_path):
    model, processor = tiny_amfmn(seed=1)
    model.score_is_cosine = True  # as a dual encoder declares it
    folder = write_random_images(tmp_path / "imgs", 8, seed=1)
    index = RetrievalIndex.build(model, processor, tmp_path / "index", images=folder, progress=False)
    assert not index.manifest["two_stage"]
    paths = sorted(folder.glob("*.png"))
    _, image_cache = brute_force(model, processor, paths, QUERY)
    text = model.encode_texts(**processor.text_inputs([QUERY]))["embeds"]
    cosine = (F.normalize(image_cache["embeds"], dim=-1) @ F.normalize(text, dim=-1).t())[:, 0]
    hits = index.search(QUERY, k=4)
    assert [h.score for h in hits] == pytest.approx(torch.topk(cosine, 4).values.tolist(), abs=1e-5)
    same = index.search(Image.open(paths[5]), k=1)[0]
    assert same.path == str(paths[5]) and same.score == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(IndexQueryError, match="non-empty string"):
        index.search("   ")
    with pytest.raises(IndexQueryError, match="k must be"):
        index.search(QUERY, k=0)


def test_update_encodes_only_new_or_changed_files_and_drops_removed_ones(tmp_path, amfmn):
    model, processor = amfmn
    folder = write_random_images(tmp_path / "imgs", 6)
    RetrievalIndex.build(model, processor, tmp_path / "index", images=folder, progress=False)
    Image.new("RGB", (40, 40), (250, 10, 10)).save(folder / "img_02.png")  # changed
    shutil.copy(folder / "img_00.png", folder / "copy_of_00.png")  # same bytes as img_00: reused
    Image.new("RGB", (40, 40), (10, 10, 250)).save(folder / "new.png")  # new
    (folder / "img_05.png").unlink()  # removed
    index = RetrievalIndex.build(model, processor, tmp_path / "index", images=folder, progress=False)
    assert index.manifest["build"]["encoded"] == 2 and index.manifest["generation"] == 2
    assert not (tmp_path / "index" / "g0001").exists() and not (tmp_path / "index" / "parts").exists()
    names = {h.path.rsplit("/", 1)[-1] for h in index.search(QUERY, k=20, candidates=20)}
    assert names == {"img_00.png", "img_01.png", "img_02.png", "img_03.png", "img_04.png", "copy_of_00.png", "new.png"}
    fresh = RetrievalIndex.build(model, processor, tmp_path / "fresh", images=folder, progress=False)
    assert [(h.path, round(h.score, 5)) for h in index.search(QUERY, k=7)] == [
        (h.path, round(h.score, 5)) for h in fresh.search(QUERY, k=7)
    ]


def test_killed_build_resumes_and_encodes_only_what_is_missing(tmp_path, amfmn, monkeypatch):
    model, processor = amfmn
    folder = write_random_images(tmp_path / "imgs", 10)
    monkeypatch.setattr(encode_module, "PART_ROWS", 3)
    real_encode, calls = encode_module.encode_inputs, []

    def dies_on_third_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        return real_encode(*args, **kwargs)

    monkeypatch.setattr(encode_module, "encode_inputs", dies_on_third_batch)
    with pytest.raises(KeyboardInterrupt):
        RetrievalIndex.build(model, processor, tmp_path / "index", images=folder, batch_size=2, progress=False)
    assert len(list((tmp_path / "index" / "parts").glob("rank0-*.safetensors"))) == 1  # 4 rows flushed as one part
    monkeypatch.setattr(encode_module, "encode_inputs", real_encode)
    shutil.copytree(tmp_path / "index", tmp_path / "other_model")  # another model does not reuse those parts
    other = RetrievalIndex.build(*tiny_amfmn(seed=3), tmp_path / "other_model", images=folder, progress=False)
    assert other.manifest["build"]["encoded"] == 10
    index = RetrievalIndex.build(model, processor, tmp_path / "index", images=folder, batch_size=2, progress=False)
    assert index.manifest["build"]["encoded"] == 6 and len(index) == 10
    fresh = RetrievalIndex.build(model, processor, tmp_path / "fresh", images=folder, progress=False)
    assert np.allclose(np.asarray(index.vectors), np.asarray(fresh.vectors), atol=1e-6)


def test_unreadable_files_are_skipped_with_warnings_or_fail_when_strict(tmp_path, amfmn, caplog):
    model, processor = amfmn
    folder = write_random_images(tmp_path / "imgs", 3)
    (folder / "broken.png").write_bytes(b"not a png")
    index = RetrievalIndex.build(model, processor, tmp_path / "index", images=folder, progress=False)
    assert len(index) == 3 and index.manifest["build"]["skipped"] == 1
    assert "broken.png" in index.manifest["skipped"][0]
    assert any("broken.png" in r.message for r in caplog.records) and any(
        "skipped 1 unreadable" in r.message for r in caplog.records
    )
    with pytest.raises(ImageReadError, match="broken.png"):
        RetrievalIndex.build(model, processor, tmp_path / "strict", images=folder, strict=True, progress=False)


def test_corrupt_files_and_other_models_are_refused_by_name(tmp_path, amfmn):
    model, processor = amfmn
    folder = write_random_images(tmp_path / "imgs", 4)
    RetrievalIndex.build(model, processor, tmp_path / "index", images=folder, progress=False)
    other, other_processor = tiny_amfmn(seed=7)
    with pytest.raises(FingerprintMismatchError) as error:
        RetrievalIndex.open(tmp_path / "index", other, other_processor)
    manifest = json.loads((tmp_path / "index" / "index.json").read_text())
    assert manifest["fingerprint"] in str(error.value)
    with pytest.raises(FingerprintMismatchError):
        RetrievalIndex.build(other, other_processor, tmp_path / "index", images=folder, progress=False)
    for name in ("g0001/shards/embeds-00000.npy", "g0001/metadata.parquet"):
        copy = tmp_path / f"copy_{name.replace('/', '_')}"
        shutil.copytree(tmp_path / "index", copy)
        data = bytearray((copy / name).read_bytes())
        data[-3] ^= 0xFF
        (copy / name).write_bytes(bytes(data))
        with pytest.raises(IndexCorruptError, match=name.rsplit("/", 1)[-1]):
            RetrievalIndex.open(copy, model, processor)
    with pytest.raises(IndexBuildError, match="exactly one"):
        RetrievalIndex.build(model, processor, tmp_path / "x", images=folder, scene="a.tif")


@pytest.mark.parametrize("kind", ["ivfpq", "hnsw"])
def test_approximate_indexes_reach_high_recall_on_clustered_vectors(kind):
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((20, 32)).astype(np.float32)
    vectors = normalize_rows(
        centres[rng.integers(0, 20, 3000)] + 0.5 * rng.standard_normal((3000, 32)).astype(np.float32)
    )
    queries = normalize_rows(centres[rng.integers(0, 20, 50)] + 0.5 * rng.standard_normal((50, 32)).astype(np.float32))
    config = VectorIndexConfig(kind=kind, nlist=16, pq_m=8, nprobe=8, train_size=2000)
    _, found = search_faiss_index(build_faiss_index(vectors, config), vectors, queries, 10, config)
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    recall = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact)])
    assert recall >= 0.9, recall


# ----------------------------------------------------------------------------- scenes
def write_mosaic(path, tiles, crs=UTM_33N, dtype="uint8"):
    """A 4 x 4 mosaic GeoTIFF of 64 px tiles, 10 m pixels, upper-left corner at ORIGIN."""
    pixels = np.concatenate(
        [np.concatenate([np.asarray(t) for t in tiles[r * 4 : r * 4 + 4]], axis=1) for r in range(4)], axis=0
    )
    pixels = pixels.astype(dtype) * (257 if dtype == "uint16" else 1)
    profile = dict(
        driver="GTiff",
        width=pixels.shape[1],
        height=pixels.shape[0],
        count=3,
        dtype=dtype,
        tiled=True,
        blockxsize=64,
        blockysize=64,
    )
    if crs:
        profile.update(crs=crs, transform=from_origin(*ORIGIN, PIXEL, PIXEL))
    with rasterio.open(path, "w", **profile) as out:
        out.write(np.moveaxis(pixels, -1, 0))
    return path


@pytest.fixture(scope="module")
def synth_tiles(tmp_path_factory):
    root = generate_rs_synth(tmp_path_factory.mktemp("synth"), train_size=0, val_size=0, test_size=16, image_size=64)
    return [Image.open(p).convert("RGB") for p in sorted((root / "images").glob("*.png"))]


def test_scene_tiles_have_windows_bounds_and_wgs84_footprints(tmp_path, amfmn, synth_tiles):
    model, processor = amfmn
    scene = write_mosaic(tmp_path / "mosaic.tif", synth_tiles)
    index = RetrievalIndex.build(model, processor, tmp_path / "index", scene=scene, tile_size=64, progress=False)
    assert index.is_scene and len(index) == 16
    hit = index.search(synth_tiles[9], k=1)[0]  # row 2, column 1 of the mosaic
    assert hit.tile_id == "x64_y128" and hit.window == (64, 128, 64, 64) and hit.crs == UTM_33N
    left, top = ORIGIN[0] + 64 * PIXEL, ORIGIN[1] - 128 * PIXEL
    assert hit.bounds == pytest.approx((left, top - 640, left + 640, top))
    lons, lats = warp_transform(
        UTM_33N, "EPSG:4326", [left, left + 640, left + 640, left], [top - 640, top - 640, top, top]
    )
    assert hit.bounds_wgs84 == pytest.approx((min(lons), min(lats), max(lons), max(lats)))
    assert 14.99 < hit.bounds_wgs84[0] < 15.02 and 36.1 < hit.bounds_wgs84[1] < 36.2  # UTM 33N, 4000 km north

    geojson = index.to_geojson(index.search(QUERY, k=3))
    assert geojson["type"] == "FeatureCollection" and [f["properties"]["rank"] for f in geojson["features"]] == [
        1,
        2,
        3,
    ]
    image_hit = index.to_geojson([hit])["features"][0]
    assert np.allclose(
        image_hit["geometry"]["coordinates"][0], [[x, y] for x, y in zip([*lons, lons[0]], [*lats, lats[0]])]
    )
    picture = Image.open(index.draw(index.search(QUERY, k=3), tmp_path / "hits.png", query=QUERY))
    assert picture.size[0] == 512 and picture.size[1] > 512  # 256 px scene enlarged x2, title above

    # A place filter on a scene index (the flat kind built from the scene) keeps only the tiles whose
    # WGS84 box meets it, two-stage re-ranking included: a point inside tile x64_y128 meets 1 tile.
    inside = ((hit.bounds_wgs84[0] + hit.bounds_wgs84[2]) / 2, (hit.bounds_wgs84[1] + hit.bounds_wgs84[3]) / 2)
    filtered = index.search(QUERY, k=5, bbox=(*inside, *inside))
    assert [h.tile_id for h in filtered] == ["x64_y128"]
    assert index.search(QUERY, k=5, bbox="-60,-10,-50,0") == []  # nowhere near the scene


def test_scene_without_crs_works_in_pixel_coordinates_and_overlapping_tiles_cover_the_edge(
    tmp_path, amfmn, synth_tiles
):
    model, processor = amfmn
    scene = write_mosaic(tmp_path / "plain.tif", synth_tiles, crs=None)
    index = RetrievalIndex.build(
        model, processor, tmp_path / "index", scene=scene, tile_size=96, stride=80, progress=False
    )
    windows = sorted(index.metadata.column("window").to_pylist())
    assert {w[0] for w in windows} == {0, 80, 160} and len(windows) == 9  # last tile moved back to the edge
    hit = index.search(QUERY, k=1)[0]
    assert hit.crs is None and hit.bounds_wgs84 is None
    col, row, width, height = hit.window
    assert hit.bounds == (col, row + height, col + width, row)
    assert index.to_geojson([hit])["coordinates"].startswith("pixel coordinates")


def test_16_bit_scene_tiles_follow_the_package_rescale_rule(tmp_path, amfmn, synth_tiles):
    model, processor = amfmn
    scene = write_mosaic(tmp_path / "deep.tif", synth_tiles, dtype="uint16")
    index = RetrievalIndex.build(model, processor, tmp_path / "index", scene=scene, tile_size=64, progress=False)
    tile = np.asarray(synth_tiles[6]).astype(np.uint16) * 257
    hit = index.search(Image.fromarray(to_rgb_uint8(tile)), k=1)[0]  # the documented 16-bit stretch of that tile
    assert hit.tile_id == "x128_y64" and hit.score == pytest.approx(1.0, abs=1e-5)
    assert index.manifest["source"]["dtype"] == "uint16"


# ----------------------------------------------------------------------------- CLI
@pytest.mark.slow
def test_two_processes_build_the_same_index_as_one(tmp_path, amfmn):
    """`accelerate launch --multi_gpu --num_processes 2` on CPU (gloo): each rank encodes half."""
    model, processor = amfmn
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    folder = write_random_images(tmp_path / "imgs", 11)
    build = [
        "-m",
        "rs_retrieval.cli",
        "index",
        "build",
        "--model",
        str(tmp_path / "model"),
        "--images",
        str(folder),
        "--out",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, *build, str(tmp_path / "one")], check=True, env=env, capture_output=True)
    launch = ACCELERATE_TWO_CPU_RANKS
    run = subprocess.run([*launch, *build, str(tmp_path / "two")], check=True, env=env, capture_output=True, text=True)
    assert "encode rank 1/2" in run.stderr and run.stdout.count("11 images") == 1  # rank 0 prints the summary
    one, two = RetrievalIndex.open(tmp_path / "one"), RetrievalIndex.open(tmp_path / "two")
    assert two.manifest["build"]["processes"] == 2 and two.metadata.to_pylist() == one.metadata.to_pylist()
    assert np.allclose(np.asarray(one.vectors), np.asarray(two.vectors), atol=1e-6)  # batches differ: float rounding
    assert not (tmp_path / "two" / "parts").exists()


def test_cli_build_search_text_and_image_geojson_and_picture(tmp_path, amfmn, synth_tiles, capsys):
    model, processor = amfmn
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    scene = write_mosaic(tmp_path / "mosaic.tif", synth_tiles)
    assert (
        main(
            [
                "index",
                "build",
                "--model",
                str(tmp_path / "model"),
                "--scene",
                str(scene),
                "--tile-size",
                "64",
                "--out",
                str(tmp_path / "index"),
            ]
        )
        == 0
    )
    assert "16 tiles, flat index, two-stage search" in capsys.readouterr().out
    args = [
        "index",
        "search",
        str(tmp_path / "index"),
        QUERY,
        "-k",
        "2",
        "--geojson",
        str(tmp_path / "hits.geojson"),
        "--picture",
        str(tmp_path / "hits.png"),
    ]
    assert main(args) == 0  # the model recorded at build time answers the query
    geojson = json.loads((tmp_path / "hits.geojson").read_text())
    assert len(geojson["features"]) == 2 and geojson["features"][0]["geometry"]["type"] == "Polygon"
    synth_tiles[3].save(tmp_path / "query.png")
    assert main(["index", "search", str(tmp_path / "index"), "--image", str(tmp_path / "query.png"), "-k", "1"]) == 0
    assert "x192_y0" in capsys.readouterr().out.splitlines()[-1]
    assert main(["index", "info", str(tmp_path / "index")]) == 0
    assert '"crs": "EPSG:32633"' in capsys.readouterr().out
