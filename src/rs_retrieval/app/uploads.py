"""Images people upload to the web app: checked before decoding, rendered to 8-bit RGB.

Browsers cannot show 16-bit or float imagery and an upload can be anything, so the app never
hands an upload to a component as-is: `read_upload` checks the file size and the pixel count from
the header, decodes it, and renders high bit-depth imagery with the processor's display rule
(`rs_retrieval.imagery.to_rgb_uint8`). Every failure is an `UploadError` whose message the page
shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import RSRetrievalError

#: Defaults of `serve --max-upload-mb/--max-upload-megapixels`.
DEFAULT_MAX_BYTES = 64 * 1024**2
DEFAULT_MAX_PIXELS = 64_000_000
#: PIL modes that are already 8 bits per channel.
_EIGHT_BIT_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}


class UploadError(RSRetrievalError, ValueError):
    """An uploaded file is missing, too large or not a readable image; the message says which."""


@dataclass(frozen=True)
class Upload:
    """A decoded upload: the RGB image the model and the page see, and a note on how it was rendered."""

    image: Image.Image
    note: str = ""


def _header_size(path: Path) -> tuple[tuple[int, int], str | None]:
    """((width, height), PIL mode or None when only tifffile can read it), without decoding pixels."""
    try:
        with Image.open(path) as image:
            return image.size, image.mode
    except Image.DecompressionBombError as err:  # PIL refuses to even open the header past 2x its own limit
        raise UploadError(f"{path.name}: {err}") from None
    except (UnidentifiedImageError, OSError) as err:
        pil_error = err
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            return (int(page.imagewidth), int(page.imagelength)), None
    except Exception as err:  # tifffile raises many types for non-TIFF bytes
        reason = err if path.suffix.lower() in (".tif", ".tiff") else pil_error
        raise UploadError(f"{path.name} is not a readable image ({reason})") from None


def read_upload(path: str | Path | None, max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS) -> Upload:
    """The upload at `path` as an 8-bit RGB image, or an `UploadError` naming what is wrong."""
    if path is None:
        raise UploadError("no image: upload a file first")
    path = Path(path)
    if not path.is_file():
        raise UploadError(f"{path.name}: the upload did not arrive, try again")
    size_bytes = path.stat().st_size
    if size_bytes > max_bytes:
        raise UploadError(f"{path.name} is {size_bytes / 1024**2:.1f} MB, over the {max_bytes / 1024**2:.0f} MB upload limit")
    (width, height), mode = _header_size(path)
    if width * height > max_pixels:
        raise UploadError(
            f"{path.name} is {width} x {height} pixels ({width * height / 1e6:.1f} MP), over the "
            f"{max_pixels / 1e6:.0f} MP limit: crop or downsample it first"
        )
    if mode in _EIGHT_BIT_MODES:
        try:
            with Image.open(path) as image:
                return Upload(image.convert("RGB"))
        except (UnidentifiedImageError, OSError, ValueError) as err:
            raise UploadError(f"{path.name} is not a readable image ({err})") from None
    return _render_high_bit_depth(path)


def _render_high_bit_depth(path: Path) -> Upload:
    """16-bit / float / multi-band imagery through the package's reader and display rule."""
    from ..imagery import read_image, to_rgb_uint8

    try:
        array = np.asarray(read_image(path))
    except RSRetrievalError as err:
        raise UploadError(f"{path.name} is not a readable image ({err})") from None
    rgb = to_rgb_uint8(array)
    bands = 1 if array.ndim == 2 else min(array.shape)
    note = (
        f"{path.name}: {array.dtype} image with {bands} band(s), rendered to 8-bit RGB for display and for the "
        "model by the processor's rule (rs_retrieval.imagery.to_rgb_uint8)"
    )
    return Upload(Image.fromarray(rgb, "RGB"), note)
