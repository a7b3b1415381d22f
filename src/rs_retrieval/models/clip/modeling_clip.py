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

from ..common.base import RetrievalPreTrainedModel
from ..common.losses import clip_contrastive_loss


class _DualEncoderContract:
    """The retrieval contract on top of a transformers dual encoder's `get_*_features`."""

    image_cache_keys = ("embeds",)
    text_cache_keys = ("embeds",)
    score_is_blockwise = True
    loss_input_names = ()

    def encode_images(self, pixel_values: torch.Tensor, **_) -> dict[str, torch.Tensor]:
        return {"embeds": self.get_image_features(pixel_values=pixel_values).pooler_output}

    def encode_texts(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        return {"embeds": self.get_text_features(input_ids=input_ids, attention_mask=attention_mask).pooler_output}

    #: Per tower: (sub-config attribute, state-dict prefixes) copied by `from_pretrained_towers`.
    _towers = {
        "vision": ("vision_config", ("vision_model.", "visual_projection.")),
        "text": ("text_config", ("text_model.", "text_projection.", "logit_scale", "logit_bias")),
    }

    @classmethod
    def from_pretrained_towers(
        cls, config, vision_model_name_or_path=None, text_model_name_or_path=None, vocab=None, **kwargs
    ):
        """A model of `config` whose image and/or text tower (with its projection; the text side
        also brings `logit_scale`) come from saved CLIP-family folders, e.g. a converted GeoRSCLIP.
        The recipe's tower config must equal the folder's: a different activation or size would
        load without complaint and compute something else."""
        model = cls(config, **kwargs)
        for tower, source in (("vision", vision_model_name_or_path), ("text", text_model_name_or_path)):
            if source is None:
                continue
            attribute, prefixes = cls._towers[tower]
            pretrained = cls.from_pretrained(source)
            ignored = {"dtype", "torch_dtype", "transformers_version", "_name_or_path", "architectures"}
            ours, theirs = getattr(config, attribute).to_dict(), getattr(pretrained.config, attribute).to_dict()
            different = sorted(k for k in set(ours) | set(theirs) if k not in ignored and ours.get(k) != theirs.get(k))
            if different or config.projection_dim != pretrained.config.projection_dim:
                details = (
                    ", ".join(f"{k}: recipe {ours.get(k)!r} vs {theirs.get(k)!r}" for k in different)
                    or "projection_dim"
                )
                raise ValueError(
                    f"{source}: its {tower} tower differs from the recipe's "
                    f"config ({details}); set model.{attribute} to match"
                )
            weights = {k: v for k, v in pretrained.state_dict().items() if k.startswith(prefixes)}
            model.load_state_dict(weights, strict=False)
        return model

    def compute_loss(self, image_outputs, text_outputs, logits_per_image, image_ids=None):
        """Symmetric InfoNCE with the model's learnable temperature, negatives gathered across processes."""
        return clip_contrastive_loss(image_outputs["embeds"], text_outputs["embeds"], self.logit_scale, image_ids)

    # The contract's forward (pixel_values, input_ids, ..., return_loss, image_ids) -> RetrievalOutput.
    forward = RetrievalPreTrainedModel.forward

    def save_pretrained(self, save_directory, **kwargs):
        """Saved as the plain transformers class (`architectures: ["CLIPModel"]`), so tools that
        read `architectures` never look for a class of this package."""
        plain = _view_as(self, _PLAIN_OF[type(self)])
        return plain.save_pretrained(save_directory, **kwargs)


class CLIPRetrievalModel(_DualEncoderContract, CLIPModel, RetrievalPreTrainedModel):
    """A `CLIPModel` (RemoteCLIP, GeoRSCLIP, SkyCLIP, OpenAI/LAION CLIP) as a retrieval method."""


class SiglipRetrievalModel(_DualEncoderContract, SiglipModel, RetrievalPreTrainedModel):
    """A `SiglipModel` as a retrieval method (evaluation, search, zero-shot; fine-tuning uses the CLIP loss)."""


#: transformers model_type -> the retrieval class that loads those folders.
DUAL_ENCODER_CLASSES: dict[str, type[RetrievalPreTrainedModel]] = {
    "clip": CLIPRetrievalModel,
    "siglip": SiglipRetrievalModel,
}
_PLAIN_CLASSES = {CLIPModel: CLIPRetrievalModel, SiglipModel: SiglipRetrievalModel}
_PLAIN_OF = {retrieval: plain for plain, retrieval in _PLAIN_CLASSES.items()}


def _view_as(model, cls):
    """A second object of class `cls` over the same module tree (parameters, buffers, hooks)."""
    view = cls.__new__(cls)
    view.__dict__.update(model.__dict__)
    return view


def as_retrieval_model(model) -> RetrievalPreTrainedModel:
    """The model itself if it already follows the contract; a plain `CLIPModel`/`SiglipModel` is
    viewed as its retrieval subclass, sharing every parameter and buffer (nothing is copied)."""
    if (
        isinstance(model, RetrievalPreTrainedModel) or getattr(model, "precision", None) is not None
    ):  # or `rs_retrieval.precision`'s wrapper of one
        return model
    target = _PLAIN_CLASSES.get(type(model))
    if target is None:
        raise TypeError(
            f"{type(model).__name__} follows neither the retrieval contract nor is a CLIPModel/SiglipModel"
        )
    return _view_as(model, target)
