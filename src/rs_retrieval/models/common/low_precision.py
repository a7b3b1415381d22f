"""A retrieval model encoding at bf16 or int8 behind the fp32 contract (`rs_retrieval.precision`
builds it; `docs/precision.md`)."""

from __future__ import annotations

import torch
from torch import nn

from .base import RetrievalPreTrainedModel


class PrecisionModel(nn.Module):
    """A retrieval model encoding at bf16 or int8 behind the fp32 contract (float32 in and out);
    every attribute it does not define is the wrapped model's."""

    def __init__(self, model, precision: str, sessions: dict | None = None):
        super().__init__()
        self.model, self.precision, self.sessions = model, precision, sessions or {}

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.model, name)

    def encode_images(self, pixel_values: torch.Tensor, **image_inputs) -> dict[str, torch.Tensor]:
        inputs = {"pixel_values": pixel_values, **image_inputs}
        if "image_encoder" in self.sessions:
            return _run_session(self.sessions["image_encoder"], inputs)
        return self._in_model_dtype(self.model.encode_images, inputs)

    def encode_texts(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "text_encoder" not in self.sessions:
            return self._in_model_dtype(self.model.encode_texts, inputs)
        if attention_mask is None:
            inputs["attention_mask"] = torch.ones_like(input_ids)
        cache = _run_session(self.sessions["text_encoder"], inputs)
        if "attention_mask" in self.model.text_cache_keys:
            cache["attention_mask"] = inputs["attention_mask"]
        return cache

    def get_image_features(self, pixel_values: torch.Tensor, **image_inputs) -> torch.Tensor:
        return self.encode_images(pixel_values, **image_inputs)["embeds"]

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.encode_texts(input_ids, attention_mask)["embeds"]

    def score(self, image_cache: dict[str, torch.Tensor], text_cache: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cosine scores in float32 from the float32 caches; a pair-dependent score with weights
        (AMFMN's gate, CMPAGL's fusion) in the weights' dtype, returned as float32."""
        if self.precision == "int8" or self.model.score_is_cosine:
            return self.model.score(image_cache, text_cache)
        dtype = self.model.dtype
        cast = lambda cache: {k: v.to(dtype) if v.is_floating_point() else v for k, v in cache.items()}
        return self.model.score(cast(image_cache), cast(text_cache)).float()

    # The contract's forward, on the encoders above (the feature pipelines' path included).
    forward = RetrievalPreTrainedModel.forward
    _single_modality_forward = RetrievalPreTrainedModel._single_modality_forward

    def _in_model_dtype(self, encode, inputs: dict) -> dict[str, torch.Tensor]:
        dtype = self.model.dtype
        inputs = {
            k: v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v
            for k, v in inputs.items()
            if v is not None
        }
        return {k: v.float() if v.is_floating_point() else v for k, v in encode(**inputs).items()}


def _run_session(session, inputs: dict) -> dict[str, torch.Tensor]:
    feed = {node.name: inputs[node.name].detach().cpu().numpy() for node in session.get_inputs()}
    names = [node.name for node in session.get_outputs()]
    return dict(zip(names, (torch.from_numpy(value) for value in session.run(names, feed))))
