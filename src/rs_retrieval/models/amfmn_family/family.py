"""What AMFMN and its fork GaLR share: config fields, the ResNet + MVSA visual branch, the
skip-thought text branch, the hinge triplet loss (fixed or dynamic margin) and the processor.

Defaults are the reference (checkpoint-faithful) numbers for RSITMD (docs/methods/amfmn.md#configuration):
vocabulary of 1,349 words + padding, skip-thought 620/2400, 512-d embeddings, ResNet-18,
MVSA C = 3 / O = 1, 256 px inputs, sum-hinge triplet loss with margin 0.2.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from transformers import PretrainedConfig
from transformers import initialization as init

from ..common.base import RetrievalPreTrainedModel
from ..common.checks import check_all
from ..common.losses import dynamic_margin, hinge_triplet_loss
from ..common.processing import RetrievalProcessor
from .mvsa import MVSA, ExtractFeature, check_image_size, mvsa_map_size
from .skipthought import SkipThoughtTextEncoder
from .skipthought_weights import load_skipthought_into
from .word_tokenizer_family import WORD

#: Augmentation fields that configs saved before issue 8 carried; the processor owns them now.
LEGACY_AUGMENTATION_FIELDS = ("train_resize", "train_rotation_degrees")
#: AMFMN's training resize (278) relative to its input side (256), before the random crop.
TRAIN_RESIZE_RATIO = 278 / 256


class AMFMNFamilyConfig(PretrainedConfig):
    """Fields shared by AMFMN and GaLR: text encoder, visual branch and loss.

    Args:
        vocab_size: word ids including padding id 0 (RSITMD 1,350; RSICD 1,226).
        word_embed_dim, text_hidden_dim, text_dropout: skip-thought embedding, GRU width and
            variational dropout.
        embed_dim: joint embedding size (Linear(text_hidden_dim -> embed_dim), ResNet `v_g`).
        backbone_*: the ResNet trunk (ResNet-18 by default).
        multiscale_in, multiscale_out: MVSA channels C and O.
        image_size: the only accepted input side (MVSA's linear layer depends on it).
        margin, max_violation: hinge triplet loss (sum over negatives unless `max_violation`).
        dynamic_margin: None, or {"gamma": float, "beta": float} for the paper's variable margin
            (needs a prior caption-similarity matrix at training time).

    Training augmentation is the processor's (`AMFMNFamilyProcessor`); `train_resize` and
    `train_rotation_degrees` of configs saved by earlier versions are dropped on load.
    """

    def __init__(
        self,
        vocab_size: int = 1350,
        word_embed_dim: int = 620,
        text_hidden_dim: int = 2400,
        text_dropout: float = 0.25,
        embed_dim: int = 512,
        backbone_layer_type: str = "basic",
        backbone_depths: tuple[int, ...] = (2, 2, 2, 2),
        backbone_hidden_sizes: tuple[int, ...] = (64, 128, 256, 512),
        backbone_embedding_size: int = 64,
        multiscale_in: int = 3,
        multiscale_out: int = 1,
        image_size: int = 256,
        margin: float = 0.2,
        max_violation: bool = False,
        dynamic_margin: dict | None = None,
        **kwargs,
    ):
        self.vocab_size = int(vocab_size)
        self.word_embed_dim = int(word_embed_dim)
        self.text_hidden_dim = int(text_hidden_dim)
        self.text_dropout = float(text_dropout)
        self.embed_dim = int(embed_dim)
        self.backbone_layer_type = backbone_layer_type
        self.backbone_depths = list(backbone_depths)
        self.backbone_hidden_sizes = list(backbone_hidden_sizes)
        self.backbone_embedding_size = int(backbone_embedding_size)
        self.multiscale_in = int(multiscale_in)
        self.multiscale_out = int(multiscale_out)
        self.image_size = int(image_size)
        self.margin = float(margin)
        self.max_violation = bool(max_violation)
        self.dynamic_margin = dict(dynamic_margin) if dynamic_margin is not None else None
        for legacy_field in LEGACY_AUGMENTATION_FIELDS:
            kwargs.pop(legacy_field, None)
        self._validate_family()
        super().__init__(**kwargs)

    def _validate_family(self) -> None:
        mvsa_map_size(self.image_size)
        if self.vocab_size < 2:
            raise ValueError(f"vocab_size must count padding id 0 plus at least '<unk>', got {self.vocab_size}")
        if len(self.backbone_hidden_sizes) != 4 or len(self.backbone_depths) != 4:
            raise ValueError(
                "the ResNet trunk needs 4 stages; got hidden sizes "
                f"{self.backbone_hidden_sizes}, depths {self.backbone_depths}"
            )
        if self.dynamic_margin is not None and set(self.dynamic_margin) != {"gamma", "beta"}:
            raise ValueError(
                f"dynamic_margin must be None or {{'gamma': float, 'beta': float}}, got {self.dynamic_margin}"
            )


class AMFMNFamilyPreTrainedModel(RetrievalPreTrainedModel):
    """What AMFMN and GaLR share: ResNet + MVSA visual branch, skip-thought text branch, hinge
    triplet loss (fixed or dynamic margin), initialisation and pretrained-tower loading.

    Subclasses call `_build_branches(config)` in `__init__` before `post_init()`.
    """

    config_class = AMFMNFamilyConfig
    vision_tower_path = "extract_feature.backbone"
    text_tower_path = "text_feature.seq2vec"
    loss_input_names = ("prior_similarity",)  # [B, B] caption prior of the dynamic-margin loss

    @property
    def uses_caption_prior(self) -> bool:
        return self.config.dynamic_margin is not None

    def _build_branches(self, config: AMFMNFamilyConfig) -> None:
        self.extract_feature = ExtractFeature(config)
        self.mvsa = MVSA(config)
        self.text_feature = SkipThoughtTextEncoder(
            config.vocab_size, config.word_embed_dim, config.text_hidden_dim, config.embed_dim, config.text_dropout
        )

    def _init_weights(self, module: nn.Module) -> None:
        """PyTorch's default initialisation (the reference code's, for everything not pretrained)."""
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                bound = 1.0 / math.sqrt(module.weight[0].numel())
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight)
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                init.zeros_(module.weight[module.padding_idx])

    def global_visual_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """F_v = MVSA(ResNet(image)): [B, embed_dim], not normalised."""
        check_image_size(pixel_values, self.config.image_size)
        return self.mvsa(*self.extract_feature(pixel_values))

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Caption features [B, embed_dim] (>= 0). Lengths come from the non-zero ids, as in the
        reference code, so `attention_mask` is not needed (padding must be id 0, on the right);
        when given it must agree with that padding."""
        if attention_mask is not None:
            check_all(
                attention_mask.bool() == (input_ids != 0),
                "attention_mask disagrees with the id-0 padding: AMFMN/GaLR "
                "captions must be right-padded with id 0 (RSWordTokenizer)",
            )
        return self.text_feature(input_ids)

    def compute_loss(self, image_outputs, text_outputs, logits_per_image, image_ids=None, prior_similarity=None):
        """Sum-hinge triplet loss of the reference code (hardest negative if `max_violation`).

        With `config.dynamic_margin` = {gamma, beta}, the margin of pair (i, j) is the paper's
        alpha(P[i, j]) for `prior_similarity` P [B, B] (caption j against image i's captions, see
        `rs_retrieval.training.caption_prior.CaptionPriorSimilarity`). `image_ids` masks texts of the same image
        (the reference does not: pass None to reproduce it).
        """
        margin = self.config.margin
        if self.config.dynamic_margin is not None:
            if prior_similarity is None:
                raise ValueError(
                    "config.dynamic_margin is set: pass prior_similarity [B, B] "
                    "(see rs_retrieval.training.caption_prior.CaptionPriorSimilarity)"
                )
            if tuple(prior_similarity.shape) != tuple(logits_per_image.shape):
                raise ValueError(
                    "prior_similarity must have the score shape "
                    f"{tuple(logits_per_image.shape)}, got {tuple(prior_similarity.shape)}"
                )
            margin = dynamic_margin(prior_similarity.to(logits_per_image), **self.config.dynamic_margin)
        loss = hinge_triplet_loss(logits_per_image, margin, self.config.max_violation, image_ids)
        return loss, {"triplet": loss.detach()}

    @classmethod
    def from_pretrained_towers(
        cls,
        config,
        vision_model_name_or_path=None,
        text_model_name_or_path=None,
        vocab=None,
        allow_pickle=False,
        **kwargs,
    ):
        """A new model whose ResNet starts from a transformers `ResNetModel` (local dir or Hub id)
        and whose text encoder starts from the public skip-thought uni-skip files.

        `text_model_name_or_path` is the folder with `uni_skip.npz`, `utable.npy` and
        `dictionary.txt`; `vocab` (a `word2idx` dict or a reference `vocab.json` path) picks the
        embedding rows. `allow_pickle` permits the object-array `utable.npy` of the original
        release (a pickle: only for files you trust).
        """
        model = super().from_pretrained_towers(config, vision_model_name_or_path=vision_model_name_or_path, **kwargs)
        if text_model_name_or_path is not None:
            if vocab is None:
                raise ValueError(
                    "loading skip-thought weights needs `vocab` (word2idx "
                    "dict or vocab.json path) to pick embedding rows"
                )
            load_skipthought_into(
                model.text_feature.seq2vec, text_model_name_or_path, vocab, allow_pickle=allow_pickle
            )
        return model


class AMFMNFamilyProcessor(RetrievalProcessor):
    """`RSImageProcessor` + the reference word-level tokenizer. Training views: resize to 278/256 of the input side,
    rotate U[0, `train_rotation_degrees`], random crop (docs/methods/amfmn.md#image-pipeline; AMFMN's
    `RandomRotation(0, 90)` is a no-op, so no rotation; GaLR rotates)."""

    tokenizer_family = WORD
    train_rotation_degrees: float = 0.0

    @classmethod
    def image_settings(cls, config) -> dict:
        return {
            "resample": "bilinear",
            "train_resize": round(config.image_size * TRAIN_RESIZE_RATIO),
            "train_rotation_degrees": cls.train_rotation_degrees,
        }
