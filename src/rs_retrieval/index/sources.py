"""What an index is built from: image files (a folder or a dataset split) or the tiles of one scene.

A source lists items in a fixed order, gives each a content key (the file's SHA-1, or the scene's
SHA-1 plus the tile window and bands), so an update or a resumed build encodes only what is new,
and loads items in a form the model's processor converts by the package's image rule
(`rs_retrieval.imagery`: 16-bit and float bands rescaled): a file path, or a tile's pixel array.
Scene tiles are read with windowed reads (rasterio): the whole raster is never in memory.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import RSRetrievalError
from ..optional import require
from ..search.folder_search import list_images
from .geoparquet import corners_box, footprint_columns


class UnreadableItemError(RSRetrievalError, OSError):
    """One file or tile could not be read (skipped with a warning unless the build is strict)."""


class SceneError(RSRetrievalError, ValueError):
    """Bad scene or tiling options (tile larger than the raster, band out of range ...)."""


def file_sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


class FileSource:
    """Image files, keyed by the SHA-1 of their bytes (identical files share one encoding)."""

    kind = "files"

    def __init__(self, paths: list[Path], description: dict, root: Path | None = None):
        self.paths = [Path(p).resolve() for p in paths]
        self.description = description
        #: Ids in the embeddings parts are paths relative to this folder.
        self.root = (
            Path(root).resolve()
            if root
            else Path(os.path.commonpath([p.parent for p in self.paths]))
            if self.paths
            else Path()
        )

    @classmethod
    def from_folder(cls, folder: str | Path, recursive: bool = False) -> FileSource:
        return cls(
            list_images(folder, recursive),
            {"kind": "files", "images": str(Path(folder).resolve()), "recursive": recursive},
            root=folder,
        )

    @classmethod
    def from_dataset(cls, name: str, split: str = "test", **options) -> FileSource:
        """The image files of a dataset split (`rs_synth`, or a local RSITMD/RSICD/... folder;
        `options` go to `load_dataset`, e.g. data_dir=, or image_size= for rs_synth)."""
        import datasets

        from ..data import load_dataset

        split_data = load_dataset(name, split=split, **options)
        paths = [row["path"] for row in split_data.cast_column("image", datasets.Image(decode=False))["image"]]
        return cls(
            [Path(p) for p in paths],
            {"kind": "files", "dataset": name, "split": split, "options": {k: str(v) for k, v in options.items()}},
        )

    def __len__(self) -> int:
        return len(self.paths)

    def key(self, index: int) -> str:
        try:
            return file_sha1(self.paths[index])
        except OSError as err:
            raise UnreadableItemError(f"cannot read {self.paths[index]}: {err}") from err

    def load(self, index: int) -> str:
        return str(self.paths[index])

    def processor_row(self, index: int) -> dict[str, list]:
        """What the processor reads for one item (the file name lets GaLR find its local graph)."""
        return {"image": [self.load(index)], "filename": [self.paths[index].name]}

    def name(self, index: int) -> str:
        return str(self.paths[index])

    def metadata_columns(self, rows: list[int], keys: list[str]) -> dict[str, list]:
        return {"path": [str(self.paths[i]) for i in rows], "file_hash": keys}

    def ids(self, rows) -> list[str]:
        """Stable ids (the embeddings parts' `id`): paths relative to the images folder."""
        return [self.paths[i].relative_to(self.root).as_posix() for i in rows]

    def embedding_columns(self, rows: list[int]) -> dict[str, list]:
        """GeoParquet columns (`geoparquet.COLUMNS`): the id only, images have no footprint."""
        return {"id": self.ids(rows)}


@dataclass(frozen=True)
class Tile:
    col_off: int
    row_off: int
    width: int
    height: int

    @property
    def tile_id(self) -> str:
        return f"x{self.col_off}_y{self.row_off}"


def _offsets(length: int, tile: int, stride: int) -> list[int]:
    """Tile starts along one axis; the last tile is moved back to end at the raster's edge."""
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


class SceneSource:
    """Square tiles of one raster (GeoTIFF / COG / any GDAL raster), read window by window."""

    kind = "scene"

    def __init__(
        self, path: str | Path, tile_size: int = 256, stride: int | None = None, bands: list[int] | None = None
    ):
        rasterio = require("rasterio", "geo", "georeferenced scenes")
        self.path = Path(path).resolve()
        if not self.path.is_file():
            raise SceneError(f"scene {self.path} does not exist")
        self.tile_size, self.stride = tile_size, tile_size if stride is None else stride
        if tile_size < 1 or self.stride < 1:
            raise SceneError(f"tile size and stride must be >= 1, got {tile_size} and {self.stride}")
        try:
            self._handle = rasterio.open(self.path)
        except rasterio.errors.RasterioIOError as err:
            raise SceneError(f"cannot open scene {self.path}: {err}") from err
        data = self._dataset
        if tile_size > min(data.width, data.height):
            raise SceneError(f"tile size {tile_size} is larger than the scene ({data.width} x {data.height} px)")
        count = data.count
        self.bands = list(bands) if bands else ([1, 2, 3] if count >= 3 else [1])
        if any(b < 1 or b > count for b in self.bands) or len(self.bands) not in (1, 3):
            raise SceneError(f"bands must be 1 or 3 band numbers in 1..{count}, got {self.bands}")
        self.crs = data.crs.to_string() if data.crs else None
        self.tiles = [
            Tile(col, row, tile_size, tile_size)
            for row in _offsets(data.height, tile_size, self.stride)
            for col in _offsets(data.width, tile_size, self.stride)
        ]
        self._scene_hash = file_sha1(self.path)
        self.description = {
            "kind": "scene",
            "scene": str(self.path),
            "tile_size": tile_size,
            "stride": self.stride,
            "bands": self.bands,
            "crs": self.crs,
            "georeferenced": self.crs is not None,
            "width": data.width,
            "height": data.height,
            "transform": list(data.transform)[:6],
            "dtype": data.dtypes[0],
            "scene_sha1": self._scene_hash,
        }

    def __getstate__(self):  # the open raster stays in its process; a Ray worker reopens it
        return {**self.__dict__, "_handle": None}

    @property
    def _dataset(self):
        if self._handle is None:
            import rasterio

            self._handle = rasterio.open(self.path)
        return self._handle

    def __len__(self) -> int:
        return len(self.tiles)

    def key(self, index: int) -> str:
        tile = self.tiles[index]
        return f"{self._scene_hash}:{tile.col_off},{tile.row_off},{tile.width},{tile.height}:{json.dumps(self.bands)}"

    def name(self, index: int) -> str:
        return f"{self.path.name} tile {self.tiles[index].tile_id}"

    def read_window(self, tile: Tile) -> np.ndarray:
        """[H, W, C] pixels of one window, in the raster's dtype."""
        from rasterio.windows import Window

        return np.moveaxis(
            self._dataset.read(self.bands, window=Window(tile.col_off, tile.row_off, tile.width, tile.height)), 0, -1
        )

    def load(self, index: int) -> np.ndarray:
        try:
            return self.read_window(self.tiles[index])
        except Exception as err:  # GDAL reports damaged blocks as several exception types
            raise UnreadableItemError(f"cannot read {self.name(index)}: {err}") from err

    def processor_row(self, index: int) -> dict[str, list]:
        return {"image": [self.load(index)]}

    def _native_bounds(self, tiles: list[Tile]) -> list[tuple]:
        """(left, bottom, right, top) of each window in the scene's CRS, or in pixels (col, row) without one."""
        from rasterio.windows import Window, bounds

        if self.crs is None:
            return [(t.col_off, t.row_off + t.height, t.col_off + t.width, t.row_off) for t in tiles]
        return [
            tuple(map(float, bounds(Window(t.col_off, t.row_off, t.width, t.height), self._dataset.transform)))
            for t in tiles
        ]

    def metadata_columns(self, rows: list[int], keys: list[str]) -> dict[str, list]:
        tiles = [self.tiles[i] for i in rows]
        native = self._native_bounds(tiles)
        return {
            "tile_id": [t.tile_id for t in tiles],
            "file_hash": keys,
            "window": [[t.col_off, t.row_off, t.width, t.height] for t in tiles],
            "bounds": [list(map(float, b)) for b in native],
            "crs": [self.crs] * len(tiles),
            "bounds_wgs84": wgs84_bounds(native, self.crs),
        }

    def ids(self, rows) -> list[str]:
        """Stable ids (the embeddings parts' `id`): `{file name}/{col_off}_{row_off}_{width}_{height}`."""
        return [
            f"{self.path.name}/{t.col_off}_{t.row_off}_{t.width}_{t.height}" for t in (self.tiles[i] for i in rows)
        ]

    def embedding_columns(self, rows: list[int]) -> dict[str, list]:
        """GeoParquet columns (`geoparquet.COLUMNS`) with the tiles' footprints."""
        tiles = [self.tiles[i] for i in rows]
        return {
            "id": self.ids(rows),
            "item_id": [self.path.name] * len(tiles),
            "source_crs": [self.crs] * len(tiles),
            "window": [
                {"col_off": t.col_off, "row_off": t.row_off, "width": t.width, "height": t.height} for t in tiles
            ],
            **footprint_columns(wgs84_corners(self._native_bounds(tiles), self.crs)),
        }


def wgs84_corners(bounds: list, crs: str | None) -> list[list[tuple[float, float]] | None]:
    """Each (left, bottom, right, top) box's 4 corners as (lon, lat), transformed in one batch."""
    if crs is None or not bounds:
        return [None] * len(bounds)
    from rasterio.warp import transform

    xs = [x for left, bottom, right, top in bounds for x in (left, right, right, left)]
    ys = [y for left, bottom, right, top in bounds for y in (bottom, bottom, top, top)]
    lons, lats = transform(crs, "EPSG:4326", xs, ys)
    return [list(zip(lons[i : i + 4], lats[i : i + 4])) for i in range(0, len(lons), 4)]


def wgs84_bounds(bounds: list, crs: str | None) -> list[list[float] | None]:
    return [corners_box(corners) for corners in wgs84_corners(bounds, crs)]
