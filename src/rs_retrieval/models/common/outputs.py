"""Output dataclass shared by every retrieval model (the CLIP-style contract)."""

from dataclasses import dataclass

import torch
from transformers.utils import ModelOutput


@dataclass
class RetrievalOutput(ModelOutput):
    """What `forward` returns for any method.

    `logits_per_image[i, j]` scores image i against text j; `logits_per_text` is its transpose.
    `loss_terms` holds the named parts of `loss` (e.g. triplet, alignment) for logging.
    """

    loss: torch.Tensor | None = None
    logits_per_image: torch.Tensor | None = None
    logits_per_text: torch.Tensor | None = None
    image_embeds: torch.Tensor | None = None
    text_embeds: torch.Tensor | None = None
    loss_terms: dict[str, torch.Tensor] | None = None
