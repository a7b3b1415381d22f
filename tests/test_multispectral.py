"""Multispectral input: composites and band names, sensor scalings, and --bands on processors and search (13-band GeoTIFFs)."""

from __future__ import annotations

import argparse
import types

import numpy as np
import pytest
import tifffile
from hub_server import import_tiny_package, make_tiny_model
from PIL import Image

from rs_retrieval.errors import UsageError
from rs_retrieval.imagery import read_image, to_rgb_uint8
from rs_retrieval.models.common.processing import RSImageProcessor
from rs_retrieval.multispectral import SENTINEL2_BANDS, apply_bands, parse_bands


def write_s2(path, scale: int = 200, size: int = 12) -> np.ndarray:
    """A 13-band uint16 Sentinel-2 stack: band b holds 200 * (b + 1) plus a gradient in its top row."""
    cube = np.stack([np.full((size, size), scale * (b + 1), dtype=np.uint16) for b in range(13)])  # [bands, H, W]
    cube[:, 0, :] += np.arange(size, dtype=np.uint16) * 10
    tifffile.imwrite(path, cube, photometric="minisblack", planarconfig="separate")
    return np.moveaxis(cube, 0, -1)


def test_composites_names_and_numbers_resolve_to_band_indices():
    assert parse_bands("s2-rgb").indices == parse_bands("B04,B03,B02").indices
    assert parse_bands("s2-rgb").indices == (3, 2, 1) and parse_bands("s2-rgb").rescale_mode == "s2-l2a"
    assert parse_bands("s2-false-color").indices == (7, 3, 2)
    assert parse_bands("s2-swir").indices == (12, 8, 3)  # B12, B8A, B04 in the 13-band order
    assert (
        parse_bands(["b4", "b3", "b2"]).indices == (3, 2, 1) and parse_bands("B4 B3 B2").rescale_mode == "landsat-c2l2"
    )
    assert parse_bands(["4", "3", "2"]).indices == (3, 2, 1) and parse_bands("4,3,2").rescale_mode is None
    assert parse_bands("B8A").indices == (8,) and parse_bands("s2-rgb").numbers == [4, 3, 2]
    assert parse_bands("B04,B03,B02", scaling="s2-l2a-offset").rescale_mode == "s2-l2a-offset"
    for bad, message in (
        ("B04,B3,B02", "not all names of one sensor"),
        ("B99", "not all names"),
        ("B04,B03", "1 or 3"),
        ("0,1,2", "1-based"),
    ):
        with pytest.raises(UsageError, match=message):
            parse_bands(bad)


def test_s2_scaling_is_fixed_reflectance_not_a_per_image_stretch(tmp_path):
    write_s2(tmp_path / "s2.tif")
    pixels = read_image(tmp_path / "s2.tif")
    assert pixels.shape == (12, 12, 13) and pixels.dtype == np.uint16
    rgb = to_rgb_uint8(pixels, "s2-l2a", parse_bands("s2-rgb").indices)
    # B04 = 800 -> 0.08 reflectance -> 0.08 / 0.3 * 255 = 68; B03 = 600 -> 51; B02 = 400 -> 34.
    assert rgb[5, 5].tolist() == [68, 51, 34]
    false_color = to_rgb_uint8(pixels, "s2-l2a", parse_bands("s2-false-color").indices)
    assert false_color[5, 5].tolist() == [136, 68, 51]  # B08 = 1600 -> 0.16 -> 136
    # The same pixels twice as bright stay twice as bright (a percentile stretch would map both to 0..255).
    brighter = to_rgb_uint8(pixels * 2, "s2-l2a", (3, 2, 1))
    assert brighter[5, 5].tolist() == [136, 102, 68]
    assert to_rgb_uint8(pixels, "percentile", (3, 2, 1))[5, 5].tolist() != rgb[5, 5].tolist()
    assert (
        to_rgb_uint8(np.full((2, 2, 3), 10000, np.uint16), "landsat-c2l2")[0, 0].tolist() == [64] * 3
    )  # 0.075 -> 63.75


