"""CMPAGL (RECONSTRUCTION, docs/methods/cmpagl.md): Gswin image encoder + BERT text encoder, pre-aligned with a
contrastive loss, then a BERT fusion encoder with an image-text matching (ITM) head.

No CMPAGL code is public; this follows the abstract plus the closest public designs (ALBEF's
"align before fuse", Swin, GC ViT). Retrieval is two-stage: the dual-encoder cosine picks the top-k
candidates of every query, the fusion encoder re-scores them (`score`). SMR re-ranking is a
post-process of the evaluator (`rs_retrieval.evaluation.rerank`), not part of the model.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig
from transformers import initialization as init
from transformers.models.bert.modeling_bert import BertAttention, BertIntermediate, BertOutput
from transformers.models.swin.modeling_swin import SwinRelativePositionBias

from ..common.base import RetrievalPreTrainedModel
from ..common.bert import build_bert, load_bert_layers
from ..common.checks import check_all
from ..common.losses import hinge_triplet_loss, same_image_mask
from .configuration_cmpagl import CMPAGLConfig
from .gswin import GswinVisionEncoder

#: Offset that puts every non-candidate below every re-ranked candidate while keeping their ITC order.
NON_CANDIDATE_OFFSET = -100.0
TEMPERATURE_RANGE = (0.001, 0.5)


class FusionLayer(nn.Module):
    """BERT layer with bidirectional self-attention, then cross-attention to the image tokens.

    Sub-module names match `BertLayer`, so a pretrained BERT layer's self-attention and
    feed-forward weights load into it (`load_bert_layers`); the cross-attention starts fresh.
    """

    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = BertAttention(config)
        self.crossattention = BertAttention(config, is_cross_attention=True)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor, image_tokens: torch.Tensor) -> torch.Tensor:
        hidden = self.attention(hidden, attention_mask)[0]
        hidden = self.crossattention(hidden, encoder_hidden_states=image_tokens)[0]
        return self.output(self.intermediate(hidden), hidden)


class FusionEncoder(nn.Module):
    """Fusion layers over (text tokens, image tokens) pairs and the 2-way ITM head on the fused [CLS]."""

    def __init__(self, text_config: BertConfig, num_layers: int, vision_width: int):
        super().__init__()
        config = copy.deepcopy(text_config)
        config._attn_implementation = config._attn_implementation or "sdpa"
        hidden = config.hidden_size
        self.image_proj = nn.Linear(vision_width, hidden) if vision_width != hidden else nn.Identity()
        self.layers = nn.ModuleList(FusionLayer(config) for _ in range(num_layers))
        self.itm_head = nn.Linear(hidden, 2)

    def forward(self, text_tokens: torch.Tensor, text_mask: torch.Tensor, image_tokens: torch.Tensor) -> torch.Tensor:
        """Row-aligned pairs: text [P, L, H] (+ mask [P, L]) with image [P, T, C] -> ITM logits [P, 2]."""
        additive_mask = (1.0 - text_mask[:, None, None, :].to(text_tokens.dtype)) * torch.finfo(text_tokens.dtype).min
        image_tokens = self.image_proj(image_tokens)
        hidden = text_tokens
        for layer in self.layers:
            hidden = layer(hidden, additive_mask, image_tokens)
        return self.itm_head(hidden[:, 0])


def itc_loss(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    temperature: torch.Tensor,
    image_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric image-text contrastive loss on normalised embeddings [B, D].

    Targets are uniform over the positives of each row: the matched pair, plus, with `image_ids`,
    every caption of the same image (multi-positive, as PIR's `idx` variant).
    """
    logits = image_embeds @ text_embeds.t() / temperature
    positives = same_image_mask(image_ids, logits.size(0), logits.device).to(logits.dtype)
    targets = positives / positives.sum(dim=1, keepdim=True)
    image_to_text = -(F.log_softmax(logits, dim=1) * targets).sum(dim=1).mean()
    text_to_image = -(F.log_softmax(logits.t(), dim=1) * targets.t()).sum(dim=1).mean()
    return 0.5 * (image_to_text + text_to_image)


