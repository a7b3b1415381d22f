"""Images people upload to the web app: checked before decoding, rendered to 8-bit RGB.

Browsers cannot show 16-bit or float imagery and an upload can be anything, so the app never
hands an upload to a component as-is: `read_upload` checks the file size and the pixel count from
the header, reads the pixels with `rs_retrieval.imagery.read_image` and renders them with the
processor's rule (`to_rgb_uint8` with the processor's `rescale_mode` and `bands`), so the picture
in the page is exactly what the model is given. Every failure is an `UploadError` whose message
the page shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import RSRetrievalError
from ..imagery import ImageError, pil_size_check_off, read_image, to_rgb_uint8

#: Defaults of `serve --max-upload-mb/--max-upload-megapixels`.
DEFAULT_MAX_BYTES = 64 * 1024**2
DEFAULT_MAX_PIXELS = 64_000_000


class UploadError(RSRetrievalError, ValueError):
    """An uploaded file is missing, too large or not a readable image; the message says which."""


@dataclass(frozen=True)
class Upload:
    """A decoded upload: the file's pixels (what the processor is given), their RGB rendering and a note."""

    pixels: np.ndarray
    image: Image.Image
    note: str = ""


def _header_size(path: Path) -> tuple[int, int]:
    """(width, height) from the header, without decoding pixels."""
    try:
        with pil_size_check_off(), Image.open(path) as image:  # the caller applies the app's own limit
            return image.size
    except (UnidentifiedImageError, OSError) as err:
        pil_error = err
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            return int(page.imagewidth), int(page.imagelength)
    except Exception as err:  # tifffile raises many types for non-TIFF bytes
        reason = err if path.suffix.lower() in (".tif", ".tiff") else pil_error
        raise UploadError(f"{path.name} is not a readable image ({reason})") from None


def read_upload(
    path: str | Path | None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    rescale_mode: str = "auto",
    bands: list[int] | None = None,
) -> Upload:
    """The upload at `path` read and rendered by the processor's rule, or an `UploadError` naming what is wrong."""
    if path is None:
        raise UploadError("no image: upload a file first")
    path = Path(path)
    if not path.is_file():
        raise UploadError(f"{path.name}: the upload did not arrive, try again")
    size_bytes = path.stat().st_size
    if size_bytes > max_bytes:
        raise UploadError(
            f"{path.name} is {size_bytes / 1024**2:.1f} MB, over the {max_bytes / 1024**2:.0f} MB upload limit"
        )
    width, height = _header_size(path)
    if width * height > max_pixels:
        raise UploadError(
            f"{path.name} is {width} x {height} pixels ({width * height / 1e6:.1f} MP), over the "
            f"{max_pixels / 1e6:.0f} MP limit: crop or downsample it first"
        )
    try:
        pixels = read_image(path, max_pixels=None)  # size checked above
        rgb = to_rgb_uint8(pixels, rescale_mode, bands, source=path.name)
    except ImageError as err:
        raise UploadError(f"{path.name} is not a readable image ({err})") from None
    note = ""
    if pixels.dtype != np.uint8 or pixels.shape[-1] > 4:
        note = (
            f"{path.name}: {pixels.dtype} image with {pixels.shape[-1]} band(s), rendered to 8-bit RGB for display "
            f"by the processor's rule (rescale_mode={rescale_mode!r}, "
            f"bands={bands}); the model is given the same pixels."
        )
    return Upload(pixels, Image.fromarray(rgb, "RGB"), note)
