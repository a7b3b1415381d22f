"""Imagery: every input kind becomes the documented RGB uint8, nothing is clipped silently."""

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from rs_retrieval.errors import RSRetrievalError
from rs_retrieval.imagery import (
    ImageReadError,
    ImageTooLargeError,
    ImageValueError,
    read_image,
    to_rgb_uint8,
)
from rs_retrieval.models.common.processing import RSImageProcessor


def _ramp(height=24, width=32, low=1000, high=41000, dtype=np.uint16):
    """A horizontal ramp from `low` to `high`: its percentile stretch is known in closed form."""
    return np.tile(np.linspace(low, high, width), (height, 1)).astype(dtype)


def _stretched(values):
    low, high = np.percentile(values, (2, 98))
    return np.clip(np.rint((values.astype(np.float32) - low) * (255.0 / (high - low))), 0, 255).astype(np.uint8)


def test_16bit_grayscale_tiff_is_stretched_not_white(tmp_path):
    ramp = _ramp()
    tifffile.imwrite(tmp_path / "gray16.tif", ramp)
    array = read_image(tmp_path / "gray16.tif")
    assert array.dtype == np.uint16 and array.shape == (24, 32, 1)
    rgb = to_rgb_uint8(array)
    assert rgb.shape == (24, 32, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[..., 0], _stretched(ramp))
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])
    processor = RSImageProcessor(size=16)
    white = processor.preprocess(Image.new("RGB", (32, 24), "white"))["pixel_values"]
    from_file = processor.preprocess(Image.open(tmp_path / "gray16.tif"))["pixel_values"]
    assert not torch.allclose(from_file, white, atol=0.1)
    assert from_file[0, 0, :, 0].mean() < from_file[0, 0, :, -1].mean()  # the ramp survives


def test_float_tiff_and_unit_tensor_are_not_black(tmp_path):
    unit = np.random.default_rng(0).random((20, 20, 3)).astype(np.float32)
    tifffile.imwrite(tmp_path / "float.tif", unit, photometric="rgb")
    expected = np.rint(unit * 255).astype(np.uint8)
    np.testing.assert_array_equal(to_rgb_uint8(read_image(tmp_path / "float.tif")), expected)
    processor = RSImageProcessor(size=20)
    from_uint8 = processor.preprocess(expected)["pixel_values"]
    from_tensor = processor.preprocess(torch.from_numpy(unit).permute(2, 0, 1))["pixel_values"]
    torch.testing.assert_close(from_tensor, from_uint8)
    # transformers convention: do_rescale=True says the floats are [0, 255]
    from_255 = processor.preprocess(torch.from_numpy(unit * 255).permute(2, 0, 1), do_rescale=True)["pixel_values"]
    torch.testing.assert_close(from_255, from_uint8, atol=0.02, rtol=0)


def test_reflectance_float_beyond_one_gets_the_percentile_stretch():
    radiance = _ramp(low=0, high=3000, dtype=np.float32)
    np.testing.assert_array_equal(to_rgb_uint8(radiance)[..., 0], _stretched(radiance))


def test_multiband_tiff_default_rgb_and_band_choice(tmp_path):
    rng = np.random.default_rng(1)
    bands = rng.integers(0, 60000, (4, 18, 22)).astype(np.uint16)  # R, G, B, NIR, planar
    tifffile.imwrite(tmp_path / "rgbn.tif", bands, planarconfig="separate", photometric="minisblack")
    array = read_image(tmp_path / "rgbn.tif")
    assert array.shape == (18, 22, 4)
    np.testing.assert_array_equal(array, np.moveaxis(bands, 0, -1))
    default = to_rgb_uint8(array)
    np.testing.assert_array_equal(default[..., 0], _stretched(bands[0]))
    false_colour = to_rgb_uint8(array, bands=(3, 0, 1))
    np.testing.assert_array_equal(false_colour[..., 0], _stretched(bands[3]))
    assert read_image(tmp_path / "rgbn.tif", bands=(3,)).shape == (18, 22, 1)
    with pytest.raises(ImageValueError, match=r"bands=\(5,\) but the image has 4 band"):
        to_rgb_uint8(array, bands=(5,))
    processor = RSImageProcessor(size=22, bands=[3, 0, 1], rescale_mode="percentile")
    assert processor.preprocess(str(tmp_path / "rgbn.tif"))["pixel_values"].shape == (1, 3, 22, 22)


