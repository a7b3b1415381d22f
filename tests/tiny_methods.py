"""Tiny random configurations of the package's methods, one per method, shared by the model
contract tests (`model_contract.py`), the Hub tests and the method test modules."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from rs_retrieval import get_method, list_methods
from rs_retrieval.models.amfmn import AMFMNConfig
from rs_retrieval.models.cmpagl import CMPAGLConfig
from rs_retrieval.models.common.towers import resnet_config
from rs_retrieval.models.galr import GaLRConfig
from rs_retrieval.models.msa import MSAConfig

WORDPIECE = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "ship", "port", "##s", "green", "field"])}
WORDS = {w: i for i, w in enumerate("ship port green tree field road river building car plane".split(), start=1)} | {"<unk>": 11}
BERT = dict(vocab_size=len(WORDPIECE), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, max_position_embeddings=16)
GRU = dict(vocab_size=12, word_embed_dim=8, text_hidden_dim=10, backbone_hidden_sizes=[4, 4, 8, 8], backbone_depths=[1, 1, 1, 1],
           backbone_embedding_size=4, image_size=64)
SWIN = dict(image_size=32, patch_size=2, embed_dim=8, depths=[2, 2], num_heads=[2, 2], window_size=4)
OBJECT = {"category": "ship", "color": "red", "bbox": [0.1, 0.1, 0.3, 0.2]}


@dataclass
class TinyCase:
    """A method at toy size: its config, a vocabulary, captions, processor options and the extra
    per-image columns its processor reads (GaLR's objects)."""

    config: object
    vocab: dict
    texts: list[str]
    processor_options: dict = field(default_factory=dict)
    objects: bool = False

    def model(self):
        torch.manual_seed(0)
        return get_method(self.config.model_type).model_class(self.config).eval()

    def processor(self):
        return get_method(self.config.model_type).processor_class.from_config(self.config, self.vocab, **self.processor_options)

    def image_columns(self, num_images: int) -> dict:
        return {"objects": [[OBJECT] if i % 2 == 0 else [] for i in range(num_images)]} if self.objects else {}

    def images(self, num_images: int, seed: int = 0) -> list[Image.Image]:
        side = self.config.image_size + 8
        return [Image.fromarray(np.random.default_rng(seed + i).integers(0, 255, (side, side, 3), dtype=np.uint8)) for i in range(num_images)]

    def inputs(self, processor, num_images: int = 2) -> dict:
        """Processor outputs for `num_images` random images and the case's texts."""
        return dict(processor(images=self.images(num_images), text=self.texts, **self.image_columns(num_images)))


def tiny_case(method: str) -> TinyCase:
    if method == "amfmn":
        return TinyCase(AMFMNConfig(embed_dim=6, **GRU), WORDS, ["ship port", "green field road"])
    if method == "galr":
        config = GaLRConfig(embed_dim=8, num_nodes=4, node_dim=12, gcn_dims=[6, 3, 5], mca_hidden=8, mca_heads=2, mca_ff=12, dynamic_fusion_dim=6, **GRU)
        return TinyCase(config, WORDS, ["ship port", "green field road"], {"object_categories": ["ship", "car"], "object_colors": ["red"]}, objects=True)
    if method == "msa":
        vision = resnet_config("resnet50", hidden_sizes=[8, 8, 16, 16], depths=[1, 1, 1, 1], embedding_size=8)
        return TinyCase(MSAConfig(text_config=BERT, vision_config=vision, hidden_size=16, mscmat_heads=2, image_size=32, max_text_len=8), WORDPIECE, ["a ship", "green field port"])
    if method == "cmpagl":
        config = CMPAGLConfig(text_config=BERT, vision_config=SWIN, fusion_layers=1, embed_dim=8, gswin_stages=(0, 1), itm_k_test=2, max_text_len=8)
        return TinyCase(config, WORDPIECE, ["a ship", "green field"])
    raise KeyError(f"no tiny case for method {method!r}: add one here")


def package_methods() -> list[str]:
    """The registered methods that the package itself defines (tests may register toy methods)."""
    return [name for name in list_methods() if get_method(name).model_class.__module__.startswith("rs_retrieval.")]
