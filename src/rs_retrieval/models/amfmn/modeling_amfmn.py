"""AMFMN (Yuan et al., TGRS 2021/22) as a `PreTrainedModel`.

The released (checkpoint-faithful) model: ResNet-18 + MVSA image feature F_v, skip-thought caption feature t, and the
visual-guided attention (VGA) score S[i, j] = cos(F_v_i, Ft[i, j]) where the image gates the caption vector (AMFMN
paper Eq. 20-25; docs/methods/amfmn.md#matching-head). Module names follow the reference code (`extract_feature`,
`mvsa`, `text_feature`, `cross_attention_s`) so official checkpoints convert by a key copy (plus the ResNet renaming).
"""

from __future__ import annotations

import torch
from torch import nn

from ..amfmn_family.family import AMFMNFamilyPreTrainedModel
from .configuration_amfmn import AMFMNConfig

#: Elements of the largest [images, texts, dim] intermediate built at once by chunked scoring.
SCORE_CHUNK_ELEMENTS = 1 << 24
COSINE_EPS = 1e-8


def chunked_pair_cosine(visual: torch.Tensor, num_texts: int, gated_text_fn) -> torch.Tensor:
    """S[i, j] = cos(visual_i, Ft[i, j]) where `gated_text_fn(rows)` builds Ft for a slice of images
    ([n, num_texts, D]); image rows are processed in chunks to bound memory."""
    rows_per_chunk = max(1, SCORE_CHUNK_ELEMENTS // max(1, num_texts * visual.size(1)))
    scores = []
    for start in range(0, visual.size(0), rows_per_chunk):
        rows = slice(start, start + rows_per_chunk)
        gated = gated_text_fn(rows)
        v = visual[rows]
        numerator = torch.einsum("nd,nmd->nm", v, gated)
        denominator = v.norm(dim=-1, keepdim=True) * gated.norm(dim=-1)
        scores.append(numerator / denominator.clamp_min(COSINE_EPS))
    return torch.cat(scores) if scores else visual.new_zeros(0, num_texts)


class VisualGuidedAttention(nn.Module):
    """AMFMN's VGA head (reference `cross_attention_s`): the image gates each caption vector.

    `soft_att`: Ft = sigmoid(W F_v + b) * t (closed form: two matrix products);
    `fusion_att`: Ft = sigmoid(W1 [F_v; t] + b1) * (W2 [F_v; t] + b2);
    `similarity_att`: Ft = sigmoid((W_v F_v + b_v) * (W_t t + b_t)) * (W_t t + b_t) (the code's
    vector gate). The last two do not factorise and are scored in chunks.
    """

    def __init__(self, att_type: str, dim: int):
        super().__init__()
        self.att_type = att_type
        if att_type == "soft_att":
            self.cross_attention = nn.Sequential(nn.Linear(dim, dim), nn.Sigmoid())
        elif att_type == "fusion_att":
            self.cross_attention_fc1 = nn.Sequential(nn.Linear(2 * dim, dim), nn.Sigmoid())
            self.cross_attention_fc2 = nn.Sequential(nn.Linear(2 * dim, dim))
        elif att_type == "similarity_att":
            self.fc_visual = nn.Sequential(nn.Linear(dim, dim))
            self.fc_text = nn.Sequential(nn.Linear(dim, dim))
        else:
            raise ValueError(f"unknown att_type {att_type!r}")

    def forward(self, visual: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Score matrix [N_img, N_txt] for image features `visual` and caption features `text`."""
        if self.att_type == "soft_att":
            gate = self.cross_attention(visual)
            numerator = (visual * gate) @ text.t()
            gated_norm = ((gate * gate) @ (text * text).t()).clamp_min(0).sqrt()
            return numerator / (visual.norm(dim=-1, keepdim=True) * gated_norm).clamp_min(COSINE_EPS)
        if self.att_type == "fusion_att":
            gate_layer, value_layer = self.cross_attention_fc1[0], self.cross_attention_fc2[0]
            dim = visual.size(1)
            # W [v; t] + b = W_v v + b + W_t t: the image half per image, the text half per caption.
            gate_v = visual @ gate_layer.weight[:, :dim].t() + gate_layer.bias
            gate_t = text @ gate_layer.weight[:, dim:].t()
            value_v = visual @ value_layer.weight[:, :dim].t() + value_layer.bias
            value_t = text @ value_layer.weight[:, dim:].t()
            return chunked_pair_cosine(
                visual,
                text.size(0),
                lambda rows: torch.sigmoid(gate_v[rows, None] + gate_t[None]) * (value_v[rows, None] + value_t[None]),
            )
        visual_proj = self.fc_visual(visual)
        text_proj = self.fc_text(text)
        return chunked_pair_cosine(
            visual,
            text.size(0),
            lambda rows: torch.sigmoid(visual_proj[rows, None] * text_proj[None]) * text_proj[None],
        )


class AMFMNModel(AMFMNFamilyPreTrainedModel):
    """AMFMN retrieval model. Asymmetric: `similarity(image_embeds, text_embeds)` applies the
    image-dependent gate, so use it (or `score`) rather than a plain cosine.

    Example:
        >>> out = model(pixel_values, input_ids, return_loss=True)   # out.logits_per_image [B, B]
        >>> sims = model.similarity(model.get_image_features(px), model.get_text_features(ids))
    """

    config_class = AMFMNConfig
    base_model_prefix = "amfmn"
    score_is_cosine = False  # the gate depends on the image of each pair

    def __init__(self, config: AMFMNConfig):
        super().__init__(config)
        self._build_branches(config)
        self.cross_attention_s = VisualGuidedAttention(config.att_type, config.embed_dim)
        self.post_init()

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """F_v [B, embed_dim] (not normalised; the gate is recomputed from it when scoring)."""
        return self.global_visual_features(pixel_values)

    def similarity(self, image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
        """The full VGA score matrix [N_img, N_txt], batched (closed form for `soft_att`)."""
        return self.cross_attention_s(image_embeds, text_embeds)
