"""A tiny AMFMN saved to disk and a few rs_synth images: what the web-app tests serve."""

from pathlib import Path

import numpy as np
import tifffile
import torch
from tiny_methods import TINY_CONFIGS

import rs_retrieval.models  # noqa: F401  (registers the Auto classes)
from rs_retrieval.data.synth import generate_rs_synth
from rs_retrieval.models.amfmn import AMFMNConfig, AMFMNModel, AMFMNProcessor

TINY_AMFMN = {**TINY_CONFIGS["amfmn"], "train_resize": 70}
WORDS = "two three white grey red planes ships parked moored runway harbour beside the a are in of cars trees".split()


def save_tiny_amfmn(folder: Path, seed: int = 0) -> Path:
    """A random tiny AMFMN + processor in `folder` (loadable with AutoModel/AutoProcessor)."""
    vocab = {word: i for i, word in enumerate(WORDS, start=1)} | {"<unk>": len(WORDS) + 1}
    torch.manual_seed(seed)
    model = AMFMNModel(AMFMNConfig(**{**TINY_AMFMN, "vocab_size": len(vocab) + 1})).eval()
    model.save_pretrained(folder)
    AMFMNProcessor.from_config(model.config, vocab).save_pretrained(folder)
    return folder


def synth_images(cache_dir: Path, num_images: int = 12) -> Path:
    """The `images/` folder of an rs_synth release with `num_images` 64-px images (dataset.json beside it)."""
    root = generate_rs_synth(cache_dir, seed=0, train_size=num_images, val_size=0, test_size=0, image_size=64)
    return root / "images"


#: A metrics.json "validation" section as the trainer writes it (values made up for display tests).
VALIDATION_METRICS = {
    "i2t_R@1": 10.0,
    "i2t_R@5": 30.0,
    "i2t_R@10": 50.0,
    "t2i_R@1": 12.5,
    "t2i_R@5": 37.5,
    "t2i_R@10": 62.5,
    "mR": 33.75,
}


def save_tiny_run(run_dir: Path) -> Path:
    """A training-run folder: `model/` with the tiny AMFMN and a metrics.json beside it; returns the model folder."""
    import json

    model_dir = save_tiny_amfmn(run_dir / "model")
    (run_dir / "metrics.json").write_text(
        json.dumps({"selection": "best validation mR", "validation": VALIDATION_METRICS})
    )
    return model_dir


def write_uint16_tiff(path, seed=0):
    """A 3-band 16-bit TIFF with values far above 255 (browsers cannot show it; a plain cast would clip it)."""
    pixels = np.random.default_rng(seed).integers(1000, 40000, (24, 32, 3), dtype=np.uint16)
    tifffile.imwrite(path, pixels)
    return pixels


def write_scene(path: Path, tiles: list, crs: str | None = "EPSG:32633") -> Path:
    """A georeferenced 3-band GeoTIFF mosaic of 2 x 2 equal RGB tiles, 10 m pixels, in UTM 33N by default."""
    import rasterio
    from rasterio.transform import from_origin

    pixels = np.concatenate(
        [np.concatenate([np.asarray(t) for t in tiles[r * 2 : r * 2 + 2]], axis=1) for r in range(2)], axis=0
    )
    profile = dict(driver="GTiff", width=pixels.shape[1], height=pixels.shape[0], count=3, dtype="uint8")
    if crs:
        profile.update(crs=crs, transform=from_origin(500_000.0, 4_000_000.0, 10.0, 10.0))
    with rasterio.open(path, "w", **profile) as out:
        out.write(np.moveaxis(pixels, -1, 0))
    return path


def build_scene_index(model_dir: Path, images: Path, out: Path, crs: str | None = "EPSG:32633") -> Path:
    """An index of the 64-px tiles of a 2 x 2 mosaic of rs_synth images."""
    from PIL import Image

    from rs_retrieval import load_model_and_processor
    from rs_retrieval.index import RetrievalIndex

    tiles = [Image.open(p).convert("RGB") for p in sorted(images.glob("*.png"))[:4]]
    scene = write_scene(out.parent / f"{out.name}_scene.tif", tiles, crs)
    model, processor = load_model_and_processor(str(model_dir))
    RetrievalIndex.build(model, processor, out, scene=scene, tile_size=64, progress=False)
    return out
