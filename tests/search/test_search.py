"""Text -> image search: brute-force equal rankings, the on-disk embedding cache, contact sheets, CLI."""

import argparse
import os
import shutil

import numpy as np
import pytest
import torch
from helpers import write_random_images
from hub_server import import_tiny_package, make_tiny_model
from PIL import Image

from rs_retrieval.imagery import ImageReadError
from rs_retrieval.search import SearchError, make_contact_sheet, rank_captions, search_images

QUERY = "two ships in a harbour"


@pytest.fixture(scope="module", autouse=True)
def tiny_package(tmp_path_factory):
    import_tiny_package(tmp_path_factory.mktemp("pkg"))


class Counting:
    """Wraps `model.encode_images` to count how many images it encodes."""

    def __init__(self, model):
        self.images, self._encode = 0, model.encode_images
        model.encode_images = self

    def __call__(self, pixel_values, **kwargs):
        self.images += len(pixel_values)
        return self._encode(pixel_values, **kwargs)


@torch.no_grad()
def brute_force(model, processor, folder, query):
    paths = sorted(folder.glob("*.png"))
    images = [Image.open(p).convert("RGB") for p in paths]
    image_cache = model.encode_images(**processor.image_inputs({"image": images}))
    scores = model.score(image_cache, model.encode_texts(**processor.text_inputs([query])))[:, 0]
    return {p: float(s) for p, s in zip(paths, scores)}


def test_ranking_matches_brute_force_and_second_query_encodes_nothing(tmp_path):
    model, processor = make_tiny_model(seed=1)
    folder = write_random_images(tmp_path / "imgs", 7)
    counter = Counting(model)
    first = search_images(QUERY, folder, model, processor, top_k=None, cache_dir=tmp_path / "cache", batch_size=3)
    assert counter.images == 7
    expected = brute_force(model, processor, folder, QUERY)
    assert [p for p, _ in first] == sorted(expected, key=lambda p: -expected[p])
    for path, score in first:
        assert score == pytest.approx(expected[path], abs=1e-6)
    assert [s for _, s in first] == sorted((s for _, s in first), reverse=True)

    counter.images = 0
    second = search_images(QUERY, folder, model, processor, top_k=None, cache_dir=tmp_path / "cache")
    assert counter.images == 0 and second == first  # nothing encoded, identical paths and scores
    assert search_images(QUERY, folder, model, processor, top_k=3, cache_dir=tmp_path / "cache") == first[:3]


def test_changed_and_new_files_are_the_only_ones_encoded(tmp_path):
    model, processor = make_tiny_model(seed=2)
    folder = write_random_images(tmp_path / "imgs", 5)
    search_images(QUERY, folder, model, processor, cache_dir=tmp_path / "cache")
    counter = Counting(model)
    Image.new("RGB", (40, 40), (250, 10, 10)).save(folder / "img_03.png")
    stat = (folder / "img_03.png").stat()
    os.utime(folder / "img_03.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    shutil.copy(folder / "img_00.png", folder / "copy_of_00.png")  # same bytes: reuses img_00's row
    Image.new("RGB", (40, 40), (10, 10, 250)).save(folder / "new.png")
    results = dict(search_images(QUERY, folder, model, processor, top_k=None, cache_dir=tmp_path / "cache"))
    assert counter.images == 2  # changed img_03 and new.png
    expected = brute_force(model, processor, folder, QUERY)  # (counted too, so it comes after the check)
    assert results.keys() == expected.keys()
    assert all(results[p] == pytest.approx(expected[p], abs=1e-6) for p in expected)
    assert results[folder / "copy_of_00.png"] == results[folder / "img_00.png"]


def test_cache_is_per_model_and_per_preprocessing(tmp_path):
    folder = write_random_images(tmp_path / "imgs", 3)
    model_a, processor = make_tiny_model(seed=3)
    search_images(QUERY, folder, model_a, processor, cache_dir=tmp_path / "cache")
    model_b, _ = make_tiny_model(seed=4)
    counter = Counting(model_b)
    search_images(QUERY, folder, model_b, processor, cache_dir=tmp_path / "cache")
    assert counter.images == 3
    processor.image_processor.image_mean = [0.5, 0.5, 0.5]
    search_images(QUERY, folder, model_b, processor, cache_dir=tmp_path / "cache")
    assert counter.images == 6
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 3
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.endswith(".tmp")]


def test_rank_captions_matches_brute_force(tmp_path):
    model, processor = make_tiny_model(seed=5)
    image = Image.new("RGB", (40, 40), (30, 160, 40))
    captions = ["green field", "two ships in a harbour", "a road", "ships"]
    ranked = rank_captions(image, captions, model, processor)
    with torch.no_grad():
        scores = model.score(
            model.encode_images(**processor.image_inputs({"image": [image]})),
            model.encode_texts(**processor.text_inputs(captions)),
        )[0]
    assert [c for c, _ in ranked] == [captions[i] for i in torch.argsort(-scores).tolist()]
    assert [s for _, s in ranked] == pytest.approx(sorted(scores.tolist(), reverse=True), abs=1e-6)