def test_gray_alpha_arrays_drop_alpha_and_transparent_pil_pixels_become_black():
    gray_alpha = np.stack([np.full((8, 8), 90, np.uint8), np.zeros((8, 8), np.uint8)], -1)
    assert (to_rgb_uint8(gray_alpha) == 90).all()  # an array's bands carry no meaning: the rule drops band 1
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = (100, 200, 30)
    rgba[:, :4, 3], rgba[:, 4:6, 3], rgba[:, 6:, 3] = 255, 128, 0
    rgb = to_rgb_uint8(Image.fromarray(rgba, "RGBA"))  # a PIL image knows its alpha: composited on black
    assert (
        rgb[0, 0].tolist() == [100, 200, 30]
        and rgb[0, 4].tolist() == [50, 100, 15]
        and rgb[0, 7].tolist() == [0, 0, 0]
    )
    opaque = Image.new("RGBA", (8, 8), (10, 20, 30, 255))
    assert to_rgb_uint8(opaque)[0, 0].tolist() == [10, 20, 30]


def test_uninterpretable_values_raise_naming_the_file(tmp_path):
    tifffile.imwrite(tmp_path / "nodata.tif", np.full((8, 8), np.nan, np.float32))
    with pytest.raises(ImageValueError, match="nodata.tif: no finite pixel value"):
        to_rgb_uint8(tmp_path / "nodata.tif")
    with pytest.raises(ImageValueError, match=r"expects values in \[0, 1\], found \[0, 2\]"):
        to_rgb_uint8(np.array([[0.0, 2.0]], np.float32), rescale_mode="unit")
    with pytest.raises(ImageValueError, match="complex"):
        to_rgb_uint8(np.ones((4, 4), np.complex64))
    assert issubclass(ImageValueError, RSRetrievalError)


def test_nan_nodata_is_black_and_ignored_by_the_stretch():
    band = _ramp(low=0, high=500, dtype=np.float32)
    band[0, :] = np.nan
    rgb = to_rgb_uint8(band)
    assert (rgb[0] == 0).all()
    np.testing.assert_array_equal(rgb[1:, :, 0], _stretched(band[1:]))


def test_truncated_jpeg_names_the_file(tmp_path):
    path = tmp_path / "cut.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path, quality=95)
    path.write_bytes(path.read_bytes()[:-600])
    with pytest.raises(ImageReadError, match="cut.jpg.*truncated"):
        read_image(path)


def test_images_above_the_pixel_limit_are_downsampled_or_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # PIL itself now refuses anything over 2000 pixels
    pixels = np.random.default_rng(0).integers(0, 255, (200, 160, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "big.jpg")
    Image.fromarray(pixels).save(tmp_path / "big.png")
    small = read_image(tmp_path / "big.jpg")
    assert small.shape[0] * small.shape[1] <= 1000 and small.shape[0] / small.shape[1] == pytest.approx(
        200 / 160, rel=0.1
    )
    assert Image.MAX_IMAGE_PIXELS == 1000  # restored after the read
    with pytest.raises(ImageTooLargeError, match="big.png is 160 x 200 = 32,000 pixels.*RS_RETRIEVAL_MAX_PIXELS"):
        read_image(tmp_path / "big.png")
    monkeypatch.setenv("RS_RETRIEVAL_MAX_PIXELS", "40000")
    assert read_image(tmp_path / "big.png").shape == (200, 160, 3)


@pytest.mark.filterwarnings("ignore:Dataset has no geotransform")
def test_lzw_geotiff_is_read_with_rasterio(tmp_path, monkeypatch):
    rasterio = pytest.importorskip("rasterio")
    bands = _ramp(height=16, width=16)[None].repeat(3, axis=0)
    with rasterio.open(
        tmp_path / "lzw.tif", "w", driver="GTiff", width=16, height=16, count=3, dtype="uint16", compress="lzw"
    ) as out:
        out.write(bands)
    np.testing.assert_array_equal(read_image(tmp_path / "lzw.tif"), np.moveaxis(bands, 0, -1))
    monkeypatch.setitem(__import__("sys").modules, "rasterio", None)  # as if the [geo] extra were missing
    with pytest.raises(ImageReadError, match=r"lzw.tif.*rs-retrieval\[geo\]"):
        read_image(tmp_path / "lzw.tif")


def test_processor_saves_its_rescale_rule(tmp_path):
    processor = RSImageProcessor(size=8, rescale_mode="minmax", bands=[2, 1, 0])
    processor.save_pretrained(tmp_path)
    loaded = RSImageProcessor.from_pretrained(tmp_path)
    assert loaded.rescale_mode == "minmax" and loaded.bands == [2, 1, 0]
    with pytest.raises(ValueError, match="rescale_mode must be one of"):
        RSImageProcessor(rescale_mode="stretch")
