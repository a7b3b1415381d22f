"""ResNet + MVSA visual branch shared by AMFMN and GaLR (AMFMN paper Eq. 14-18; docs/methods/amfmn.md#visual-branch).

ResNet stages f1..f4 (strides 4, 8, 16, 32) give a low-level map concat(f1, up2(f2)) and a
high-level map concat(f3, up2(f4)); `v_g` is a linear map of the spatial mean of f4. MVSA turns
the two maps into a saliency mask over `v_g`: LF = conv3x3/stride 4 (no padding) of the low map,
HF = conv1x1 of the high map, both at stride 16; [LF, HF] + mean(HF) -> conv1x1 main * sigmoid(conv1x1
gate) -> flatten -> sigmoid(Linear) -> mask; F_v = v_g * mask. No activations or normalisation
inside MVSA, as in the reference code.

The reference hard-codes a 16 x 16 map (256 px input). Here the map side is `image_size // 16`, so
small test configs work, and any input whose size differs from the configured one is rejected.
"""

import torch
from torch import nn
from torch.nn import functional as F

from ..common.towers import ResNetTrunk, resnet_config


def mvsa_map_size(image_size: int) -> int:
    """Side of the MVSA maps for square `image_size` inputs (16 for the reference 256)."""
    if image_size < 32 or image_size % 32:
        raise ValueError(
            f"image_size must be a positive multiple of 32 (ResNet strides and MVSA maps), got {image_size}"
        )
    return image_size // 16


def check_image_size(pixel_values: torch.Tensor, image_size: int) -> None:
    """Clear error for inputs the fixed-size MVSA layer cannot take (the reference crashes or misaligns)."""
    if pixel_values.dim() != 4 or tuple(pixel_values.shape[1:]) != (3, image_size, image_size):
        raise ValueError(
            f"pixel_values must be [batch, 3, {image_size}, {image_size}] (the model's image_size; MVSA's linear "
            f"layer is sized for it), got {tuple(pixel_values.shape)}"
        )


class ExtractFeature(nn.Module):
    """ResNet trunk (transformers `ResNetModel`) + `v_g` projection; returns (lower, higher, v_g)."""

    def __init__(self, config):
        super().__init__()
        self.backbone = ResNetTrunk(
            resnet_config(
                "resnet18",
                layer_type=config.backbone_layer_type,
                depths=list(config.backbone_depths),
                hidden_sizes=list(config.backbone_hidden_sizes),
                embedding_size=config.backbone_embedding_size,
            )
        )
        self.linear = nn.Linear(config.backbone_hidden_sizes[-1], config.embed_dim)

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f1, f2, f3, f4 = self.backbone(pixel_values)
        lower = torch.cat([f1, F.interpolate(f2, scale_factor=2, mode="nearest")], dim=1)
        higher = torch.cat([f3, F.interpolate(f4, scale_factor=2, mode="nearest")], dim=1)
        v_g = self.linear(f4.mean(dim=(2, 3)))
        return lower, higher, v_g


class MVSA(nn.Module):
    """Multiscale visual self-attention: a sigmoid saliency mask over `v_g` (reference `VSA_Module`)."""

    def __init__(self, config):
        super().__init__()
        sizes = config.backbone_hidden_sizes
        channels_in, channels_out = config.multiscale_in, config.multiscale_out
        map_size = mvsa_map_size(config.image_size)
        self.LF_conv = nn.Conv2d(sizes[0] + sizes[1], channels_in, kernel_size=3, stride=4, padding=0)
        self.HF_conv = nn.Conv2d(sizes[2] + sizes[3], channels_in, kernel_size=1)
        self.conv1x1_1 = nn.Conv2d(2 * channels_in, channels_out, kernel_size=1)
        self.conv1x1_2 = nn.Conv2d(2 * channels_in, channels_out, kernel_size=1)
        self.solo_attention = nn.Linear(channels_out * map_size * map_size, config.embed_dim)

    def forward(self, lower: torch.Tensor, higher: torch.Tensor, v_g: torch.Tensor) -> torch.Tensor:
        low = self.LF_conv(lower)
        high = self.HF_conv(higher)
        joint = torch.cat([low, high], dim=1) + high.mean(dim=1, keepdim=True)
        salient = self.conv1x1_1(joint) * torch.sigmoid(self.conv1x1_2(joint))
        mask = torch.sigmoid(self.solo_attention(salient.flatten(1)))
        return v_g * mask
