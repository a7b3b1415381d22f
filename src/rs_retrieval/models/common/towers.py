"""Backbones shared by the methods, built from `transformers` so ImageNet/BERT weights load."""

import torch
from torch import nn
from transformers import PreTrainedModel, ResNetConfig, ResNetModel

#: Standard ResNet shapes; AMFMN/GaLR use resnet18, MSA resnet50.
RESNET_VARIANTS = {
    "resnet18": dict(layer_type="basic", depths=[2, 2, 2, 2], hidden_sizes=[64, 128, 256, 512], embedding_size=64),
    "resnet34": dict(layer_type="basic", depths=[3, 4, 6, 3], hidden_sizes=[64, 128, 256, 512], embedding_size=64),
    "resnet50": dict(
        layer_type="bottleneck", depths=[3, 4, 6, 3], hidden_sizes=[256, 512, 1024, 2048], embedding_size=64
    ),
}


def resnet_config(variant: str = "resnet18", **overrides) -> ResNetConfig:
    """A transformers `ResNetConfig` for a named variant; `overrides` make tiny test trunks."""
    if variant not in RESNET_VARIANTS:
        raise ValueError(f"unknown ResNet variant {variant!r}; choose one of {sorted(RESNET_VARIANTS)}")
    return ResNetConfig(**{**RESNET_VARIANTS[variant], **overrides})


class ResNetTrunk(nn.Module):
    """ResNet without its classifier, returning the four stage feature maps (strides 4, 8, 16, 32)."""

    def __init__(self, config: ResNetConfig):
        super().__init__()
        self.resnet = ResNetModel(config)

    @property
    def stage_channels(self) -> list[int]:
        return list(self.resnet.config.hidden_sizes)

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # channels_last lets oneDNN run its NHWC convolution kernels (faster inference on CPU);
        # the stage maps come back NHWC-strided, which every consumer here accepts.
        pixel_values = pixel_values.contiguous(memory_format=torch.channels_last)
        out = self.resnet(pixel_values, output_hidden_states=True, return_dict=True)
        # hidden_states = (stem output, stage1, ..., stage4)
        return tuple(out.hidden_states[1:])


def load_tower_weights(module: nn.Module, name_or_path: str) -> None:
    """Load pretrained transformers weights (local dir or Hub id) into `module`, strictly.

    `module` is a transformers model (e.g. `BertModel`) or a wrapper holding one as its only child
    (`ResNetTrunk`). A shape or key mismatch raises with the offending keys named.
    """
    target = module
    if not isinstance(target, PreTrainedModel):
        children = [m for m in module.children() if isinstance(m, PreTrainedModel)]
        if len(children) != 1:
            raise TypeError(
                f"cannot load {name_or_path!r}: {type(module).__name__} wraps no single transformers model"
            )
        target = children[0]
    pretrained = type(target).from_pretrained(name_or_path)
    state = pretrained.state_dict()
    own = target.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shape_mismatch = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or shape_mismatch:
        raise ValueError(
            f"pretrained weights {name_or_path!r} do not match {type(target).__name__}: "
            f"missing={missing[:5]} unexpected={unexpected[:5]} shape_mismatch={shape_mismatch[:5]} "
            "(check that the tower sub-config matches the checkpoint)"
        )
    target.load_state_dict(state, strict=True)
