"""Optimizer parameter groups and learning-rate schedules from a recipe's `training` section.

Parameter groups are rules on parameter names: a parameter joins the first rule with a prefix its
name starts with, and the rest form the `default` group (recipe `lr`/`weight_decay`). A rule that
matches no trainable parameter is an error: it is almost always a typo in a module name.

Schedules are multiplicative factors of each group's base lr as a function of the optimizer step,
so one definition covers AMFMN/GaLR's "x0.7 at epochs 19, 39, 59", MSA's constant lr and CMPAGL's
warm-up + cosine.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from .recipe import RecipeError, TrainingSpec


def parameter_groups(model: nn.Module, training: TrainingSpec) -> list[dict]:
    """Optimizer param groups (each with a `name`) per the recipe's prefix rules."""
    rules = training.param_groups
    members: list[list[nn.Parameter]] = [[] for _ in rules]
    default: list[nn.Parameter] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        index = next((i for i, rule in enumerate(rules) if any(name.startswith(p) for p in rule.prefixes)), None)
        (default if index is None else members[index]).append(param)
    groups = []
    for i, (rule, params) in enumerate(zip(rules, members)):
        if not params:
            raise RecipeError(
                f"training.param_groups[{i}] ({rule.name or rule.prefixes}): no trainable parameter name starts with "
                f"{rule.prefixes}; top-level modules are "
                f"{sorted({n.split('.')[0] for n, _ in model.named_parameters()})}"
            )
        groups.append(
            {
                "name": rule.name or f"group{i}",
                "params": params,
                "lr": training.lr if rule.lr is None else rule.lr,
                "weight_decay": training.weight_decay if rule.weight_decay is None else rule.weight_decay,
            }
        )
    if default:
        groups.append({"name": "default", "params": default, "lr": training.lr, "weight_decay": training.weight_decay})
    return _split_1d(groups) if training.no_decay_1d else groups


def _split_1d(groups: list[dict]) -> list[dict]:
    """Each group -> its parameters of >= 2 dims, plus a `<name>/no_decay` group of the others."""
    split = []
    for group in groups:
        matrices = [p for p in group["params"] if p.dim() >= 2]
        vectors = [p for p in group["params"] if p.dim() < 2]
        if matrices:
            split.append({**group, "params": matrices})
        if vectors:
            split.append({**group, "name": f"{group['name']}/no_decay", "params": vectors, "weight_decay": 0.0})
    return split


def build_optimizer(model: nn.Module, training: TrainingSpec) -> torch.optim.Optimizer:
    """The recipe's optimizer; Adam/AdamW use torch's fused kernel (one pass over each tensor,
    ~5x faster than the per-tensor loop on CPU for a 35M-parameter model; same update rule)."""
    groups = parameter_groups(model, training)
    fused = all(p.is_floating_point() for group in groups for p in group["params"])
    if training.optimizer == "adam":
        return torch.optim.Adam(groups, lr=training.lr, betas=tuple(training.betas), eps=training.eps, fused=fused)
    if training.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=training.lr, betas=tuple(training.betas), eps=training.eps, fused=fused)
    if training.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=training.lr, momentum=training.momentum)
    raise RecipeError(f"training.optimizer: unknown optimizer {training.optimizer!r}")


def lr_factor(training: TrainingSpec, steps_per_epoch: int, total_steps: int) -> Callable[[int], float]:
    """step -> factor applied to every group's base lr at optimizer step `step` (0-based)."""
    kind = training.lr_scheduler
    if kind == "constant":
        return lambda step: 1.0
    if kind == "multistep":
        milestones = sorted(training.lr_milestones)

        def multistep(step: int) -> float:
            epoch = step // steps_per_epoch
            return training.lr_gamma ** sum(epoch >= m for m in milestones)

        return multistep
    warmup = int(round(training.warmup_ratio * total_steps))
    floor = training.min_lr_ratio

    def warmup_then_decay(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        shape = 0.5 * (1.0 + math.cos(math.pi * progress)) if kind == "cosine" else 1.0 - progress
        return floor + (1.0 - floor) * shape

    if kind in ("cosine", "linear"):
        return warmup_then_decay
    raise RecipeError(f"training.lr_scheduler: unknown schedule {kind!r}")


def build_scheduler(optimizer, training: TrainingSpec, steps_per_epoch: int, total_steps: int):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(training, steps_per_epoch, total_steps))
