"""A tiny learnable retrieval problem for the trainer tests (no dependency on the real methods).

Images are two-colour 16 px squares (top colour from one palette, bottom colour from another);
captions name both colours. A mean-colour image encoder and a bag-of-words text encoder can learn
the task in a few hundred steps on CPU, and unseen colour combinations in the validation split
measure whether retrieval really improved. The model is the suite's toy (`toy_model.py`); importing
this module registers it as `rs_toy_retrieval` (the multi-process test imports it through the
recipe's `model.import_modules`).
"""

from __future__ import annotations

import itertools
import random

import datasets
import numpy as np
import torch
from PIL import Image
from toy_model import ToyConfig, ToyModel, ToyProcessor  # noqa: F401  (the trainer tests import them from here)
from toy_model import toy_processor as make_toy_processor

TOP = {
    "red": (220, 30, 30),
    "green": (30, 200, 40),
    "blue": (30, 40, 220),
    "yellow": (230, 220, 30),
    "purple": (140, 30, 170),
    "orange": (240, 140, 20),
}
BOTTOM = {
    "white": (245, 245, 245),
    "black": (15, 15, 15),
    "gray": (128, 128, 128),
    "cyan": (30, 220, 220),
    "pink": (250, 150, 190),
    "brown": (120, 70, 20),
}
TEMPLATES = (
    "a {} roof above {} ground",
    "{} buildings over a {} field",
    "the {} area and the {} area",
    "{} on top with {} below",
    "some {} next to some {}",
)
FILLERS = sorted({w for t in TEMPLATES for w in t.replace("{}", "").split()})
VOCAB = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *TOP, *BOTTOM, *FILLERS])}
IMAGE_SIZE = 16


def toy_processor() -> ToyProcessor:
    return make_toy_processor(
        VOCAB, IMAGE_SIZE, image_mean=(0.5,) * 3, image_std=(0.5,) * 3, train_hflip=True, train_rotation_degrees=10
    )


def _image(top: str, bottom: str, rng: np.random.Generator) -> Image.Image:
    pixels = np.zeros((IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.float32)
    pixels[: IMAGE_SIZE // 2] = TOP[top]
    pixels[IMAGE_SIZE // 2 :] = BOTTOM[bottom]
    pixels += rng.normal(0, 12, pixels.shape)
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def toy_dataset_dict(num_val: int = 8, seed: int = 0, with_val: bool = True) -> datasets.DatasetDict:
    """One image per (top, bottom) colour pair; `num_val` held-out pairs form `val` (or stay in train)."""
    rng = np.random.default_rng(seed)
    pairs = list(itertools.product(TOP, BOTTOM))
    random.Random(seed).shuffle(pairs)
    rows = {"image": [], "filename": [], "image_id": [], "captions": [], "scene": [], "keywords": []}
    for image_id, (top, bottom) in enumerate(pairs):
        rows["image"].append(_image(top, bottom, rng))
        rows["filename"].append(f"{top}{bottom}_{image_id}.png")
        rows["image_id"].append(image_id)
        rows["captions"].append([t.format(top, bottom) for t in TEMPLATES])
        rows["scene"].append(list(TOP).index(top))
        rows["keywords"].append([top, bottom])
    full = datasets.Dataset.from_dict(
        rows,
        features=datasets.Features(
            {
                "image": datasets.Image(),
                "filename": datasets.Value("string"),
                "image_id": datasets.Value("int32"),
                "captions": datasets.List(datasets.Value("string"), length=5),
                "scene": datasets.ClassLabel(names=list(TOP)),
                "keywords": datasets.List(datasets.Value("string")),
            }
        ),
    )
    if not with_val:
        return datasets.DatasetDict({"train": full})
    return datasets.DatasetDict({"train": full.select(range(num_val, len(full))), "val": full.select(range(num_val))})


def brute_force_metrics(model, processor, dataset, batch_size: int = 64) -> dict:
    """R@1/5/10 and mR of the 5-captions-per-image protocol, computed pair by pair (test reference)."""
    model.eval()
    with torch.no_grad():
        images = model.get_image_features(**processor.image_inputs({"image": list(dataset["image"])}))
        captions = [c for caps in dataset["captions"] for c in caps]
        texts = model.get_text_features(**processor.text_inputs(captions))
        scores = model.similarity(images, texts)
    n = len(dataset)
    i2t_ranks = []
    for i in range(n):
        order = scores[i].argsort(descending=True).tolist()
        i2t_ranks.append(min(order.index(5 * i + k) for k in range(5)))
    t2i_ranks = []
    for j in range(5 * n):
        order = scores[:, j].argsort(descending=True).tolist()
        t2i_ranks.append(order.index(j // 5))
    metrics = {}
    for name, ranks in (("i2t", i2t_ranks), ("t2i", t2i_ranks)):
        for k in (1, 5, 10):
            metrics[f"{name}_R@{k}"] = 100.0 * sum(r < k for r in ranks) / len(ranks)
    metrics["mR"] = sum(metrics.values()) / 6
    return metrics


def toy_evaluate(model, processor, dataset, batch_size):
    return brute_force_metrics(model, processor, dataset, batch_size)
