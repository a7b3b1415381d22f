"""Load a retrieval model with its processor, and make sure the two belong together.

Text ids only mean something under the vocabulary the weights were trained with: a same-size
vocabulary in another order loads silently and ruins retrieval. So every folder we save stamps the
model config with `vocab_fingerprint` (a hash of the processor's token -> id table) and every load
through `load_model_and_processor` refuses a processor whose vocabulary hashes differently.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from .errors import RSRetrievalError


class VocabularyMismatchError(RSRetrievalError, ValueError):
    """The processor's vocabulary is not the one the model's weights were trained with."""


class ModelNotFoundError(RSRetrievalError, FileNotFoundError):
    """A model path names neither a local folder nor a Hub repository id."""


def vocabulary_fingerprint(tokenizer) -> str:
    """Hash of the tokenizer's token -> id table (order matters, file format does not)."""
    table = sorted(tokenizer.get_vocab().items(), key=lambda item: (item[1], item[0]))
    return hashlib.sha256(json.dumps(table, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


def stamp_vocabulary(model, processor) -> None:
    """Record the processor's vocabulary fingerprint in the model config (saved with the weights)."""
    model.config.vocab_fingerprint = vocabulary_fingerprint(processor.tokenizer)


def check_vocabulary(model, processor, source: str = "the model") -> None:
    """Raise when the model config records a vocabulary the processor does not have."""
    expected = getattr(model.config, "vocab_fingerprint", None)
    if expected is None or getattr(processor, "tokenizer", None) is None:
        return
    found = vocabulary_fingerprint(processor.tokenizer)
    if found != expected:
        raise VocabularyMismatchError(
            f"the processor's vocabulary (fingerprint {found}) is not the one {source} was trained with "
            f"({expected}): the same words would get other ids. Load the processor saved with the model."
        )


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
    name_or_path: str, trust_remote_code: bool = False, device: str | None = None, allow_weight_mismatch: bool = False, precision: str = "fp32",
):
    """(model in eval mode on `device`, processor) from a folder or Hub id, checked to be a pair.

    Weights that do not fit the config (missing or unexpected keys) raise unless
    `allow_weight_mismatch` (see `RetrievalPreTrainedModel.from_pretrained`). `precision` "bf16"
    or "int8" returns the model encoding at that precision behind the same contract
    (`rs_retrieval.precision`, `docs/precision.md`); "fp32" is the plain model.
    """
    # .models registers the package's methods
    from .models import load_retrieval_model, load_retrieval_processor
    from .precision import check_precision, with_precision

    check_precision(precision)
    name_or_path = os.fspath(name_or_path)
    _check_model_path(name_or_path)
    extra = {"allow_weight_mismatch": True} if allow_weight_mismatch else {}
    try:
        model = load_retrieval_model(name_or_path, trust_remote_code=trust_remote_code, **extra)
        processor = load_retrieval_processor(name_or_path, trust_remote_code=trust_remote_code)
    except OSError as err:  # transformers' "not a local folder and not a valid model identifier"
        if Path(name_or_path).is_dir():
            raise
        raise ModelNotFoundError(f"no model folder {name_or_path}, and no Hub model of that id could be loaded: {err}") from err
    check_vocabulary(model, processor, source=name_or_path)
    return with_precision(model.to(resolve_device(device)).eval(), precision, processor), processor


def resolve_device(device: str | None) -> str:
    """One rule for every command: the given device, else cuda when available, else cpu."""
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
