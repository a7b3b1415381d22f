"""Converters from official checkpoints to `save_pretrained` folders, dispatched by method name.

`CONVERTERS` maps a method to "module:function"; the function is imported on first use and is
called as `fn(checkpoint_path, method=..., vocab_path=..., out_dir=..., **options)`. A new method
adds one entry here (or calls `register_converter` at run time).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from .._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {".common": ["CheckpointConversionError"]})

CONVERTERS: dict[str, str | Callable] = {
    "amfmn": "rs_retrieval.convert.amfmn_galr:convert_amfmn_galr",
    "galr": "rs_retrieval.convert.amfmn_galr:convert_amfmn_galr",
    "msa": "rs_retrieval.convert.msa:convert_msa",
    "openclip": "rs_retrieval.convert.openclip:convert_openclip_command",
}


def register_converter(method: str, converter: str | Callable, exist_ok: bool = False) -> None:
    """Add a converter ("module:function" or a callable) for `method`."""
    if method in CONVERTERS and not exist_ok:
        raise ValueError(f"a converter for {method!r} is already registered")
    CONVERTERS[method] = converter


def get_converter(method: str) -> Callable:
    if method not in CONVERTERS:
        raise ValueError(f"no checkpoint converter for method {method!r}; available: {sorted(CONVERTERS)}")
    converter = CONVERTERS[method]
    if isinstance(converter, str):
        module, _, name = converter.partition(":")
        converter = getattr(importlib.import_module(module), name)
    return converter


def convert_checkpoint(path, method: str, vocab_path=None, out_dir=None, **options) -> str:
    """Convert an official checkpoint of `method` into a `save_pretrained` folder `out_dir`
    (written atomically); returns the folder. `options` go to the method's converter
    (e.g. `allow_pickle`, `overwrite`, `config_overrides`)."""
    if out_dir is None:
        raise ValueError("out_dir is required")
    return get_converter(method)(path, method=method, vocab_path=vocab_path, out_dir=out_dir, **options)


__all__ = ["CONVERTERS", "CheckpointConversionError", "convert_checkpoint", "get_converter", "register_converter"]
