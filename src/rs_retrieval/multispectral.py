"""Multispectral input for RGB models: band composites by name and sensor scaling presets.

An RGB model sees three bands as R, G, B. For Sentinel-2 and Landsat the rule is:

1. bands are chosen by name (`B04,B03,B02`), by composite (`s2-rgb`, `s2-false-color`, ...) or by
   1-based band number (`4,3,2`);
2. named bands and composites scale with their sensor's preset: digital numbers -> surface
   reflectance (`gain * DN + offset`) -> the fixed reflectance range `display` mapped linearly to
   0..255, clipped. Unlike the per-image percentile stretch, a fixed range keeps brightness
   comparable between tiles and dates, which is what retrieval needs;
3. numbered bands keep the processor's own `rescale_mode` (per-image stretch by default).

Band order of the stacks the names refer to: Sentinel-2 13 bands B01..B12 with B8A after B08
(the L1C order; L2A stacks that keep B10 use it too), Landsat 8/9 Collection 2 Level-2 SR_B1..SR_B7.
This module holds tables only (no imagery import), so `rs_retrieval.imagery` reads its scalings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .errors import UsageError

SENTINEL2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
LANDSAT_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7")
SENSORS = {"sentinel-2": SENTINEL2_BANDS, "landsat": LANDSAT_BANDS}


@dataclass(frozen=True)
class Scaling:
    """Digital number -> reflectance (`gain * DN + offset`) -> `display` range stretched to 0..255."""

    gain: float
    offset: float
    display: tuple[float, float]
    source: str


#: Scaling presets by name; each is also a `rescale_mode` of `rs_retrieval.imagery`.
SCALINGS = {
    # ESA Sentinel-2 L2A: BOA reflectance = DN / QUANTIFICATION_VALUE (10000); 0..0.3 is the usual true-colour range.
    "s2-l2a": Scaling(1e-4, 0.0, (0.0, 0.3), "Sentinel-2 L2A product spec: reflectance = DN / 10000"),
    # Processing baseline 04.00 and later (25 Jan 2022 on) add BOA_ADD_OFFSET = -1000.
    "s2-l2a-offset": Scaling(1e-4, -0.1, (0.0, 0.3), "Sentinel-2 L2A baseline >= 04.00: (DN - 1000) / 10000"),
    # USGS Landsat 8/9 Collection 2 Level-2 surface reflectance: DN * 0.0000275 - 0.2.
    "landsat-c2l2": Scaling(2.75e-5, -0.2, (0.0, 0.3), "USGS Landsat Collection 2 Level-2: SR = 0.0000275 * DN - 0.2"),
}
DEFAULT_SCALING = {"sentinel-2": "s2-l2a", "landsat": "landsat-c2l2"}


@dataclass(frozen=True)
class Composite:
    sensor: str
    bands: tuple[str, str, str]
    description: str


COMPOSITES = {
    "s2-rgb": Composite("sentinel-2", ("B04", "B03", "B02"), "true colour"),
    "s2-false-color": Composite("sentinel-2", ("B08", "B04", "B03"), "colour infrared: vegetation red"),
    "s2-swir": Composite("sentinel-2", ("B12", "B8A", "B04"), "short-wave infrared: moisture, burn scars"),
    "s2-agriculture": Composite("sentinel-2", ("B11", "B08", "B02"), "crops bright green"),
    "landsat-rgb": Composite("landsat", ("B4", "B3", "B2"), "true colour"),
    "landsat-false-color": Composite("landsat", ("B5", "B4", "B3"), "colour infrared"),
}


@dataclass(frozen=True)
class BandChoice:
    """0-based band indices drawn as R, G, B (or grey) and the rescale mode that goes with them."""

    indices: tuple[int, ...]
    rescale_mode: str | None
    label: str

    @property
    def numbers(self) -> list[int]:
        """1-based band numbers (rasterio's convention, used for scene tiles)."""
        return [index + 1 for index in self.indices]


def _sensor_of(names: Sequence[str]) -> str:
    for sensor, bands in SENSORS.items():
        if all(name in bands for name in names):
            return sensor
    known = ", ".join(f"{sensor}: {','.join(bands)}" for sensor, bands in SENSORS.items())
    raise UsageError(f"bands {','.join(names)} are not all names of one sensor ({known})")


def parse_bands(spec: str | Sequence[str | int] | None, scaling: str | None = None) -> BandChoice | None:
    """A `--bands` value: a composite name, band names (`B04,B03,B02`) or 1-based numbers
    (`4,3,2`), one or three of them; `scaling` overrides the preset that goes with names."""
    if spec is None:
        return None
    items = [
        part
        for item in ([spec] if isinstance(spec, (str, int)) else spec)
        for part in str(item).replace(",", " ").split()
    ]
    if scaling is not None and scaling not in SCALINGS:
        raise UsageError(f"scaling must be one of {sorted(SCALINGS)}, got {scaling!r}")
    if len(items) == 1 and items[0].lower() in COMPOSITES:
        composite = COMPOSITES[items[0].lower()]
        order = SENSORS[composite.sensor]
        indices = tuple(order.index(name) for name in composite.bands)
        return BandChoice(indices, scaling or DEFAULT_SCALING[composite.sensor], items[0].lower())
    if len(items) not in (1, 3):
        raise UsageError(
            f"--bands takes a composite ({', '.join(COMPOSITES)}) or 1 or 3 band names or numbers, got {items}"
        )
    if all(item.isdigit() for item in items):
        numbers = [int(item) for item in items]
        if min(numbers) < 1:
            raise UsageError(f"band numbers are 1-based, got {numbers}")
        return BandChoice(tuple(n - 1 for n in numbers), scaling, ",".join(items))
    names = [item.upper() for item in items]
    sensor = _sensor_of(names)
    return BandChoice(
        tuple(SENSORS[sensor].index(name) for name in names), scaling or DEFAULT_SCALING[sensor], ",".join(names)
    )


def apply_bands(processor, choice: BandChoice | str | None):
    """Set a processor's band selection and scaling (RS processors: their image processor's saved
    `bands`/`rescale_mode`; CLIP-family processors: for this session). Returns the processor."""
    if isinstance(choice, str):
        choice = parse_bands(choice)
    if choice is None:
        return processor
    target = getattr(processor, "image_processor", processor)
    if not hasattr(target, "bands"):  # CLIP-family: the wrapper converts images to RGB itself
        target = processor
    if not hasattr(target, "bands"):
        raise UsageError(
            f"{type(processor).__name__} does not select bands; use the package's processor (load_retrieval_processor)"
        )
    target.bands = list(choice.indices)
    if choice.rescale_mode is not None:
        target.rescale_mode = choice.rescale_mode
    return processor


def describe_bands() -> str:
    """One line per composite and scaling, for --help texts and docs."""
    composites = "; ".join(f"{name} = {','.join(c.bands)}" for name, c in COMPOSITES.items())
    return f"composites: {composites}; scalings: {', '.join(SCALINGS)}"
