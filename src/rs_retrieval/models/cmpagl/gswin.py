"""Gswin image encoder of CMPAGL (RECONSTRUCTION, docs/methods/cmpagl.md#our-reconstruction).

A transformers `SwinModel` whose blocks in the chosen stages become Gswin blocks:

    G   = Linear(LN(pool_M(X)))                          global information window, M x M tokens
    X'  = X + DropPath(LWSA(LN1(X))) + DropPath(GLWCA(LN1(X), G))        ("parallel", default)
    X'' = X' + DropPath(MLP(LN2(X')))

("sequential": X' = X + DropPath(LWSA(LN1(X))), then X' += DropPath(GLWCA(LN1(X'), G(X'))).)

LWSA is Swin's own (shifted) window self-attention, computed with the pretrained block's modules;
GLWCA lets the M x M tokens of every local window attend to the M x M global tokens. The Swin
weights stay in an unmodified `SwinModel` (`swin`), so pretrained Swin checkpoints load strictly;
the new global-window modules live beside it (`global_attention`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import SwinConfig, SwinModel
from transformers.models.swin.modeling_swin import (
    SwinLayer,
    SwinRelativePositionBias,
    window_partition,
    window_reverse,
)


def partition_windows(feature_map: torch.Tensor, window: int) -> torch.Tensor:
    """[B, H, W, C] -> [B, num_windows, window^2, C], zero-padding H and W up to multiples of `window`."""
    _, height, width, channels = feature_map.shape
    padded = F.pad(feature_map, (0, 0, 0, (-width) % window, 0, (-height) % window))
    windows = window_partition(padded, window)
    num_windows = (padded.shape[1] // window) * (padded.shape[2] // window)
    # Batch as -1 in every view here: a traced (ONNX-exported) graph keeps it dynamic.
    return windows.view(-1, num_windows, window * window, channels)


def merge_windows(windows: torch.Tensor, window: int, height: int, width: int) -> torch.Tensor:
    """Inverse of `partition_windows`: [B, num_windows, window^2, C] -> [B, H, W, C] (padding dropped)."""
    channels = windows.shape[-1]
    padded_height, padded_width = height + (-height) % window, width + (-width) % window
    merged = window_reverse(windows.reshape(-1, window, window, channels), window, padded_height, padded_width)
    return merged.view(-1, padded_height, padded_width, channels)[:, :height, :width, :]


class GlobalLocalCrossAttention(nn.Module):
    """The global information window and the global-local window cross-attention of one Gswin block."""

    def __init__(self, dim: int, num_heads: int, window: int, pool: str, rel_bias: bool, layer_norm_eps: float = 1e-5):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"Gswin width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.window = window
        self.pool = pool
        self.global_norm = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.global_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.o_proj = nn.Linear(dim, dim)
        self.relative_position_bias = SwinRelativePositionBias(num_heads, (window, window)) if rel_bias else None

    def global_window(self, feature_map: torch.Tensor, window: int) -> torch.Tensor:
        """[B, H, W, C] -> the global window tokens [B, window^2, C]."""
        _, height, width, channels = feature_map.shape
        if height % window == 0 and width % window == 0:
            # Equal bins: adaptive pooling is a reshape + reduction, which also exports to ONNX with
            # a dynamic batch (adaptive pooling needs a static input size there).
            bins = feature_map.view(-1, window, height // window, window, width // window, channels)
            pooled = bins.mean(dim=(2, 4)) if self.pool == "avg" else bins.amax(dim=(2, 4))
            return self.global_proj(self.global_norm(pooled.flatten(1, 2)))
        channels_first = feature_map.permute(0, 3, 1, 2)
        pooled = (
            F.adaptive_avg_pool2d(channels_first, window)
            if self.pool == "avg"
            else F.adaptive_max_pool2d(channels_first, window)
        )
        return self.global_proj(self.global_norm(pooled.flatten(2).transpose(1, 2)))

    def forward(self, queries: torch.Tensor, global_tokens: torch.Tensor, window: int) -> torch.Tensor:
        """Every local window of `queries` [B, H, W, C] attends to `global_tokens` [B, window^2, C]."""
        batch, height, width, channels = queries.shape
        if self.relative_position_bias is not None and window != self.window:
            raise ValueError(
                f"glwca_rel_bias needs {self.window}x{self.window} windows, but the {height}x{width} map gives "
                f"{window}x{window}; use a larger image or glwca_rel_bias=False"
            )
        head_dim = channels // self.num_heads
        windows = partition_windows(queries, window)  # [B, nW, w2, C]
        q = self.q_proj(windows).unflatten(-1, (self.num_heads, head_dim)).transpose(2, 3)  # [B, nW, h, w2, d]
        k = (
            self.k_proj(global_tokens).unflatten(-1, (self.num_heads, head_dim)).transpose(1, 2)[:, None]
        )  # [B, 1, h, w2, d]
        v = self.v_proj(global_tokens).unflatten(-1, (self.num_heads, head_dim)).transpose(1, 2)[:, None]
        logits = (q * head_dim**-0.5) @ k.transpose(-1, -2)
        if self.relative_position_bias is not None:
            logits = logits + self.relative_position_bias()
        attended = (logits.softmax(dim=-1) @ v).transpose(2, 3).flatten(-2)  # [B, nW, w2, C]
        return merge_windows(self.o_proj(attended), window, height, width)


def _window_self_attention(block: SwinLayer, normed: torch.Tensor, dims: tuple[int, int]) -> torch.Tensor:
    """Swin's (shifted) window self-attention branch of `block` on LN1(X) [B, H*W, C], as SwinLayer computes it."""
    height, width = dims
    channels = normed.shape[-1]
    window = block.window_size
    feature_map, _ = block.maybe_pad(normed.view(-1, height, width, channels), height, width)
    padded_height, padded_width = feature_map.shape[1:3]
    windows = window_partition(block.cyclic_shift(feature_map), window).view(-1, window * window, channels)
    mask = block.get_attn_mask(padded_height, padded_width, dtype=normed.dtype, device=normed.device)
    attended, _ = block.attention(windows, mask)
    attended = block.dropout(attended).view(-1, window, window, channels)
    attended = block.cyclic_shift(window_reverse(attended, window, padded_height, padded_width), reverse=True)
    return attended[:, :height, :width, :].reshape(-1, height * width, channels)


