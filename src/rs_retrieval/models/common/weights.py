"""Strict loading of converted weights: a state dict must match the target module exactly.

Used by the checkpoint converters (`rs_retrieval.convert`) and by models that start a tower from
published non-transformers weights (AMFMN/GaLR skip-thought), so it lives with the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ...errors import RSRetrievalError


class CheckpointConversionError(RSRetrievalError, ValueError):
    """A checkpoint does not match the layout a converter expects (the message names the keys)."""


def check_state_dict(state: dict[str, torch.Tensor], model: torch.nn.Module, source: str = "checkpoint") -> None:
    """Refuse unless `state` has exactly the model's keys, with the same shapes."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if own[k].shape != state[k].shape
    )
    problems = [
        f"{len(items)} {what}: {preview_keys(items)}"
        for what, items in (
            ("missing key(s)", missing),
            ("unexpected key(s)", unexpected),
            ("shape mismatch(es) (checkpoint vs model)", mismatched),
        )
        if items
    ]
    if problems:
        raise CheckpointConversionError(f"{source} does not match {type(model).__name__}: " + "; ".join(problems))


def load_converted(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """`check_state_dict`, then load every tensor (dtype cast to the model's)."""
    check_state_dict(state, model, source)
    own = model.state_dict()
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)


def preview_keys(items: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... (+{len(items) - limit} more)" if len(items) > limit else "")
