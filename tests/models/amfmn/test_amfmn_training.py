"""Tiny AMFMN and GaLR models learn a toy retrieval task (8 classes: colour x side of a square)
far above chance in a few hundred steps."""

import random

import numpy as np
import pytest
import torch
from PIL import Image

import rs_retrieval.models  # noqa: F401
from rs_retrieval.models.amfmn import AMFMNConfig, AMFMNModel, AMFMNProcessor
from rs_retrieval.models.amfmn_family.tokenization_word import build_vocab
from rs_retrieval.models.galr import GaLRConfig, GaLRModel, GaLRProcessor

pytestmark = pytest.mark.usefixtures("one_thread")

COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 70, 220), "yellow": (230, 210, 40)}
SIDES = ("left", "right")
CLASSES = [(c, s) for c in COLOURS for s in SIDES]
FAMILY = dict(
    word_embed_dim=16,
    text_hidden_dim=32,
    embed_dim=16,
    text_dropout=0.1,
    backbone_hidden_sizes=[8, 8, 16, 16],
    backbone_depths=[1, 1, 1, 1],
    backbone_embedding_size=8,
    image_size=64,
    margin=0.2,
)
#: No training resize or rotation: the random crop of a 64 px image at 64 px is the image.
NO_AUGMENTATION = dict(train_resize=64, train_rotation_degrees=0)


def toy_set(per_class, seed):
    rng = random.Random(seed)
    images, captions, objects, labels = [], [], [], []
    for label, (colour, side) in enumerate(CLASSES):
        for _ in range(per_class):
            pixels = np.random.default_rng(rng.getrandbits(32)).integers(90, 140, (64, 64, 3), dtype=np.uint8)
            size = rng.randint(16, 24)
            x0 = rng.randint(2, 30 - size) if side == "left" else rng.randint(34, 62 - size)
            y0 = rng.randint(2, 62 - size)
            pixels[y0 : y0 + size, x0 : x0 + size] = COLOURS[colour]
            images.append(Image.fromarray(pixels))
            captions.append(
                rng.choice(["A {} square on the {}.", "There is a {} square at the {}.", "{} block, {} side"]).format(
                    colour, side
                )
            )
            objects.append(
                [
                    {
                        "category": "square",
                        "color": colour,
                        "bbox": [x0 / 64, y0 / 64, (x0 + size) / 64, (y0 + size) / 64],
                    }
                ]
            )
            labels.append(label)
    return images, captions, objects, torch.tensor(labels)


def train_and_score(model, processor, steps=400, batch=16, seed=0):
    images, captions, objects, _ = toy_set(16, seed=1)
    train = dict(processor(images=images, text=captions, objects=objects))
    test_images, test_captions, test_objects, labels = toy_set(4, seed=2)
    test = dict(processor(images=test_images, text=test_captions, objects=test_objects))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        rows = torch.randperm(len(captions), generator=generator)[:batch]
        loss = model(**{k: v[rows] for k, v in train.items()}, return_loss=True).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        scores = model(**test).logits_per_image  # [32 images, 32 captions]
    image_to_text = (labels[scores.argmax(1)] == labels).float().mean().item()
    text_to_image = (labels[scores.argmax(0)] == labels).float().mean().item()
    return image_to_text, text_to_image


def _vocab():
    return build_vocab(toy_set(16, seed=1)[1], min_count=1)


def test_tiny_amfmn_learns_toy_retrieval():
    torch.manual_seed(0)
    vocab = _vocab()
    config = AMFMNConfig(vocab_size=len(vocab) + 1, **FAMILY)
    model = AMFMNModel(config)
    i2t, t2i = train_and_score(model, AMFMNProcessor.from_config(config, vocab, **NO_AUGMENTATION))
    assert i2t >= 0.7 and t2i >= 0.7, (i2t, t2i)  # chance: 1/8 class-level R@1 (untrained: 0.13 / 0.19)


def test_tiny_galr_learns_toy_retrieval():
    torch.manual_seed(0)
    vocab = _vocab()
    config = GaLRConfig(
        vocab_size=len(vocab) + 1,
        num_nodes=2,
        node_dim=10,
        gcn_dims=[8, 4, 8],
        mca_hidden=16,
        mca_heads=2,
        mca_ff=32,
        dynamic_fusion_dim=8,
        **FAMILY,
    )
    model = GaLRModel(config)
    processor = GaLRProcessor.from_config(
        config, vocab, object_categories=["square"], object_colors=sorted(COLOURS), **NO_AUGMENTATION
    )
    i2t, t2i = train_and_score(model, processor)
    assert i2t >= 0.7 and t2i >= 0.7, (i2t, t2i)
