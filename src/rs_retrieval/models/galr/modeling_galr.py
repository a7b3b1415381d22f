"""GaLR (Yuan et al., TGRS 2022) as a `PreTrainedModel` (docs/methods/galr.md).

A dual encoder: the image embedding fuses the global AMFMN visual feature (L2-normalised MVSA
output) with a local feature from a 3-layer GCN over a per-image object graph, through MIDF
(MCAN-style self/guided attention blocks over length-1 sequences and a dynamic weighting); the
caption embedding is AMFMN's skip-thought feature; the score is a cosine. Module and parameter
names follow the reference code (`local_feature`, `fusion.{g2g_SA, l2l_SA, g2l_SGA, l2g_SGA,
dynamic_weight}`, LayerNorm `a_2`/`b_2`) so official checkpoints convert by a key copy.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from transformers import initialization as init

from ..amfmn_family.family import AMFMNFamilyPreTrainedModel
from .configuration_galr import GaLRConfig

NORM_EPS = 1e-8


def l2norm(x: torch.Tensor) -> torch.Tensor:
    """x / (||x||_2 + 1e-8) along the last dim, the reference normalisation."""
    return x / (x.norm(dim=-1, keepdim=True) + NORM_EPS)


class GaLRLayerNorm(nn.Module):
    """The reference LayerNorm: a_2 * (x - mean) / (std + eps) + b_2 with the UNBIASED std and eps
    outside the square root (differs slightly from `nn.LayerNorm`)."""

    def __init__(self, size: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.a_2 = nn.Parameter(torch.ones(size))
        self.b_2 = nn.Parameter(torch.zeros(size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1, keepdim=True)
        std = x.std(dim=-1, keepdim=True)
        return self.a_2 * (x - mean) / (std + self.eps) + self.b_2


class MHAtt(nn.Module):
    """Multi-head attention with dropout on the attention map (MCAN `MHAtt`)."""

    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.linear_v = nn.Linear(hidden, hidden)
        self.linear_k = nn.Linear(hidden, hidden)
        self.linear_q = nn.Linear(hidden, hidden)
        self.linear_merge = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(dropout)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, hidden = x.shape
        return x.view(batch, length, self.heads, hidden // self.heads).transpose(1, 2)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        q, k, v = self._split(self.linear_q(query)), self._split(self.linear_k(key)), self._split(self.linear_v(value))
        attention = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)), dim=-1)
        merged = (self.dropout(attention) @ v).transpose(1, 2).reshape(query.shape)
        return self.linear_merge(merged)


class FC(nn.Module):
    def __init__(self, in_size: int, out_size: int, dropout: float):
        super().__init__()
        self.linear = nn.Linear(in_size, out_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(torch.relu(self.linear(x)))


class MLP(nn.Module):
    def __init__(self, in_size: int, mid_size: int, out_size: int, dropout: float):
        super().__init__()
        self.fc = FC(in_size, mid_size, dropout)
        self.linear = nn.Linear(mid_size, out_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.fc(x))


class FFN(nn.Module):
    def __init__(self, hidden: int, ff: int, dropout: float):
        super().__init__()
        self.mlp = MLP(hidden, ff, hidden, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


class SA(nn.Module):
    """Self-attention block: x <- LN(x + MHA(x)); x <- LN(x + FFN(x))."""

    def __init__(self, hidden: int, heads: int, ff: int, dropout: float):
        super().__init__()
        self.mhatt = MHAtt(hidden, heads, dropout)
        self.ffn = FFN(hidden, ff, dropout)
        self.dropout1, self.norm1 = nn.Dropout(dropout), GaLRLayerNorm(hidden)
        self.dropout2, self.norm2 = nn.Dropout(dropout), GaLRLayerNorm(hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.dropout1(self.mhatt(x, x, x)))
        return self.norm2(x + self.dropout2(self.ffn(x)))


class SGA(nn.Module):
    """Self-guided attention block: self-attention, then attention to the guide `y`, then FFN."""

    def __init__(self, hidden: int, heads: int, ff: int, dropout: float):
        super().__init__()
        self.mhatt1 = MHAtt(hidden, heads, dropout)
        self.mhatt2 = MHAtt(hidden, heads, dropout)
        self.ffn = FFN(hidden, ff, dropout)
        self.dropout1, self.norm1 = nn.Dropout(dropout), GaLRLayerNorm(hidden)
        self.dropout2, self.norm2 = nn.Dropout(dropout), GaLRLayerNorm(hidden)
        self.dropout3, self.norm3 = nn.Dropout(dropout), GaLRLayerNorm(hidden)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.dropout1(self.mhatt1(x, x, x)))
        x = self.norm2(x + self.dropout2(self.mhatt2(x, y, y)))
        return self.norm3(x + self.dropout3(self.ffn(x)))


class MIDF(nn.Module):
    """Multi-level information dynamic fusion of the global and local image vectors.

    g <- SA(g); l <- SA(l); l <- SGA(l, g) (local correction); g <- SGA(g, l) (global supplement,
    guided by the corrected l); g' = sigmoid(l) * g; l' = g + l; w = softmax(MLP(g' + l'));
    v = w0 * g' + w0 * l' (released code) or w0 * g' + w1 * l' (`paper_fusion_fix`).
    """

    def __init__(self, config: GaLRConfig):
        super().__init__()
        block = (config.mca_hidden, config.mca_heads, config.mca_ff, config.mca_dropout)
        self.g2g_SA = SA(*block)
        self.l2l_SA = SA(*block)
        self.g2l_SGA = SGA(*block)
        self.l2g_SGA = SGA(*block)
        self.dynamic_weight = nn.Sequential(
            nn.Linear(config.mca_hidden, config.dynamic_fusion_dim),
            nn.Sigmoid(),
            nn.Dropout(config.dynamic_fusion_dropout),
            nn.Linear(config.dynamic_fusion_dim, 2),
            nn.Softmax(dim=1),
        )
        self.local_weight_column = 1 if config.paper_fusion_fix else 0

    def forward(self, global_vec: torch.Tensor, local_vec: torch.Tensor) -> torch.Tensor:
        g, l = self.g2g_SA(global_vec.unsqueeze(1)), self.l2l_SA(local_vec.unsqueeze(1))
        l = self.g2l_SGA(l, g)
        g = self.l2g_SGA(g, l)
        g_fused = (torch.sigmoid(l) * g).squeeze(1)
        l_fused = (g + l).squeeze(1)
        weights = self.dynamic_weight(g_fused + l_fused)
        col = self.local_weight_column
        return weights[:, :1] * g_fused + weights[:, col : col + 1] * l_fused


class GCN(nn.Module):
    """Three graph-convolution layers H <- ReLU((A H) W) (no bias, A used as given), then a linear
    map of the node-major flattened node states to `embed_dim`, L2-normalised."""

    def __init__(self, config: GaLRConfig):
        super().__init__()
        d1, d2, d3 = config.gcn_dims
        self.fc1 = nn.Linear(config.node_dim, d1, bias=False)
        self.fc2 = nn.Linear(d1, d2, bias=False)
        self.fc3 = nn.Linear(d2, d3, bias=False)
        self.out = nn.Linear(config.num_nodes * d3, config.embed_dim)

    def forward(self, node_features: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        h = node_features
        for layer in (self.fc1, self.fc2, self.fc3):
            h = torch.relu(layer(adjacency @ h))
        return l2norm(self.out(h.flatten(1)))


class GaLRModel(AMFMNFamilyPreTrainedModel):
    """GaLR retrieval model (dual encoder, cosine score).

    Image inputs: `pixel_values` [B, 3, S, S], `local_features` [B, num_nodes, node_dim] and
    `local_adjacency` [B, num_nodes, num_nodes] (from `GaLRProcessor.image_inputs`).
    """

    config_class = GaLRConfig
    base_model_prefix = "galr"

    def __init__(self, config: GaLRConfig):
        super().__init__(config)
        self._build_branches(config)
        self.local_feature = GCN(config)
        self.fusion = MIDF(config)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, GaLRLayerNorm):
            init.ones_(module.a_2)
            init.zeros_(module.b_2)

    def _check_local_inputs(self, batch: int, local_features, local_adjacency) -> None:
        nodes, dim = self.config.num_nodes, self.config.node_dim
        if local_features is None or local_adjacency is None:
            raise ValueError(
                "GaLR needs local_features [batch, num_nodes, node_dim] "
                "and local_adjacency [batch, num_nodes, num_nodes]; "
                "build them with GaLRProcessor.image_inputs(rows) "
                "(rows with an `objects` column) or load the official "
                "*_local.npy with GaLRProcessor.load_local_features(path)"
            )
        if tuple(local_features.shape) != (batch, nodes, dim):
            raise ValueError(f"local_features must be [{batch}, {nodes}, {dim}], got {tuple(local_features.shape)}")
        if tuple(local_adjacency.shape) != (batch, nodes, nodes):
            raise ValueError(
                f"local_adjacency must be [{batch}, {nodes}, {nodes}], got {tuple(local_adjacency.shape)}"
            )

    def get_image_features(
        self,
        pixel_values: torch.Tensor,
        local_features: torch.Tensor | None = None,
        local_adjacency: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Fused image embedding v [B, embed_dim] (not normalised)."""
        self._check_local_inputs(pixel_values.size(0), local_features, local_adjacency)
        global_vec = l2norm(self.global_visual_features(pixel_values))
        dtype = global_vec.dtype
        local_vec = self.local_feature(local_features.to(dtype), local_adjacency.to(dtype))
        return self.fusion(global_vec, local_vec)

    def similarity(self, image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
        """Cosine matrix with the reference normalisation x / (||x|| + 1e-8)."""
        return l2norm(image_embeds) @ l2norm(text_embeds).t()
