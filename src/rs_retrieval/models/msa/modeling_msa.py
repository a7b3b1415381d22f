"""MSA: ResNet + BERT dual encoder trained with multi-scale cross-modal alignment.

Retrieval is the cosine of the gated image embedding and the BERT [CLS] state. MSCMAT, a
per-scale cross-attention scorer, exists only to train the encoders: it scores every (image, text)
pair of a batch at each of the four ResNet scales, and two extra losses use those scores
(docs/methods/msa.md). Module and loss behaviour follow the official code `yr666666/MSA` exactly unless a
config flag asks for the corrected variant.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init

from ..common.base import RetrievalPreTrainedModel
from ..common.bert import build_bert, load_bert_layers
from ..common.losses import same_image_mask
from ..common.towers import ResNetTrunk
from .configuration_msa import MSAConfig


class FP32LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 (as the reference MSCMAT does), cast back to the input dtype."""

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return super().forward(hidden_states.float()).to(hidden_states.dtype)


class GatedImageHead(nn.Module):
    """u = W1 f; v = W3 (u * sigmoid(W2 u)): the image embedding of MSA."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.proj = nn.Linear(hidden_size, hidden_size)
        self.gate = nn.Linear(hidden_size, hidden_size)
        self.out = nn.Linear(hidden_size, hidden_size)

    def forward(self, fused: torch.Tensor) -> torch.Tensor:
        hidden = self.proj(fused)
        return self.out(hidden * torch.sigmoid(self.gate(hidden)))


class MSCMAT(nn.Module):
    """Multi-scale cross-modal alignment transformer: one sigmoid score per (image, text, scale).

    Per scale k the image is ONE query token q = P_k(s_k); keys/values are the LayerNorm-ed BERT
    tokens after [CLS]; score = sigmoid(w_k . ((attn + t_hat) * q) + b_k). The reference builds all
    B^2 pairs by repetition; here queries and keys are projected once per image/text and the
    attention is computed for every pair with einsum, which is the same arithmetic.
    The `nn.MultiheadAttention` modules only hold the parameters (reference layout).
    """

    def __init__(self, scale_dims: list[int], hidden_size: int, num_heads: int, mask_padding: bool):
        super().__init__()
        self.num_heads = num_heads
        self.mask_padding = mask_padding
        self.query_proj = nn.ModuleList(nn.Linear(dim, hidden_size) for dim in scale_dims)
        self.attention = nn.ModuleList(nn.MultiheadAttention(hidden_size, num_heads) for _ in scale_dims)
        self.query_norm = FP32LayerNorm(hidden_size)
        self.token_norm = FP32LayerNorm(hidden_size)
        self.match_head = nn.ModuleList(nn.Linear(hidden_size, 1) for _ in scale_dims)

    def _pair_attention(self, attention: nn.MultiheadAttention, queries, tokens, key_mask) -> torch.Tensor:
        """Every query [I, H] attends over every text's tokens [J, T, H] -> [I, J, H]."""
        num_queries, hidden = queries.shape
        num_texts, length, _ = tokens.shape
        head_dim = hidden // self.num_heads
        w_q, w_k, w_v = attention.in_proj_weight.chunk(3)
        b_q, b_k, b_v = attention.in_proj_bias.chunk(3)
        q = F.linear(queries, w_q, b_q).view(num_queries, self.num_heads, head_dim) * head_dim**-0.5
        k = F.linear(tokens, w_k, b_k).view(num_texts, length, self.num_heads, head_dim)
        v = F.linear(tokens, w_v, b_v).view(num_texts, length, self.num_heads, head_dim)
        logits = torch.einsum("ihd,jthd->ijht", q, k)
        if key_mask is not None:
            logits = logits.masked_fill(~key_mask.bool()[None, :, None, :], float("-inf"))
        weights = logits.softmax(dim=-1)
        attended = torch.einsum("ijht,jthd->ijhd", weights, v).reshape(num_queries, num_texts, hidden)
        return attention.out_proj(attended)

    def forward(
        self,
        scale_features: list[torch.Tensor],
        text_tokens: torch.Tensor,
        text_embeds_normalized: torch.Tensor,
        token_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Scores [num_scales, N_img, N_txt] in (0, 1) for all image x text pairs."""
        key_mask = token_mask if self.mask_padding else None
        tokens = self.token_norm(text_tokens)
        scores = []
        for features, proj, attention, head in zip(scale_features, self.query_proj, self.attention, self.match_head):
            query = proj(features)
            attended = self._pair_attention(attention, self.query_norm(query), tokens, key_mask)
            fused = (attended + text_embeds_normalized[None, :, :]) * query[:, None, :]
            scores.append(torch.sigmoid(head(fused)).squeeze(-1))
        return torch.stack(scores)


def msa_triplet_loss(
    cosine: torch.Tensor,
    margin: float = 0.5,
    pos_weight: float = 1.0,
    image_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """MSA's hardest-negative triplet loss on cosine similarities [B, B] (positives on the diagonal).

    Negatives are chosen on detached scores (argmax cosine, diagonal excluded; with `image_ids` also
    captions of the same image); distance d = 2 - cos; summed over both directions:
    sum_i [m + a d(v_i, t_i) - d(v_i, t_n(i))]_+ + sum_j [m + a d(t_j, v_j) - d(t_j, v_m(j))]_+.
    Anchors without any valid negative contribute 0.
    """
    size = cosine.size(0)
    excluded = same_image_mask(image_ids, size, cosine.device)
    with torch.no_grad():
        candidates = cosine.detach().masked_fill(excluded, float("-inf"))
        negative_text = candidates.argmax(dim=1)
        negative_image = candidates.argmax(dim=0)
    rows = torch.arange(size, device=cosine.device)
    positive_distance = 2.0 - cosine.diagonal()
    cost_image_anchor = (margin + pos_weight * positive_distance - (2.0 - cosine[rows, negative_text])).clamp(min=0)
    cost_text_anchor = (margin + pos_weight * positive_distance - (2.0 - cosine[negative_image, rows])).clamp(min=0)
    has_negative_text = (~excluded).any(dim=1)
    has_negative_image = (~excluded).any(dim=0)
    return (cost_image_anchor * has_negative_text).sum() + (cost_text_anchor * has_negative_image).sum()


def mscma_loss(scores: torch.Tensor, temperature: float = 1.0, symmetric: bool = False) -> torch.Tensor:
    """Multi-scale alignment loss: sum over scales of CE(S_k / T, diagonal targets), image->text.

    The reference uses T = 1 on sigmoid scores, so each scale's loss is bounded below by
    log(1 + (B - 1)/e) and never approaches 0 (docs/methods/msa.md#losses). `symmetric` averages in text->image.
    """
    targets = torch.arange(scores.size(-1), device=scores.device)
    total = scores.new_zeros(())
    for logits in scores / temperature:
        loss = F.cross_entropy(logits, targets)
        if symmetric:
            loss = 0.5 * (loss + F.cross_entropy(logits.t(), targets))
        total = total + loss
    return total


def csmmc_loss(
    scores: torch.Tensor, teacher_scale: int = 3, tau: float = 2.0, forward_kl: bool = False
) -> torch.Tensor:
    """Cross-scale consistency: the (detached) teacher scale guides every other scale.

    Distributions are softmax(S / tau) over images (dim 0, one per text column). Reference
    (`forward_kl=False`): sum_k mean_{i,j} P_k (log P_k - log Q), i.e. `kl_div(log Q, P_k, 'mean')`,
    the reverse KL(student || teacher) divided by B^2; numerically tiny for sigmoid scores and
    tau = 2. `forward_kl=True`: KL(Q || P_k) per text, averaged over texts.
    """
    log_teacher = F.log_softmax(scores[teacher_scale].detach() / tau, dim=0)
    total = scores.new_zeros(())
    for index, student_scores in enumerate(scores):
        if index == teacher_scale:
            continue
        log_student = F.log_softmax(student_scores / tau, dim=0)
        if forward_kl:
            total = total + (log_teacher.exp() * (log_teacher - log_student)).sum(dim=0).mean()
        else:
            total = total + (log_student.exp() * (log_student - log_teacher)).mean()
    return total


class MSAPreTrainedModel(RetrievalPreTrainedModel):
    config_class = MSAConfig
    base_model_prefix = "msa"
    supports_gradient_checkpointing = True  # the BERT text layers

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Reference initialisation for MSA's own layers; towers are `PreTrainedModel`s that
        initialise themselves (and are skipped when their weights were loaded).

        Linear layers: PyTorch's default (Kaiming-uniform); MSCMAT attention: N(0, h^-0.5) input
        projection and N(0, h^-0.5 / sqrt 2) output projection, zero biases.
        """
        if isinstance(module, nn.MultiheadAttention):
            std = module.embed_dim**-0.5
            init.normal_(module.in_proj_weight, std=std)
            init.zeros_(module.in_proj_bias)
            init.normal_(module.out_proj.weight, std=std * 2**-0.5)
            init.zeros_(module.out_proj.bias)
        elif isinstance(module, nn.Linear):
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            bound = 1.0 / math.sqrt(module.in_features)
            init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)


class MSAModel(MSAPreTrainedModel):
    """MSA retrieval model (docs/methods/msa.md). `get_image_features`/`get_text_features` return the
    un-normalised 768-d embeddings; retrieval = their cosine. `compute_loss` adds MSCMAT's losses."""

    vision_tower_path = "vision_model"
    text_tower_path = "text_model"

    def __init__(self, config: MSAConfig):
        super().__init__(config)
        self.vision_model = ResNetTrunk(config.vision_config)
        self.scale_proj = nn.ModuleList(nn.Linear(dim, config.hidden_size) for dim in config.scale_dims)
        self.image_head = GatedImageHead(config.hidden_size)
        self.text_model = build_bert(config.text_config)
        self.mscmat = MSCMAT(config.scale_dims, config.hidden_size, config.mscmat_heads, config.mscmat_mask_padding)
        self.post_init()

    @classmethod
    def from_pretrained_towers(cls, config, vision_model_name_or_path=None, text_model_name_or_path=None, **kwargs):
        """Random MSA heads on pretrained towers: a transformers `ResNetModel` and a `BertModel`
        (local directory or Hub id; a BERT pooler in the checkpoint is ignored)."""
        model = super().from_pretrained_towers(config, vision_model_name_or_path=vision_model_name_or_path, **kwargs)
        if text_model_name_or_path is not None:
            load_bert_layers(text_model_name_or_path, model.text_model)
        for field, source in (
            ("vision_model_name", vision_model_name_or_path),
            ("text_model_name", text_model_name_or_path),
        ):
            if source is not None:
                setattr(model.config, field, str(source))
        return model

    def _scale_features(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        size = self.config.image_size
        if pixel_values.dim() != 4 or tuple(pixel_values.shape[-2:]) != (size, size):
            raise ValueError(
                f"MSA expects pixel_values [B, 3, {size}, {size}] (config.image_size), got {tuple(pixel_values.shape)}"
            )
        pooled = []
        for stage, pool in zip(self.vision_model(pixel_values), self.config.scale_pool):
            pooled.append(stage.amax(dim=(2, 3)) if pool == "max" else stage.mean(dim=(2, 3)))
        return pooled

    def _image_embeds(self, scale_features: list[torch.Tensor]) -> torch.Tensor:
        fused = sum(proj(features) for proj, features in zip(self.scale_proj, scale_features))
        return self.image_head(fused)

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self._image_embeds(self._scale_features(pixel_values))

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.text_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[:, 0]

    def encode_images(self, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
        """`embeds` [N, H] plus the pooled stage vectors `scale_k` [N, d_k] that MSCMAT needs."""
        scales = self._scale_features(pixel_values)
        return {"embeds": self._image_embeds(scales), **{f"scale_{k}": s for k, s in enumerate(scales)}}

    def encode_texts(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """`embeds` = last-layer [CLS] [M, H]; `tokens`/`token_mask` = the positions after [CLS]."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.text_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return {"embeds": hidden[:, 0], "tokens": hidden[:, 1:], "token_mask": attention_mask[:, 1:]}

    def mscmat_scores(
        self, image_outputs: dict[str, torch.Tensor], text_outputs: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """MSCMAT scores [num_scales, N_img, N_txt] (rows = images) from `encode_*` outputs."""
        scales = [image_outputs[f"scale_{k}"] for k in range(len(self.config.scale_dims))]
        text_normalized = F.normalize(text_outputs["embeds"], dim=-1)
        return self.mscmat(scales, text_outputs["tokens"], text_normalized, text_outputs["token_mask"])

    def compute_loss(self, image_outputs, text_outputs, logits_per_image, image_ids=None):
        """L = w_tri L_triplet + w_mscma L_mscma + w_csmmc L_csmmc (docs/methods/msa.md#losses)."""
        config = self.config
        if config.triplet_mask_same_image and image_ids is None:
            raise ValueError("triplet_mask_same_image=True needs `image_ids` in the batch")
        triplet = msa_triplet_loss(
            logits_per_image,
            margin=config.triplet_margin,
            pos_weight=config.triplet_pos_weight,
            image_ids=image_ids if config.triplet_mask_same_image else None,
        )
        scores = self.mscmat_scores(image_outputs, text_outputs)
        alignment = mscma_loss(scores, temperature=config.mscma_temperature, symmetric=config.mscma_symmetric)
        consistency = csmmc_loss(scores, config.teacher_scale, config.csmmc_tau, config.csmmc_forward_kl)
        total = config.w_triplet * triplet + config.w_mscma * alignment + config.w_csmmc * consistency
        terms = {"triplet": triplet.detach(), "mscma": alignment.detach(), "csmmc": consistency.detach()}
        return total, terms
