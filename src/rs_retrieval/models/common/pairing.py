"""Which processor belongs to a model: its method's processor class, its vocabulary, its input size.

A processor of another method can load next to a model and fail later with a traceback (or
start a detector download); a same-size vocabulary in another order, or another input size,
loads and encodes silently and ruins retrieval. So every folder we save stamps the model config
with `vocab_fingerprint` (a hash of the processor's token -> id table), and every pairing the
package sees is checked here: `load_model_and_processor` (CLI and Python), and any of our
processors loaded from a folder that also holds a model's `config.json` (`AutoProcessor`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ...errors import RSRetrievalError


class ProcessorMismatchError(RSRetrievalError, ValueError):
    """The processor is not the one saved with the model: another method, vocabulary or input size."""


class VocabularyMismatchError(ProcessorMismatchError):
    """The processor's vocabulary is not the one the model's weights were trained with."""


def vocabulary_fingerprint(tokenizer) -> str:
    """Hash of the tokenizer's token -> id table (order matters, file format does not)."""
    table = sorted(tokenizer.get_vocab().items(), key=lambda item: (item[1], item[0]))
    return hashlib.sha256(json.dumps(table, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


def _expected_processor_class(model_type: str | None):
    """The processor class registered with the Auto classes for `model_type`, if any."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

    try:
        return PROCESSOR_MAPPING[CONFIG_MAPPING[model_type]]
    except (KeyError, ValueError, ImportError, AttributeError):  # not a type the Auto classes know
        return None


def _processor_input_size(image_processor) -> int | None:
    """The side of the pixels the image processor produces (its crop when it centre-crops)."""
    crop = getattr(image_processor, "crop_size", None) if getattr(image_processor, "do_center_crop", False) else None
    size = crop or getattr(image_processor, "size", None)
    if isinstance(size, int):
        return size
    if isinstance(size, dict) and "height" in size:
        return int(size["height"])
    return None


def check_pairing(
    processor, model_type: str | None, vocab_fingerprint: str | None, image_size: int | None, source: str
) -> None:
    """Raise a `ProcessorMismatchError` (one line) unless `processor` fits the model described by the other arguments."""
    expected = _expected_processor_class(model_type)
    wrapped = getattr(processor, "processor", processor)  # the CLIP family's adapter around transformers' processor
    if expected is not None and not isinstance(wrapped, expected):
        raise ProcessorMismatchError(
            f"{source} is a model of method {model_type!r}, which needs a {expected.__name__}, but the processor is a "
            f"{type(wrapped).__name__}: load the processor saved with the model"
        )
    tokenizer = getattr(processor, "tokenizer", None)
    if vocab_fingerprint is not None and tokenizer is not None:
        found = vocabulary_fingerprint(tokenizer)
        if found != vocab_fingerprint:
            raise VocabularyMismatchError(
                f"the processor's vocabulary (fingerprint {found}) is not the one {source} was trained with "
                f"({vocab_fingerprint}): the same words would get other ids. Load the processor saved with the model."
            )
    produced = _processor_input_size(getattr(processor, "image_processor", None))
    if image_size is not None and produced is not None and produced != image_size:
        raise ProcessorMismatchError(
            f"the processor makes {produced} px images but {source} reads "
            f"{image_size} px: load the processor saved with the model"
        )


def _config_image_size(config: dict) -> int | None:
    size = config.get("image_size") or (config.get("vision_config") or {}).get("image_size")
    return int(size) if isinstance(size, int) else None


def check_model_config(processor, model_config, source: str) -> None:
    """`check_pairing` against a model config (object or `config.json` dict)."""
    config = model_config if isinstance(model_config, dict) else model_config.to_dict()
    check_pairing(
        processor, config.get("model_type"), config.get("vocab_fingerprint"), _config_image_size(config), source
    )


def check_folder_pairing(processor, folder: str | os.PathLike) -> None:
    """When the processor's folder also holds a model's `config.json`, the two must belong together."""
    config_path = Path(folder) / "config.json"
    if not config_path.is_file():
        return
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # an unreadable config.json is reported when the model is loaded
    if isinstance(config, dict) and config.get("model_type"):
        check_model_config(processor, config, f"the model in {folder}")
