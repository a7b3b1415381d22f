"""CLIP-family dual encoders (`transformers` `CLIPModel` / `SiglipModel`) under the retrieval contract.

Checkpoints stay plain `CLIPModel`/`SiglipModel` folders (`model_type` "clip"/"siglip"), so they
load in transformers without this package. Inside the package they are loaded as the
subclasses below, which add the contract of `models/base.py` (`encode_images`, `encode_texts`,
cosine `score`, the CLIP training loss) without changing a single weight name: a folder saved
by either class loads in the other.
"""

from __future__ import annotations

import torch
from transformers import CLIPModel, SiglipModel

from ...losses import clip_contrastive_loss
from ..base import RetrievalPreTrainedModel


class _DualEncoderContract:
    """The retrieval contract on top of a transformers dual encoder's `get_*_features`."""

    image_cache_keys = ("embeds",)
    text_cache_keys = ("embeds",)
    score_is_blockwise = True
    loss_input_names = ()

    def encode_images(self, pixel_values: torch.Tensor, **_) -> dict[str, torch.Tensor]:
        return {"embeds": self.get_image_features(pixel_values=pixel_values).pooler_output}

    def encode_texts(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return {"embeds": self.get_text_features(input_ids=input_ids, attention_mask=attention_mask).pooler_output}

    def compute_loss(self, image_outputs, text_outputs, logits_per_image, image_ids=None):
        """Symmetric InfoNCE with the model's learnable temperature, negatives gathered across processes."""
        return clip_contrastive_loss(image_outputs["embeds"], text_outputs["embeds"], self.logit_scale, image_ids)

    # The contract's forward (pixel_values, input_ids, ..., return_loss, image_ids) -> RetrievalOutput.
    forward = RetrievalPreTrainedModel.forward


class CLIPRetrievalModel(_DualEncoderContract, CLIPModel, RetrievalPreTrainedModel):
    """A `CLIPModel` (RemoteCLIP, GeoRSCLIP, SkyCLIP, OpenAI/LAION CLIP) as a retrieval method."""


class SiglipRetrievalModel(_DualEncoderContract, SiglipModel, RetrievalPreTrainedModel):
    """A `SiglipModel` as a retrieval method (evaluation, search, zero-shot; fine-tuning uses the CLIP loss)."""


#: transformers model_type -> the retrieval class that loads those folders.
DUAL_ENCODER_CLASSES: dict[str, type[RetrievalPreTrainedModel]] = {"clip": CLIPRetrievalModel, "siglip": SiglipRetrievalModel}
_PLAIN_CLASSES = {CLIPModel: CLIPRetrievalModel, SiglipModel: SiglipRetrievalModel}


def as_retrieval_model(model) -> RetrievalPreTrainedModel:
    """The model itself if it already follows the contract; a plain `CLIPModel`/`SiglipModel` is
    viewed as its retrieval subclass, sharing every parameter and buffer (nothing is copied)."""
    if isinstance(model, RetrievalPreTrainedModel):
        return model
    target = _PLAIN_CLASSES.get(type(model))
    if target is None:
        raise TypeError(f"{type(model).__name__} follows neither the retrieval contract nor is a CLIPModel/SiglipModel")
    # A second object over the same module tree (parameters, buffers, hooks): only methods are added.
    adapted = target.__new__(target)
    adapted.__dict__.update(model.__dict__)
    return adapted