def test_processor_bands_are_saved_and_drive_the_model_input(tmp_path):
    write_s2(tmp_path / "s2.tif")
    processor = types.SimpleNamespace(
        image_processor=RSImageProcessor(size=12, image_mean=[0, 0, 0], image_std=[1, 1, 1])
    )
    apply_bands(processor, "s2-false-color")
    image_processor = processor.image_processor
    assert image_processor.bands == [7, 3, 2] and image_processor.rescale_mode == "s2-l2a"
    image_processor.save_pretrained(tmp_path / "proc")
    reloaded = RSImageProcessor.from_pretrained(tmp_path / "proc")
    assert reloaded.bands == [7, 3, 2] and reloaded.rescale_mode == "s2-l2a"
    rgb = reloaded.to_rgb(str(tmp_path / "s2.tif"))
    assert np.asarray(rgb)[5, 5].tolist() == [136, 68, 51]


def test_clip_processor_takes_bands_for_the_session(tmp_path):
    from clip_helpers import tiny_clip

    from rs_retrieval.models.clip.processing_clip import as_retrieval_processor

    processor = as_retrieval_processor(tiny_clip()[1])
    with pytest.raises(UsageError, match="does not select bands"):
        apply_bands(processor.processor, "s2-rgb")
    write_s2(tmp_path / "s2.tif")
    expected = to_rgb_uint8(read_image(tmp_path / "s2.tif"), "s2-l2a", (3, 2, 1))
    apply_bands(processor, "s2-rgb")
    got = processor.image_inputs({"image": [str(tmp_path / "s2.tif")]})["pixel_values"]
    want = processor.processor.image_processor([Image.fromarray(expected)], return_tensors="pt")["pixel_values"]
    assert np.allclose(got.numpy(), want.numpy())


def test_search_with_bands_ranks_13_band_files_and_rejects_unknown_names(tmp_path, capsys):
    from rs_retrieval.cli import main
    from rs_retrieval.cli.search import register

    import_tiny_package(tmp_path / "pkg")
    model, processor = make_tiny_model(seed=3)
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    folder = tmp_path / "scenes"
    folder.mkdir()
    for k in range(3):
        write_s2(folder / f"tile_{k}.tif", scale=150 + 100 * k)
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    argv = [
        "search",
        "a field",
        "--images",
        str(folder),
        "--model",
        str(tmp_path / "model"),
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    outputs = {}
    for bands in ("s2-rgb", "s2-false-color"):
        args = parser.parse_args([*argv, "--bands", bands])
        assert args.func(args) == 0
        outputs[bands] = capsys.readouterr().out
    assert outputs["s2-rgb"] != outputs["s2-false-color"]  # the composite reaches the model (and the cache key)
    assert main([*argv, "--bands", "B99"]) == 2
    assert "not all names of one sensor" in capsys.readouterr().err
    assert len(SENTINEL2_BANDS) == 13


def test_the_public_loader_sets_bands_and_rejects_a_bad_name_before_loading(tmp_path):
    import rs_retrieval
    from rs_retrieval.pretrained import load_model_and_processor

    assert rs_retrieval.load_model_and_processor is load_model_and_processor  # the one loader, exported at the top
    with pytest.raises(
        UsageError, match="not all names of one sensor"
    ):  # not "no model folder": bands are checked first
        rs_retrieval.load_model_and_processor(tmp_path / "missing", bands="B99")
    import_tiny_package(tmp_path / "pkg")
    model, processor = make_tiny_model(seed=3)
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    _, loaded = rs_retrieval.load_model_and_processor(tmp_path / "model", bands="s2-false-color")
    assert (loaded.image_processor.bands, loaded.image_processor.rescale_mode) == (
        [7, 3, 2],
        "s2-l2a",
    )  # B08, B04, B03
    _, plain = rs_retrieval.load_model_and_processor(tmp_path / "model")
    assert plain.image_processor.bands != [7, 3, 2]
