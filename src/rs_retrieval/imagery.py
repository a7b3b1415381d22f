"""Where image files and arrays become pixels: one reader and one display/model conversion rule.

`read_image(path)` returns the file's pixels as a NumPy array [H, W, bands] in the file's own dtype
(uint8, uint16, int16, float32, ...): PIL for ordinary files, `tifffile` for TIFF (multi-band,
16-bit, float; planar or interleaved) and `rasterio`, when installed, for TIFFs that tifffile
cannot decode (LZW/JPEG-compressed GeoTIFF, COG) and for decimated reads of very large TIFFs.
`IMAGE_EXTENSIONS` are the file kinds it reads; folder search, indexes and class folders take
exactly these. Every PIL image (read from a file or handed in) is turned upright by its EXIF
orientation (phones and drones store pictures rotated), and transparent pixels are composited on
black, the colour of nodata below (`pil_to_array`).

`rgb_image(image, ...)` is what every processor resizes: an RGB PIL image by the rule below,
upright, with a warning when the image is so small that the model input is mostly interpolation.

`to_rgb_uint8(array, rescale_mode)` turns any such array (or a PIL image / torch tensor) into the
[H, W, 3] uint8 RGB that both the model input and every picture use. The rule, per input kind:

* uint8: taken as is; bool: False -> 0, True -> 255.
* uint16 / int16 / other integers / float: rescaled per image. `rescale_mode`:
  - "auto" (default): float values that all lie in [0, 1] are taken as [0, 1] intensities (x 255,
    the convention of `transformers` image processors after `do_rescale`); everything else that is
    not uint8 gets the "percentile" stretch;
  - "percentile": per band, the 2nd..98th percentile is stretched to 0..255 and clipped (the default
    stretch of RS viewers such as QGIS); a band holding a single value becomes 0;
  - "minmax": per band, min..max stretched to 0..255;
  - "unit": values are [0, 1] intensities (x 255); a value outside [0, 1] is an error;
  - "none": values are already 0..255 intensities; a value outside [0, 255] is an error;
  - a sensor scaling of `rs_retrieval.multispectral.SCALINGS` ("s2-l2a", "landsat-c2l2", ...):
    digital numbers -> reflectance -> a fixed reflectance range stretched to 0..255, clipped.
  NaN / inf pixels are nodata: they are ignored by the stretch and drawn black.
* bands (last axis): 1 band = grayscale (repeated to RGB); 2 bands = gray + alpha (alpha dropped:
  PIL images with alpha arrive composited on black, see above); 3 bands = RGB; 4 or more = RGBA
  or multispectral (RGBN...), of which bands 0, 1, 2 are drawn as
  R, G, B unless `bands=` names one (gray) or three (R, G, B) 0-based band indices, e.g. (3, 0, 1)
  for a NIR false-colour view of an R, G, B, NIR image.
* arrays and tensors laid out [bands, H, W] (at most 4 leading bands and a wider last axis) are
  moved to [H, W, bands].

Nothing is clipped silently: a value range the rule cannot interpret (all-NaN, complex, strings,
out of range for "unit"/"none") raises `ImageValueError` naming the file or "array".
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from .errors import RSRetrievalError, UsageError
from .multispectral import SCALINGS

logger = logging.getLogger(__name__)

RESCALE_MODES = ("auto", "percentile", "minmax", "unit", "none", *SCALINGS)
#: Lower and upper percentile of the "percentile" stretch.
STRETCH_PERCENTILES = (2.0, 98.0)
TIFF_SUFFIXES = (".tif", ".tiff")
#: File kinds `read_image` reads (lower case); anything else in a folder is left out, with a warning.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", *TIFF_SUFFIXES, ".bmp", ".webp", ".gif", ".jp2")
#: An image whose shorter side is below the model input size divided by this is warned about:
#: upscaled that much, the model sees interpolation, not content (a 1 x 1 picture is one colour).
MAX_UPSCALE = 8
#: EXIF tag of the orientation (1 = upright; 2-8 = mirrored and/or rotated).
_EXIF_ORIENTATION = 0x0112
#: Environment variable that overrides the pixel limit above which images are read downsampled.
MAX_PIXELS_ENV = "RS_RETRIEVAL_MAX_PIXELS"
#: Kinds of note already logged by `_warn_once` in this process.
_WARNED: set[str] = set()
#: Pixels sampled (evenly strided) to estimate the stretch percentiles of a large band.
_STRETCH_SAMPLE = 1 << 20


class ImageError(RSRetrievalError, ValueError):
    """An image (file or array) cannot be turned into pixels; the message names it."""


class ImageReadError(ImageError, OSError):
    """The file cannot be decoded: unknown format, corrupt or truncated."""


class ImageValueError(ImageError):
    """The pixel values or band layout have no meaning under the conversion rule."""


class ImageTooLargeError(ImageError):
    """The image has more pixels than the limit and its format cannot be read downsampled."""


def max_pixels_limit() -> int | None:
    """Pixel limit for one image: $RS_RETRIEVAL_MAX_PIXELS (0 or less: none), else PIL's `Image.MAX_IMAGE_PIXELS`."""
    from PIL import Image

    value = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if value:
        try:
            limit = int(value.replace("_", ""))
        except ValueError:
            raise UsageError(
                f"{MAX_PIXELS_ENV}={value!r} is not a whole number of "
                f"pixels (e.g. {MAX_PIXELS_ENV}=200000000; 0 = no limit)"
            ) from None
        return limit if limit > 0 else None
    return Image.MAX_IMAGE_PIXELS