def test_contact_sheet_draws_a_grid_of_results(tmp_path):
    model, processor = make_tiny_model(seed=6)
    folder = write_random_images(tmp_path / "imgs", 7, size=64)
    results = search_images(QUERY, folder, model, processor, top_k=7, cache_dir=tmp_path / "cache")
    out = make_contact_sheet(QUERY, results, tmp_path / "sheet.png", thumb_size=64, columns=4)
    sheet = Image.open(out)
    assert sheet.width == 10 + 4 * (64 + 10) and sheet.height > 2 * 64
    # rank 1 is the first cell of the first grid row, rank 5 the first cell of the second (64 px images: no resize)
    for rank, row in ((1, 0), (5, 1)):
        y0 = sheet.height - (2 - row) * (64 + 36 + 10)
        cell = np.asarray(sheet)[y0 : y0 + 64, 10 : 10 + 64]
        assert np.array_equal(cell, np.asarray(Image.open(results[rank - 1][0]).convert("RGB")))


def test_bad_inputs_raise_naming_the_problem(tmp_path):
    model, processor = make_tiny_model()
    with pytest.raises(SearchError, match="is not a folder"):
        search_images(QUERY, tmp_path / "missing", model, processor, cache_dir=tmp_path / "c")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SearchError, match="no images"):
        search_images(QUERY, tmp_path / "empty", model, processor, cache_dir=tmp_path / "c")
    folder = write_random_images(tmp_path / "imgs", 2)
    with pytest.raises(SearchError, match="non-empty string"):
        search_images("  ", folder, model, processor, cache_dir=tmp_path / "c")
    with pytest.raises(SearchError, match="top_k must be >= 1"):
        search_images(QUERY, folder, model, processor, top_k=0, cache_dir=tmp_path / "c")
    (folder / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ImageReadError, match="cannot read image .*broken.png"):
        search_images(QUERY, folder, model, processor, cache_dir=tmp_path / "c", strict=True)
    (tmp_path / "c2").mkdir()
    (folder / "broken.png").unlink()
    search_images(QUERY, folder, model, processor, cache_dir=tmp_path / "c2")
    for cached in (tmp_path / "c2").glob("*.safetensors"):
        cached.write_bytes(b"garbage")
    with pytest.raises(SearchError, match="unreadable.*delete it to rebuild"):
        search_images(QUERY, folder, model, processor, cache_dir=tmp_path / "c2")


def test_search_command_prints_ranked_files_and_writes_a_sheet(tmp_path, capsys):
    from rs_retrieval.cli.search import register

    model, processor = make_tiny_model(seed=7)
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    folder = write_random_images(tmp_path / "imgs", 4)
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "search",
            QUERY,
            "--images",
            str(folder),
            "--model",
            str(tmp_path / "model"),
            "--top-k",
            "3",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--contact-sheet",
            str(tmp_path / "sheet.png"),
        ]
    )
    assert args.func(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    expected = search_images(QUERY, folder, model, processor, top_k=3, cache_dir=tmp_path / "cache")
    assert lines[1:4] == [f"{r:>4}  {s:9.4f}  {p}" for r, (p, s) in enumerate(expected, start=1)]
    assert lines[4] == f"contact sheet: {tmp_path / 'sheet.png'}" and (tmp_path / "sheet.png").is_file()

    args = parser.parse_args(
        [
            "rank-captions",
            str(folder / "img_00.png"),
            "--model",
            str(tmp_path / "model"),
            "--captions",
            "a road",
            "green field",
        ]
    )
    assert args.func(args) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3


def test_bad_files_are_skipped_with_a_warning_each_and_a_summary(tmp_path, caplog):
    model, processor = make_tiny_model()
    folder = write_random_images(tmp_path / "imgs", 3)
    (folder / "broken.png").write_bytes(b"not a png")
    good = folder / "img_00.png"
    (folder / "cut.png").write_bytes(good.read_bytes()[:-40])
    with caplog.at_level("WARNING", logger="rs_retrieval.search"):
        results = search_images(QUERY, folder, model, processor, top_k=None, cache_dir=tmp_path / "c")
    assert sorted(p.name for p, _ in results) == ["img_00.png", "img_01.png", "img_02.png"]
    messages = [r.getMessage() for r in caplog.records]
    assert any("broken.png" in m for m in messages) and any("cut.png" in m for m in messages)
    assert "skipped 2 of 5 images" in messages[-1]


def test_16bit_tiff_search_differs_from_a_white_image(tmp_path):
    import tifffile

    model, processor = make_tiny_model()
    folder = tmp_path / "imgs"
    folder.mkdir()
    tifffile.imwrite(folder / "a16.tif", np.tile(np.linspace(500, 30000, 40), (40, 1)).astype(np.uint16))
    Image.new("RGB", (40, 40), "white").save(folder / "white.png")
    scores = dict(search_images(QUERY, folder, model, processor, top_k=None, cache_dir=tmp_path / "c"))
    assert scores[folder / "a16.tif"] != pytest.approx(scores[folder / "white.png"], abs=1e-6)


def test_concurrent_searches_over_different_folders_keep_every_row(tmp_path):
    from rs_retrieval.search.folder_search import EmbeddingCache, model_fingerprint

    model, processor = make_tiny_model()
    first, second = write_random_images(tmp_path / "a", 2, seed=1), write_random_images(tmp_path / "b", 3, seed=2)
    fingerprint = model_fingerprint(model, processor)
    # two processes loaded the (empty) cache before either saved: both must survive the second save
    caches = [EmbeddingCache(tmp_path / "c", fingerprint) for _ in range(2)]
    for cache, folder in zip(caches, (first, second)):
        paths = sorted(folder.glob("*.png"))
        cache.add([cache.file_sha1(p) for p in paths], {"image_embeds": torch.randn(len(paths), 4)})
    for cache in caches:
        cache.save()
    merged = EmbeddingCache(tmp_path / "c", fingerprint)
    assert len(merged.rows) == 5 and len(merged.tensors["image_embeds"]) == 5
    assert len(merged._file_index) == 5
