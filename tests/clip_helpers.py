"""Tiny random CLIP models, processors and images shared by the CLIP-family tests."""

import numpy as np
import torch
from PIL import Image
from transformers import CLIPConfig

from rs_retrieval.models.clip import CLIPRetrievalModel, build_clip_processor

TINY_CLIP = dict(
    projection_dim=16,
    text_config=dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=77
    ),
    vision_config=dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8
    ),
)


def tiny_clip(seed: int = 0, model_class=CLIPRetrievalModel):
    torch.manual_seed(seed)
    return model_class(CLIPConfig(**TINY_CLIP)).eval(), build_clip_processor(image_size=32)


def random_images(n: int, seed: int = 0, size=(40, 50)) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size[0], size[1], 3), dtype=np.uint8)) for _ in range(n)]
