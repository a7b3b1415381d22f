"""The one hand-written toy retrieval model of the test suite (no dependency on the real methods).

A mean-colour image encoder and a bag-of-words text encoder with the hinge triplet loss: small
enough to train in seconds on CPU, real enough for the trainer, evaluation and base-class tests.
Tests that need one more feature subclass it (an extra image input, a pretrained tower, a loss
input). Importing this module registers the method `rs_toy_retrieval` (`register_method`; a recipe
loads it with `model.import_modules: [toy_model]`). tests/test_toy_method.py keeps its own toy on
purpose: that test is about what adding a method takes.
"""

from __future__ import annotations

from torch import nn
from transformers import BertTokenizer, PretrainedConfig

from rs_retrieval.models import register_method
from rs_retrieval.models.common.base import RetrievalPreTrainedModel
from rs_retrieval.models.common.losses import hinge_triplet_loss
from rs_retrieval.models.common.processing import RetrievalProcessor, RSImageProcessor
from rs_retrieval.models.common.tokenizer_families import WORDPIECE

#: Rows of the default word-embedding table: room for every toy vocabulary of the tests.
TOY_VOCAB_SIZE = 34


class ToyConfig(PretrainedConfig):
    model_type = "rs_toy_retrieval"

    def __init__(
        self, embed_dim=16, vocab_size=TOY_VOCAB_SIZE, dropout=0.1, margin=0.2, mask_same_image=True, **kwargs
    ):
        self.embed_dim = embed_dim
        self.vocab_size = vocab_size
        self.dropout = dropout
        self.margin = margin
        self.mask_same_image = mask_same_image
        super().__init__(**kwargs)


class ToyModel(RetrievalPreTrainedModel):
    """Mean colour of a 2x2 grid -> MLP; mean of word embeddings (padding ignored); hinge triplet loss."""

    config_class = ToyConfig
    base_model_prefix = "rs_toy_retrieval"

    def __init__(self, config: ToyConfig):
        super().__init__(config)
        self.image_encoder = nn.Sequential(
            nn.Linear(12, 32), nn.ReLU(), nn.Dropout(config.dropout), nn.Linear(32, config.embed_dim)
        )
        self.text_encoder = nn.EmbeddingBag(config.vocab_size, config.embed_dim, mode="mean", padding_idx=0)
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            module.reset_parameters()
        elif isinstance(module, nn.EmbeddingBag):
            nn.init.normal_(module.weight, std=1.0)

    def get_image_features(self, pixel_values):
        return self.image_encoder(nn.functional.adaptive_avg_pool2d(pixel_values, 2).flatten(1))

    def get_text_features(self, input_ids, attention_mask=None):
        return self.text_encoder(input_ids)

    def compute_loss(self, image_outputs, text_outputs, logits_per_image, image_ids=None):
        triplet = hinge_triplet_loss(
            logits_per_image, self.config.margin, image_ids=image_ids if self.config.mask_same_image else None
        )
        return triplet, {"triplet": triplet.detach(), "positive_cosine": logits_per_image.diagonal().mean().detach()}


class ToyProcessor(RetrievalProcessor):
    tokenizer_family = WORDPIECE


register_method(ToyConfig, ToyModel, ToyProcessor)


def toy_processor(
    vocab: dict, image_size: int, processor_class: type = ToyProcessor, **image_options
) -> RetrievalProcessor:
    """A processor of `image_size` px images and a WordPiece tokenizer over `vocab` (word -> id, id 0 = padding)."""
    return processor_class(
        image_processor=RSImageProcessor(size=image_size, **image_options),
        tokenizer=BertTokenizer(vocab=vocab, model_max_length=16),
    )