def sample_itm_negatives(
    similarity: torch.Tensor, image_ids: torch.Tensor | None = None, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One hard negative text per image and one hard negative image per text, drawn with
    probability softmax(similarity) over the non-positive candidates (ALBEF). Returns
    (negative_text_of_image [B], negative_image_of_text [B])."""
    excluded = same_image_mask(image_ids, similarity.size(0), similarity.device)
    check_all(~excluded.all(dim=1), "ITM hard-negative sampling needs at least two distinct images in the batch")
    with torch.no_grad():
        weights = similarity.detach().float().softmax(dim=1).masked_fill(excluded, 0) + (~excluded) * 1e-8
        negative_text = torch.multinomial(weights, 1, generator=generator).squeeze(1)
        weights = similarity.detach().float().t().softmax(dim=1).masked_fill(excluded.t(), 0) + (~excluded.t()) * 1e-8
        negative_image = torch.multinomial(weights, 1, generator=generator).squeeze(1)
    return negative_text, negative_image


def improved_triplet_loss(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    margin: float = 0.2,
    intra_class_weight: float = 1.0,
    image_ids: torch.Tensor | None = None,
    intra_class_mode: str = "pair",
    scene_ids: torch.Tensor | None = None,
    reduction: str = "sum",
) -> torch.Tensor:
    """Hardest-negative triplet loss (VSE++, same-image captions are not negatives) plus lambda
    times an intra-class distance term on normalised embeddings.

    "pair": sum_i (1 - cos(v_i, t_i)). "scene": mean (1 - cos) over all pairs of distinct items of the same scene
    class, image-image, text-text and image-text (docs/methods/cmpagl.md#our-reconstruction, alternative reading).
    `reduction="mean"` divides the hinge sum and the pair term by the batch size.
    """
    cosine = image_embeds @ text_embeds.t()
    scale = 1.0 / len(cosine) if reduction == "mean" else 1.0
    triplet = scale * hinge_triplet_loss(cosine, margin=margin, hardest_negative=True, image_ids=image_ids)
    if intra_class_mode == "pair":
        intra = scale * (1.0 - cosine.diagonal()).sum()
    else:
        if scene_ids is None:
            raise ValueError("intra_class_mode='scene' needs `scene_ids` (scene class of every pair) in the batch")
        same = scene_ids.view(-1, 1) == scene_ids.view(1, -1)
        distinct = same & ~torch.eye(len(scene_ids), dtype=torch.bool, device=same.device)
        distances = torch.cat(
            [
                (1.0 - image_embeds @ image_embeds.t())[distinct],
                (1.0 - text_embeds @ text_embeds.t())[distinct],
                (1.0 - cosine)[same],
            ]
        )
        intra = distances.mean()
    return triplet + intra_class_weight * intra


class CMPAGLPreTrainedModel(RetrievalPreTrainedModel):
    config_class = CMPAGLConfig
    base_model_prefix = "cmpagl"
    supports_gradient_checkpointing = True  # the BERT text layers

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Truncated-normal(0.02) linears and unit LayerNorms for CMPAGL's own layers (Swin/ALBEF
        style); the Swin and BERT towers are `PreTrainedModel`s that initialise themselves, and
        loaded tensors are never touched (transformers.initialization skips them)."""
        if isinstance(module, nn.Linear):
            init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, SwinRelativePositionBias):
            init.zeros_(module.relative_position_bias_table)
            init.copy_(module.relative_position_index, module._create_relative_position_index().view(-1))
        elif isinstance(module, CMPAGLModel):
            init.constant_(module.temp, self.config.temp_init)


class CMPAGLModel(CMPAGLPreTrainedModel):
    """CMPAGL retrieval model (reconstruction). `get_image_features`/`get_text_features` return the
    pre-aligned `embed_dim` embeddings (un-normalised); `score` re-ranks the top-k candidates of
    each query with the fusion encoder; `compute_loss` = ITC + ITM + improved triplet."""

    vision_tower_path = "vision_model"
    text_tower_path = "text_model"
    image_cache_keys = ("embeds", "tokens")
    score_is_blockwise = False  # the top-k candidates of a query depend on every image and text
    score_is_cosine = False  # the fusion encoder re-ranks the cosine's candidates
    loss_input_names = ("scene_ids",)
    text_cache_keys = ("embeds", "tokens", "attention_mask")

    def __init__(self, config: CMPAGLConfig):
        super().__init__(config)
        self.vision_model = GswinVisionEncoder(
            config.vision_config,
            config.gswin_stages,
            config.global_window_pool,
            config.global_local_combine,
            config.glwca_rel_bias,
        )
        self.text_model = build_bert(config.text_config)
        self.vision_proj = nn.Linear(config.vision_width, config.embed_dim)
        self.text_proj = nn.Linear(config.text_config.hidden_size, config.embed_dim)
        self.temp = nn.Parameter(torch.tensor(float(config.temp_init)))
        self.fusion = FusionEncoder(config.text_config, config.fusion_layers, config.vision_width)
        self.post_init()

    @classmethod
    def from_pretrained_towers(cls, config, vision_model_name_or_path=None, text_model_name_or_path=None, **kwargs):
        """Random CMPAGL heads on a pretrained `SwinModel` and a pretrained BERT split over the text
        encoder (first layers) and the fusion encoder (next `fusion_layers` layers; cross-attention
        stays fresh): bert-base-uncased fills the default 6 + 6 layers."""
        model = super().from_pretrained_towers(config, vision_model_name_or_path=vision_model_name_or_path, **kwargs)
        if text_model_name_or_path is not None:
            load_bert_layers(text_model_name_or_path, model.text_model, model.fusion.layers)
        for field, source in (
            ("vision_model_name", vision_model_name_or_path),
            ("text_model_name", text_model_name_or_path),
        ):
            if source is not None:
                setattr(model.config, field, str(source))
        return model

    @property
    def temperature(self) -> torch.Tensor:
        return self.temp.clamp(*TEMPERATURE_RANGE)

    def _image_tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:
        size = self.config.vision_config.image_size
        if pixel_values.dim() != 4 or tuple(pixel_values.shape[-2:]) != (size, size):
            raise ValueError(
                f"CMPAGL expects pixel_values [B, 3, {size}, {size}] "
                f"(vision_config.image_size), got {tuple(pixel_values.shape)}"
            )
        return self.vision_model(pixel_values)

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.vision_proj(self._image_tokens(pixel_values)[:, 0])

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.text_proj(
            self.text_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[:, 0]
        )

    def encode_images(self, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
        """`embeds` [N, embed_dim] and the image `tokens` [N, 1 + h*w, C] the fusion encoder needs."""
        tokens = self._image_tokens(pixel_values)
        return {"embeds": self.vision_proj(tokens[:, 0]), "tokens": tokens}

    def encode_texts(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """`embeds` [M, embed_dim], text-encoder `tokens` [M, L, H] and their `attention_mask`."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        tokens = self.text_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return {"embeds": self.text_proj(tokens[:, 0]), "tokens": tokens, "attention_mask": attention_mask}

    def itm_logits(
        self, image_tokens: torch.Tensor, text_tokens: torch.Tensor, text_attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """Fusion encoder on row-aligned pairs -> ITM logits [P, 2] (index 1 = match)."""
        return self.fusion(text_tokens, text_attention_mask, image_tokens)

    def rerank_pairs(self, similarity: torch.Tensor, k: int) -> list[torch.Tensor]:
        """(image, text) index pairs [P, 2] to re-rank: the top-k images of every text, then the
        top-k texts of every image (a pair can be in both). Their number depends on the shape only,
        so scoring has no data-dependent op (one graph under torch.compile); when k covers a whole
        side, that side's list alone holds every pair."""
        num_images, num_texts = similarity.shape
        parts = []
        if k < num_texts:
            images = similarity.topk(min(k, num_images), dim=0).indices  # [k', M]
            texts = torch.arange(num_texts, device=similarity.device).expand_as(images)
            parts.append(torch.stack([images.reshape(-1), texts.reshape(-1)], dim=1))
        if k < num_images or k >= num_texts:
            texts = similarity.topk(min(k, num_texts), dim=1).indices  # [N, k']
            images = torch.arange(num_images, device=similarity.device)[:, None].expand_as(texts)
            parts.append(torch.stack([images.reshape(-1), texts.reshape(-1)], dim=1))
        return parts

    def rerank(
        self, image_cache: dict[str, torch.Tensor], text_cache: dict[str, torch.Tensor], pairs: torch.Tensor
    ) -> torch.Tensor:
        """ITM match probabilities [P] of the (image, text) index `pairs` [P, 2], fused in batches
        of `rerank_batch_size` pairs."""
        scores = []
        for chunk in pairs.split(self.config.rerank_batch_size):
            images, texts = chunk[:, 0], chunk[:, 1]
            logits = self.itm_logits(
                image_cache["tokens"][images], text_cache["tokens"][texts], text_cache["attention_mask"][texts]
            )
            scores.append(logits.softmax(dim=-1)[:, 1])
        return torch.cat(scores) if scores else pairs.new_zeros(0, dtype=torch.float)

    def score(self, image_cache: dict[str, torch.Tensor], text_cache: dict[str, torch.Tensor]) -> torch.Tensor:
        """Two-stage score [N, M]: ITC cosine; then, unless `itm_k_test` is 0, every pair among the
        top-k of an image query or of a text query gets its fusion score (ITM match probability,
        + ITC cosine if `rerank_add_itc`), and the other pairs get ITC cosine - 100 (below every
        candidate, stage-1 order kept).

        Candidates are chosen within the given caches: a caller that scores the texts in blocks
        re-ranks a superset of the whole-set candidates (each pair's fusion score is the same)."""
        similarity = self.similarity(image_cache["embeds"], text_cache["embeds"])
        k = self.config.itm_k_test
        if k == 0:
            return similarity
        parts = self.rerank_pairs(similarity, k)
        fused = self.rerank(image_cache, text_cache, torch.cat(parts)).to(similarity.dtype)
        final = similarity + NON_CANDIDATE_OFFSET
        # One put per list: a pair in both lists deterministically keeps the later list's value.
        for pairs, scores in zip(parts, fused.split([len(p) for p in parts])):
            rows, columns = pairs[:, 0], pairs[:, 1]
            if self.config.rerank_add_itc:
                scores = scores + similarity[rows, columns]
            final = final.index_put((rows, columns), scores)
        return final

    def compute_loss(self, image_outputs, text_outputs, logits_per_image, image_ids=None, scene_ids=None):
        """L = w_itc ITC + w_itm ITM + w_tri (triplet + lambda intra-class)
        (docs/methods/cmpagl.md#our-reconstruction).

        ITM scores the B positives, one sampled hard-negative text per image and one hard-negative
        image per text (3B fused pairs). `logits_per_image` is the ITC cosine matrix.
        """
        config = self.config
        image_embeds = F.normalize(image_outputs["embeds"], dim=-1)
        text_embeds = F.normalize(text_outputs["embeds"], dim=-1)
        contrastive = itc_loss(
            image_embeds, text_embeds, self.temperature, image_ids if config.itc_multi_positive else None
        )

        negative_text, negative_image = sample_itm_negatives(logits_per_image / self.temperature, image_ids)
        rows = torch.arange(len(image_embeds), device=image_embeds.device)
        image_index = torch.cat([rows, negative_image, rows])
        text_index = torch.cat([rows, rows, negative_text])
        logits = self.itm_logits(
            image_outputs["tokens"][image_index],
            text_outputs["tokens"][text_index],
            text_outputs["attention_mask"][text_index],
        )
        labels = (torch.arange(len(image_index), device=logits.device) < len(rows)).long()
        matching = F.cross_entropy(logits, labels)

        triplet = improved_triplet_loss(
            image_embeds,
            text_embeds,
            config.triplet_margin,
            config.intra_class_weight,
            image_ids,
            config.intra_class_mode,
            scene_ids,
            config.triplet_reduction,
        )
        w_itc, w_itm, w_tri = config.loss_weights
        total = w_itc * contrastive + w_itm * matching + w_tri * triplet
        return total, {"itc": contrastive.detach(), "itm": matching.detach(), "triplet": triplet.detach()}

    def training_logits(self, image_outputs, text_outputs):
        """Training uses the ITC cosine matrix; the two-stage `score` is for retrieval only."""
        return self.similarity(image_outputs["embeds"], text_outputs["embeds"])