def list_image_files(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """The files of `folder` with one of `IMAGE_EXTENSIONS`, sorted; other files (dotfiles aside)
    are named in one warning (once per folder and process), so nothing is left out silently."""
    folder = Path(folder)
    files = sorted(p for p in folder.glob("**/*" if recursive else "*") if p.is_file())
    images = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
    others = [p for p in files if p.suffix.lower() not in IMAGE_EXTENSIONS and not p.name.startswith(".")]
    if others:
        shown = ", ".join(str(p.relative_to(folder)) for p in others[:5]) + (", ..." if len(others) > 5 else "")
        message = (
            f"left out {len(others)} file(s) in {folder} that are not images ({' '.join(IMAGE_EXTENSIONS)}): {shown}"
        )
        _warn_once(f"left out {folder.resolve()} {recursive}", message)
    return images


# ------------------------------------------------------------------------------------- reading


def read_image(path: str | os.PathLike, bands: Sequence[int] | None = None, max_pixels: int | None = -1) -> np.ndarray:
    """Pixels of an image file as [H, W, bands] in the file's dtype (`bands=` keeps only those).

    Images above `max_pixels` (default `max_pixels_limit()`; None = no limit) are read downsampled
    where the format allows it (JPEG draft decoding, decimated TIFF reads with rasterio), otherwise
    `ImageTooLargeError` names the file and the setting that allows it.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"image file {path} does not exist")
    limit = max_pixels_limit() if max_pixels == -1 else max_pixels
    if path.suffix.lower() in TIFF_SUFFIXES:
        array = _read_tiff(path, limit)
    else:
        array = _read_with_pil(path, limit)
    array = _hwc(array, str(path))
    return select_bands(array, bands, str(path)) if bands is not None else array


@contextlib.contextmanager
def pil_size_check_off() -> Iterator[None]:
    """PIL refuses to even open images above its bomb limit; we check the size ourselves."""
    from PIL import Image

    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _too_large(path: Path, width: int, height: int, limit: int, how: str) -> ImageTooLargeError:
    return ImageTooLargeError(
        f"{path} is {width} x {height} = {width * height:,} pixels, above the limit of {limit:,}, and {how}; "
        f"set {MAX_PIXELS_ENV}={width * height} (needs the memory for the full image) or make a smaller copy"
    )


def _read_with_pil(path: Path, limit: int | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with pil_size_check_off():
            image = Image.open(path)
        with image:
            width, height = image.size
            if limit is not None and width * height > limit:
                if image.format != "JPEG":
                    raise _too_large(path, width, height, limit, f"{image.format} cannot be read downsampled")
                factor = math.sqrt(width * height / limit)
                image.draft(image.mode, (math.ceil(width / factor), math.ceil(height / factor)))
                logger.warning("%s: %d x %d pixels, read downsampled to %d x %d", path, width, height, *image.size)
            image.load()
            if limit is not None and image.width * image.height > limit:
                image = image.reduce(math.ceil(math.sqrt(image.width * image.height / limit)))
            return pil_to_array(image, str(path))
    except ImageError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(f"cannot read image {path}: {err}") from err


def _read_tiff(path: Path, limit: int | None) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            height, width = series.shape[series.axes.index("Y")], series.shape[series.axes.index("X")]
            if limit is None or width * height <= limit:
                return _yx_first(series.asarray(), series.axes)
            reason = "tifffile cannot read it downsampled"
    except Exception as err:  # tifffile raises many types (codec KeyError, TiffFileError, ...)
        reason = f"tifffile cannot decode it ({err})"
        width = height = None
    try:
        import rasterio  # optional engine: decodes every GDAL compression, reads decimated
    except ImportError:
        rasterio = None
    if rasterio is not None:
        return _read_with_rasterio(rasterio, path, limit)
    if width is not None:
        raise _too_large(path, width, height, limit, f"{reason} (install 'rs-retrieval[geo]' for decimated reads)")
    try:
        return _read_with_pil(path, limit)
    except ImageReadError as err:
        raise ImageReadError(
            f"cannot read TIFF {path}: {reason}; pip install 'rs-retrieval[geo]' (rasterio) reads it"
        ) from err


def _read_with_rasterio(rasterio, path: Path, limit: int | None) -> np.ndarray:
    try:
        with rasterio.open(path) as dataset:
            width, height = dataset.width, dataset.height
            shape = None
            if limit is not None and width * height > limit:
                factor = math.sqrt(width * height / limit)
                shape = (dataset.count, max(1, int(height / factor)), max(1, int(width / factor)))
                logger.warning(
                    "%s: %d x %d pixels, read downsampled to %d x %d", path, width, height, shape[2], shape[1]
                )
            return np.moveaxis(dataset.read(out_shape=shape), 0, -1)
    except rasterio.errors.RasterioError as err:
        raise ImageReadError(f"cannot read image {path}: {err}") from err


def _yx_first(array: np.ndarray, axes: str) -> np.ndarray:
    """tifffile arrays by axis letters -> [H, W, everything else flattened into bands]."""
    y, x = axes.index("Y"), axes.index("X")
    array = np.moveaxis(array, (y, x), (0, 1))
    return array.reshape(array.shape[0], array.shape[1], -1)


def upright(image):
    """The PIL image as it is meant to be seen: its EXIF orientation applied (and then cleared)."""
    from PIL import ImageOps

    if image.getexif().get(_EXIF_ORIENTATION, 1) == 1:
        return image
    return ImageOps.exif_transpose(image)


def pil_to_array(image, source: str = "array") -> np.ndarray:
    """A PIL image's pixels in their own dtype ("I;16" -> uint16, "I" -> int32, "F" -> float32),
    upright by its EXIF orientation, transparent pixels composited on black."""
    image = upright(image)
    if image.mode == "1":
        image = image.convert("L")
    elif image.mode in ("P", "PA"):
        image = image.convert("RGBA")
    elif image.mode not in ("L", "LA", "RGB", "RGBA", "I", "F") and not image.mode.startswith("I;16"):
        image = image.convert("RGB")  # CMYK, YCbCr, LAB, HSV, ...: PIL knows their RGB meaning
    array = np.asarray(image)
    if image.mode in ("LA", "RGBA"):
        array = _composite_on_black(array, source)
    return array.astype(array.dtype.newbyteorder("=")) if array.dtype.byteorder not in ("=", "|") else array


def _composite_on_black(array: np.ndarray, source: str) -> np.ndarray:
    """uint8 colour + alpha -> colour over black (alpha 255 keeps a pixel, 0 makes it black)."""
    colour, alpha = array[..., :-1], array[..., -1:]
    if alpha.min() == 255:
        return colour
    _warn_once(
        "alpha",
        f"{source} has transparent pixels: composited on black, the "
        "nodata colour (further images with alpha are not reported)",
    )
    return ((colour.astype(np.uint16) * alpha + 127) // 255).astype(np.uint8)


def _warn_once(kind: str, message: str) -> None:
    """Log `message` for the first time something of its `kind` happens in this process only."""
    if kind not in _WARNED:
        _WARNED.add(kind)
        logger.warning(message)


def rgb_image(
    image,
    rescale_mode: str = "auto",
    bands: Sequence[int] | None = None,
    source: str | None = None,
    input_size: int | None = None,
):
    """An RGB PIL image of any input, by the module's rule and upright: what processors resize.

    An 8-bit RGB PIL image is kept as is (decoded here, so a truncated file is named). With
    `input_size` (the model's), an image whose shorter side is below `input_size / MAX_UPSCALE`
    is warned about, naming it."""
    from PIL import Image

    if source is None and isinstance(image, (str, os.PathLike)):
        source = os.fspath(image)
    if isinstance(image, Image.Image) and image.mode == "RGB" and bands is None:
        try:
            image.load()
        except OSError as err:
            raise ImageReadError(f"cannot read image {source or 'in the batch'}: {err}") from err
        image = upright(image)
    else:
        image = Image.fromarray(to_rgb_uint8(image, rescale_mode, bands, source))
    if input_size and min(image.size) * MAX_UPSCALE < input_size:
        logger.warning(
            "%s is only %d x %d pixels: upscaled to the model's %d px input it carries almost no detail",
            source or "an image",
            image.width,
            image.height,
            input_size,
        )
    return image


# ------------------------------------------------------------------------------------ conversion


def image_to_array(image, source: str = "array") -> np.ndarray:
    """A PIL image, NumPy array or torch tensor as [H, W, bands] in its own dtype."""
    from PIL import Image

    if isinstance(image, Image.Image):
        try:
            return _hwc(pil_to_array(image, source), source)
        except OSError as err:  # a lazily opened file that turns out truncated or corrupt
            raise ImageReadError(f"cannot read image {source}: {err}") from err
    if isinstance(image, (str, os.PathLike)):
        return read_image(image)
    if type(image).__module__.startswith("torch"):
        image = image.detach().cpu()
        image = (image.float() if str(image.dtype) == "torch.bfloat16" else image).numpy()
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected a PIL image, NumPy array, tensor or file path, got {type(image).__name__}")
    return _hwc(image, source)


def _hwc(array: np.ndarray, source: str) -> np.ndarray:
    if array.ndim == 2:
        return array[:, :, None]
    if array.ndim == 3 and array.shape[0] <= 4 < array.shape[-1]:
        return np.moveaxis(array, 0, -1)  # [bands, H, W]
    if array.ndim == 3 and array.size:
        return array
    raise ImageValueError(
        f"{source}: expected an image [H, W], [H, W, bands] or [bands, H, W], got shape {array.shape}"
    )


def select_bands(array: np.ndarray, bands: Sequence[int] | None, source: str = "array") -> np.ndarray:
    """The bands drawn as gray or R, G, B: `bands` if given (1 or 3 indices), else the default rule."""
    count = array.shape[-1]
    if bands is None:
        bands = (0,) if count < 3 else (0, 1, 2)
    bands = tuple(int(b) for b in bands)
    if len(bands) not in (1, 3):
        raise ImageValueError(f"{source}: bands= names 1 (gray) or 3 (R, G, B) bands, got {bands}")
    if any(not 0 <= b < count for b in bands):
        raise ImageValueError(f"{source}: bands={bands} but the image has {count} band(s) (0-based indices)")
    return array[..., list(bands)]


def to_rgb_uint8(
    array, rescale_mode: str = "auto", bands: Sequence[int] | None = None, source: str | None = None
) -> np.ndarray:
    """[H, W, 3] uint8 RGB of an array or tensor (or a PIL image or file path), by the module's rule;
    `source` names it in errors."""
    if rescale_mode not in RESCALE_MODES:
        raise ValueError(f"rescale_mode must be one of {RESCALE_MODES}, got {rescale_mode!r}")
    source = source or (os.fspath(array) if isinstance(array, (str, os.PathLike)) else "array")
    array = select_bands(image_to_array(array, source), bands, source)
    kind = array.dtype.kind
    if kind == "b":
        array = array.astype(np.uint8) * 255
    elif kind not in "uif":
        raise ImageValueError(f"{source}: pixel values of dtype {array.dtype} have no intensity meaning")
    elif array.dtype != np.uint8:
        array = _rescale(array, rescale_mode, source)
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return np.ascontiguousarray(array)


def _rescale(array: np.ndarray, mode: str, source: str) -> np.ndarray:
    values = array.astype(np.float32, copy=False)
    finite = np.isfinite(values)
    if not finite.any():
        raise ImageValueError(f"{source}: no finite pixel value (all NaN / inf)")
    all_finite = bool(finite.all())
    low, high = (
        (float(values.min()), float(values.max()))
        if all_finite
        else (float(values[finite].min()), float(values[finite].max()))
    )
    if mode == "auto":
        mode = "unit" if array.dtype.kind == "f" and low >= 0.0 and high <= 1.0 else "percentile"
    if mode in SCALINGS:  # fixed: the same reflectance is the same grey level in every image
        scaling = SCALINGS[mode]
        low, high = scaling.display
        scaled = ((values * scaling.gain + scaling.offset) - low) * (255.0 / (high - low))
    elif mode in ("unit", "none"):
        top = 1.0 if mode == "unit" else 255.0
        if low < 0.0 or high > top:
            raise ImageValueError(
                f"{source}: rescale_mode={mode!r} expects values in [0, {top:g}], found [{low:g}, {high:g}]; "
                "use rescale_mode='percentile' or 'minmax' to stretch them"
            )
        scaled = values * (255.0 / top)
    else:
        scaled = np.stack([_stretch(values[..., b], mode) for b in range(values.shape[-1])], axis=-1)
    if not all_finite:
        scaled = np.where(finite, scaled, 0.0)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _stretch(band: np.ndarray, mode: str) -> np.ndarray:
    """One band stretched so its [low, high] (percentiles or min/max of finite values) maps to 0..255."""
    sample = band.reshape(-1)[:: max(1, band.size // _STRETCH_SAMPLE)]
    sample = sample[np.isfinite(sample)]
    if not sample.size:
        return np.zeros_like(band)
    if mode == "percentile":
        low, high = np.percentile(sample, STRETCH_PERCENTILES)
        if high <= low:  # e.g. mostly one value: fall back to the full range
            low, high = sample.min(), sample.max()
    else:
        low, high = sample.min(), sample.max()
    if high <= low:
        return np.zeros_like(band)
    return (band - low) * (255.0 / (high - low))
