"""Load a retrieval model with its processor, and make sure the two belong together.

Every folder we save stamps the model config with `vocab_fingerprint`; every load through
`load_model_and_processor` checks the processor against the model (method, vocabulary, input
size: see `models.common.pairing`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import RSRetrievalError
from .models.common.pairing import (
    ProcessorMismatchError,
    VocabularyMismatchError,
    check_model_config,
    vocabulary_fingerprint,
)
from .multispectral import apply_bands, parse_bands

__all__ = [
    "ModelNotFoundError",
    "ProcessorMismatchError",
    "VocabularyMismatchError",
    "check_processor",
    "load_model_and_processor",
    "stamp_vocabulary",
    "vocabulary_fingerprint",
]


def stamp_vocabulary(model, processor) -> None:
    """Record the processor's vocabulary fingerprint in the model config (saved with the weights)."""
    model.config.vocab_fingerprint = vocabulary_fingerprint(processor.tokenizer)


def check_processor(model, processor, source: str = "the model") -> None:
    """Raise a one-line `ProcessorMismatchError` unless `processor` belongs to `model`."""
    check_model_config(processor, model.config, source)


class ModelNotFoundError(RSRetrievalError, FileNotFoundError):
    """A model path names neither a local folder nor a Hub repository id."""


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


def _check_model_path(name_or_path: str) -> None:
    """A path that is no folder and cannot be a Hub id ("org/name") is a typo: say so plainly."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return
    if path.exists():
        raise ModelNotFoundError(f"{name_or_path} is a file, not a model folder")
    if not _HUB_ID.fullmatch(name_or_path) or path.parent != Path(".") and path.parent.is_dir():
        raise ModelNotFoundError(f"model folder {name_or_path} does not exist")


def load_model_and_processor(
    name_or_path: str,
    trust_remote_code: bool = False,
    device: str | None = None,
    allow_weight_mismatch: bool = False,
    precision: str = "fp32",
    bands=None,
):
    """(model in eval mode on `device`, processor) from a folder or Hub id, checked to be a pair.

    The one loader of the package (exported as `rs_retrieval.load_model_and_processor`): every
    command, the quickstart, the index and the web app load through it.

    Weights that do not fit the config (missing or unexpected keys) raise unless
    `allow_weight_mismatch` (see `RetrievalPreTrainedModel.from_pretrained`). `precision` "bf16"
    or "int8" returns the model encoding at that precision behind the same contract
    (`rs_retrieval.precision`, `docs/precision.md`); "fp32" is the plain model. `bands` (a
    composite such as "s2-false-color", band names or 1-based numbers; `rs_retrieval.multispectral`)
    sets the processor's band selection and scaling.
    """
    # .models registers the package's methods
    from .models import load_retrieval_model, load_retrieval_processor
    from .precision import check_precision, with_precision

    choice = parse_bands(bands)  # a bad band name fails before the model loads
    check_precision(precision)
    name_or_path = os.fspath(name_or_path)
    _check_model_path(name_or_path)
    device = resolve_device(device)  # a device the machine lacks fails before the model loads
    extra = {"allow_weight_mismatch": True} if allow_weight_mismatch else {}
    try:
        model = load_retrieval_model(name_or_path, trust_remote_code=trust_remote_code, **extra)
        processor = load_retrieval_processor(name_or_path, trust_remote_code=trust_remote_code)
    except OSError as err:  # transformers' "not a local folder and not a valid model identifier"
        if Path(name_or_path).is_dir():
            raise
        raise ModelNotFoundError(
            f"no model folder {name_or_path}, and no Hub model of that id could be loaded: {err}"
        ) from err
    check_processor(model, processor, source=name_or_path)
    return with_precision(model.to(device).eval(), precision, processor), apply_bands(processor, choice)


class DeviceError(RSRetrievalError, ValueError):
    """A device name torch does not know, or one this machine does not have."""


def resolve_device(device: str | None) -> str:
    """One rule for every command: the given device (checked to exist here), else cuda when
    available, else cpu."""
    import torch

    if not device:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device)
    except (RuntimeError, ValueError):
        raise DeviceError(f"device {device!r} is not a torch device name (cpu, cuda, cuda:1, mps, ...)") from None
    if kind.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            f"device {device!r}: this machine has no usable CUDA GPU (or torch "
            f"{torch.__version__} was built without CUDA); use --device cpu"
        )
    if kind.type == "cuda" and kind.index is not None and kind.index >= torch.cuda.device_count():
        raise DeviceError(
            f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s), numbered from 0"
        )
    if kind.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device {device!r}: MPS (Apple GPU) is not available here; use --device cpu")
    return device
