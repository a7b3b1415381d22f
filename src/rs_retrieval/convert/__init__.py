"""Converters from official checkpoints to `save_pretrained` folders, dispatched by method name.

A method declares its converter in `register_method(..., converter="module:function")`; the
function is imported on first use and is called as
`fn(checkpoint_path, method=..., vocab_path=..., out_dir=..., **options)`.
"""

from __future__ import annotations

import os

from .._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {".common": ["CheckpointConversionError"]})


def convert_checkpoint(path, method: str, vocab_path=None, out_dir=None, **options) -> str:
    """Convert an official checkpoint of `method` into a `save_pretrained` folder `out_dir`
    (written atomically); returns the folder. `options` go to the method's converter
    (e.g. `allow_pickle`, `overwrite`, `config_overrides`)."""
    from ..errors import InputNotFoundError
    from ..models import get_method

    converter = get_method(method).get_converter()
    if not os.path.exists(path):  # named before anything the converter would miss: it matters most
        raise InputNotFoundError(f"checkpoint {path} does not exist")
    if vocab_path is not None and not os.path.exists(vocab_path):
        raise InputNotFoundError(f"vocabulary {vocab_path} does not exist")
    if out_dir is None:
        raise ValueError("out_dir is required")
    return converter(path, method=method, vocab_path=vocab_path, out_dir=out_dir, **options)


__all__ = ["CheckpointConversionError", "convert_checkpoint"]
