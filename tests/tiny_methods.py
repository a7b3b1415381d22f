"""Tiny random configurations of the package's methods, one per method, shared by the model
contract tests (`model_contract.py`), the Hub tests and the method test modules."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from rs_retrieval import get_method, list_methods

WORDPIECE = {
    w: i
    for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "ship", "port", "##s", "green", "field"])
}
WORDS = {w: i for i, w in enumerate("ship port green tree field road river building car plane".split(), start=1)} | {
    "<unk>": 11
}
BERT = dict(
    vocab_size=len(WORDPIECE),
    hidden_size=16,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=32,
    max_position_embeddings=16,
)
GRU = dict(
    vocab_size=12,
    word_embed_dim=8,
    text_hidden_dim=10,
    backbone_hidden_sizes=[4, 4, 8, 8],
    backbone_depths=[1, 1, 1, 1],
    backbone_embedding_size=4,
    image_size=64,
)
#: Config arguments of each method at toy size.
TINY_CONFIGS = {
    "amfmn": dict(embed_dim=6, **GRU),
    "galr": dict(
        embed_dim=8,
        num_nodes=4,
        node_dim=12,
        gcn_dims=[6, 3, 5],
        mca_hidden=8,
        mca_heads=2,
        mca_ff=12,
        dynamic_fusion_dim=6,
        **GRU,
    ),
    "msa": dict(
        text_config=BERT,
        vision_config=dict(
            layer_type="bottleneck", hidden_sizes=[8, 8, 16, 16], depths=[1, 1, 1, 1], embedding_size=8
        ),
        hidden_size=16,
        mscmat_heads=2,
        image_size=32,
        max_text_len=8,
    ),
    "cmpagl": dict(
        text_config=BERT,
        vision_config=dict(
            image_size=32,
            patch_size=2,
            embed_dim=8,
            depths=[2, 2],
            num_heads=[2, 2],
            window_size=4,
            drop_path_rate=0.0,
        ),
        fusion_layers=1,
        embed_dim=8,
        gswin_stages=(0, 1),
        itm_k_test=2,
        rerank_batch_size=3,
        max_text_len=8,
    ),
}
#: `--set` overrides that shrink the `<method>_synth` recipes (configs/) to a few seconds of training on 32 px images.
TINY_RECIPE_OVERRIDES = {
    "clip": [
        "model.projection_dim=16",
        "model.text_config={hidden_size: 32, intermediate_size: 64, "
        "num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 77}",
        "model.vision_config={hidden_size: 32, intermediate_size: 64, "
        "num_hidden_layers: 1, num_attention_heads: 2, image_size: 32, patch_size: 8}",
    ],
    "amfmn": [
        "model.image_size=32",
        "processor.options.train_resize=36",
        "model.backbone_hidden_sizes=[8,8,16,16]",
        "model.backbone_embedding_size=8",
        "model.word_embed_dim=16",
        "model.text_hidden_dim=16",
        "model.embed_dim=16",
    ],
    "msa": [
        "model.image_size=32",
        "model.hidden_size=16",
        "model.mscmat_heads=2",
        "model.text_config={hidden_size: 16, num_hidden_layers: 1, "
        "num_attention_heads: 2, intermediate_size: 32, max_position_embeddings: 32}",
        "model.vision_config={hidden_sizes: [8, 8, 16, 16], "
        "depths: [1, 1, 1, 1], embedding_size: 8, layer_type: basic}",
    ],
    # intra_class_mode=scene needs the scene ids the trainer passes to models that take them.
    "cmpagl": [
        "model.embed_dim=8",
        "model.intra_class_mode=scene",
        "model.text_config={hidden_size: 16, num_hidden_layers: 1, "
        "num_attention_heads: 2, intermediate_size: 32, max_position_embeddings: 32}",
        "model.vision_config={image_size: 32, patch_size: 2, embed_dim: "
        "8, depths: [1, 1], num_heads: [2, 2], window_size: 4}",
    ],
}
TINY_RECIPE_OVERRIDES["galr"] = TINY_RECIPE_OVERRIDES["amfmn"] + [
    "model.mca_hidden=16",
    "model.mca_heads=2",
    "model.mca_ff=32",
    "model.dynamic_fusion_dim=16",
]
OBJECT = {"category": "ship", "color": "red", "bbox": [0.1, 0.1, 0.3, 0.2]}


def tiny_config(method: str, **overrides):
    if method not in TINY_CONFIGS:
        raise KeyError(f"no tiny config for method {method!r}: add one to TINY_CONFIGS")
    return get_method(method).config_class(**{**TINY_CONFIGS[method], **overrides})


def token_batch(num_images: int, num_texts: int, length: int, padded_from: int, seed: int = 0, image_size: int = 32):
    """Random pixels [N, 3, S, S] and WordPiece ids (no special tokens) with their mask; text 0 is
    padded (id 0, mask 0) from position `padded_from`."""
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randn(num_images, 3, image_size, image_size, generator=generator)
    ids = torch.randint(5, len(WORDPIECE), (num_texts, length), generator=generator)
    mask = torch.ones(num_texts, length, dtype=torch.long)
    mask[0, padded_from:] = 0
    ids[0, padded_from:] = 0
    return pixels, ids, mask


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
        return get_method(self.config.model_type).processor_class.from_config(
            self.config, self.vocab, **self.processor_options
        )

    def image_columns(self, num_images: int) -> dict:
        return {"objects": [[OBJECT] if i % 2 == 0 else [] for i in range(num_images)]} if self.objects else {}

    def images(self, num_images: int, seed: int = 0) -> list[Image.Image]:
        side = self.config.image_size + 8
        return [
            Image.fromarray(np.random.default_rng(seed + i).integers(0, 255, (side, side, 3), dtype=np.uint8))
            for i in range(num_images)
        ]

    def inputs(self, processor, num_images: int = 2) -> dict:
        """Processor outputs for `num_images` random images and the case's texts."""
        return dict(processor(images=self.images(num_images), text=self.texts, **self.image_columns(num_images)))


def tiny_case(method: str) -> TinyCase:
    config = tiny_config(method)
    if method in ("amfmn", "galr"):
        options = {"object_categories": ["ship", "car"], "object_colors": ["red"]} if method == "galr" else {}
        return TinyCase(config, WORDS, ["ship port", "green field road"], options, objects=method == "galr")
    return TinyCase(
        config, WORDPIECE, ["a ship", "green field port"] if method == "msa" else ["a ship", "green field"]
    )


def package_methods() -> list[str]:
    """The registered methods that the package itself defines with Auto classes (tests may register
    toy methods; the CLIP family keeps plain transformers folders and has its own tests)."""
    return [
        name
        for name in list_methods()
        if get_method(name).model_class.__module__.startswith("rs_retrieval.") and get_method(name).auto_classes
    ]


def tiny_methods() -> dict:
    """name -> (model, processor, texts, extra processor columns for two images)."""
    cases = {name: tiny_case(name) for name in package_methods()}
    return {name: (case.model(), case.processor(), case.texts, case.image_columns(2)) for name, case in cases.items()}


def images(size):
    return [Image.new("RGB", (size + 8, size + 8), (10 + 60 * i, 200 - 50 * i, 30)) for i in range(2)]
