"""Input checks that stay in the graph: no `.item()`, no data-dependent Python branch.

A check reads tensor data, which in eager mode means a host sync and under `torch.compile` a graph
break. `check_all` keeps one check for every mode: eager raises `ValueError` with details computed
only on failure; inside `torch.compile` the condition becomes `torch._assert_async` (an in-graph
assert that raises `RuntimeError` with the same message, without breaking the graph); a
TorchScript trace (ONNX export) records no check, as an ONNX graph cannot raise.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def check_all(condition: torch.Tensor, message: str, details: Callable[[], str] | None = None) -> None:
    """Raise when the boolean tensor `condition` has a False entry; `details()` (eager only) adds values."""
    if torch.jit.is_tracing():
        return
    condition = condition.all()
    if torch.compiler.is_compiling():
        torch._assert_async(condition, message)
    elif not bool(condition):
        raise ValueError(f"{message}{'; ' + details() if details is not None else ''}")