class GswinVisionEncoder(nn.Module):
    """Swin encoder with Gswin blocks; returns tokens [B, 1 + h*w, C]: the mean token, then the final map."""

    def __init__(
        self, config: SwinConfig, gswin_stages, pool: str = "avg", combine: str = "parallel", rel_bias: bool = False
    ):
        super().__init__()
        self.swin = SwinModel(config, add_pooling_layer=False)
        self.combine = combine
        self.global_attention = nn.ModuleList(
            nn.ModuleList(
                GlobalLocalCrossAttention(
                    int(config.embed_dim * 2**stage),
                    config.num_heads[stage],
                    config.window_size,
                    pool,
                    rel_bias,
                    config.layer_norm_eps,
                )
                for _ in range(depth if stage in gswin_stages else 0)
            )
            for stage, depth in enumerate(config.depths)
        )

    def _gswin_block(
        self, block: SwinLayer, glwca: GlobalLocalCrossAttention, hidden: torch.Tensor, dims
    ) -> torch.Tensor:
        block.set_shift_and_window_size(dims)  # Swin's rule: a map no larger than the window is one window
        window = block.window_size
        map_shape = (-1, dims[0], dims[1], hidden.shape[2])  # -1: a traced batch stays dynamic (ONNX)
        normed = block.layernorm_before(hidden)
        local = _window_self_attention(block, normed, dims)
        if self.combine == "parallel":
            global_ = glwca(normed.view(map_shape), glwca.global_window(hidden.view(map_shape), window), window)
            hidden = hidden + block.drop_path(local) + block.drop_path(global_.flatten(1, 2))
        else:
            hidden = hidden + block.drop_path(local)
            queries = block.layernorm_before(hidden).view(map_shape)
            global_ = glwca(queries, glwca.global_window(hidden.view(map_shape), window), window)
            hidden = hidden + block.drop_path(global_.flatten(1, 2))
        return hidden + block.drop_path(block.dropout(block.mlp(block.layernorm_after(hidden))))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        hidden, dims = self.swin.embeddings(pixel_values)
        for stage, global_blocks in zip(self.swin.encoder.layers, self.global_attention):
            for index, block in enumerate(stage.blocks):
                if index < len(global_blocks):
                    hidden = self._gswin_block(block, global_blocks[index], hidden, dims)
                else:
                    hidden = block(hidden, dims)[0]
            if stage.downsample is not None:
                hidden = stage.downsample(hidden, dims)
                dims = ((dims[0] + 1) // 2, (dims[1] + 1) // 2)
        hidden = self.swin.layernorm(hidden)
        return torch.cat([hidden.mean(dim=1, keepdim=True), hidden], dim=1)
