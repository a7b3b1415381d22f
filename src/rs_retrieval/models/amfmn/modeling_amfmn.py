"""AMFMN (Yuan et al., TGRS 2021/22) as a `PreTrainedModel`, plus the base shared with GaLR.

The released (checkpoint-faithful) model: ResNet-18 + MVSA image feature F_v, skip-thought caption
feature t, and the visual-guided attention (VGA) score S[i, j] = cos(F_v_i, Ft[i, j]) where the
image gates the caption vector (`amfmn.md` §7). Module names follow the reference code
(`extract_feature`, `mvsa`, `text_feature`, `cross_attention_s`) so official checkpoints convert
by a key copy (plus the ResNet renaming).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from transformers import initialization as init

from ...losses import dynamic_margin, hinge_triplet_loss
from ..base import RetrievalPreTrainedModel
from ..checks import check_all
from ..mvsa import MVSA, ExtractFeature, check_image_size
from ..skipthought import SkipThoughtTextEncoder
from .configuration_amfmn import AMFMNConfig, AMFMNFamilyConfig

#: Elements of the largest [images, texts, dim] intermediate built at once by chunked scoring.
SCORE_CHUNK_ELEMENTS = 1 << 24
COSINE_EPS = 1e-8


class AMFMNFamilyPreTrainedModel(RetrievalPreTrainedModel):
    """What AMFMN and GaLR share: ResNet + MVSA visual branch, skip-thought text branch, hinge
    triplet loss (fixed or dynamic margin), initialisation and pretrained-tower loading.

    Subclasses call `_build_branches(config)` in `__init__` before `post_init()`.
    """

    config_class = AMFMNFamilyConfig
    vision_tower_path = "extract_feature.backbone"
    text_tower_path = "text_feature.seq2vec"
    loss_input_names = ("prior_similarity",)  # [B, B] caption prior of the dynamic-margin loss

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
                "attention_mask disagrees with the id-0 padding: AMFMN/GaLR captions must be right-padded with id 0 (RSWordTokenizer)",
            )
        return self.text_feature(input_ids)

    def compute_loss(self, image_outputs, text_outputs, logits_per_image, image_ids=None, prior_similarity=None):
        """Sum-hinge triplet loss of the reference code (hardest negative if `max_violation`).

        With `config.dynamic_margin` = {gamma, beta}, the margin of pair (i, j) is the paper's
        alpha(P[i, j]) for `prior_similarity` P [B, B] (caption j against image i's captions, see
        `rs_retrieval.losses.CaptionPriorSimilarity`). `image_ids` masks texts of the same image
        (the reference does not: pass None to reproduce it).
        """
        margin = self.config.margin
        if self.config.dynamic_margin is not None:
            if prior_similarity is None:
                raise ValueError("config.dynamic_margin is set: pass prior_similarity [B, B] (see rs_retrieval.losses.CaptionPriorSimilarity)")
            if tuple(prior_similarity.shape) != tuple(logits_per_image.shape):
                raise ValueError(f"prior_similarity must have the score shape {tuple(logits_per_image.shape)}, got {tuple(prior_similarity.shape)}")
            margin = dynamic_margin(prior_similarity.to(logits_per_image), **self.config.dynamic_margin)
        loss = hinge_triplet_loss(logits_per_image, margin, self.config.max_violation, image_ids)
        return loss, {"triplet": loss.detach()}

    @classmethod
    def from_pretrained_towers(
        cls, config, vision_model_name_or_path=None, text_model_name_or_path=None, vocab=None, allow_pickle=False, **kwargs
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
            from ...convert.skipthought import load_skipthought_into

            if vocab is None:
                raise ValueError("loading skip-thought weights needs `vocab` (word2idx dict or vocab.json path) to pick embedding rows")
            load_skipthought_into(model.text_feature.seq2vec, text_model_name_or_path, vocab, allow_pickle=allow_pickle)
        return model


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
            visual, text.size(0), lambda rows: torch.sigmoid(visual_proj[rows, None] * text_proj[None]) * text_proj[None]
        )


class AMFMNModel(AMFMNFamilyPreTrainedModel):
    """AMFMN retrieval model. Asymmetric: `similarity(image_embeds, text_embeds)` applies the
    image-dependent gate, so use it (or `score`) rather than a plain cosine.

    Example:
        >>> out = model(pixel_values, input_ids, return_loss=True)   # out.logits_per_image [B, B]
        >>> sims = model.similarity(model.get_image_features(px), model.get_text_features(ids))
    """

    config_class = AMFMNConfig
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
