"""Dataclasses from YAML mappings: every value checked against its field's annotation, YAML scalars
converted where that is unambiguous, and every error naming the field (`recipe.training.lr: ...`).

Annotations understood: `bool`, `int`, `float`, `str`, `dict`, `list[X]`, `X | None` and nested
dataclasses; anything else is a `TypeError` (a programming error in the dataclass, not bad input).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any

from ..errors import RSRetrievalError

NO_FALSE_WORDS: Mapping[str, str] = types.MappingProxyType({})


class FieldValueError(RSRetrievalError, ValueError):
    """A YAML value does not fit its dataclass field; the message names the field and what was expected."""


def build_dataclass(cls, data: Any, where: str, false_words: Mapping[str, str] = NO_FALSE_WORDS):
    """`cls` from the mapping `data` (None: all defaults); unknown keys and values of the wrong type
    raise `FieldValueError` naming `where.field`. `false_words` maps string fields to the word that
    YAML 1.1 reads as False (`mixed_precision: no`), so that False becomes that word again."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise FieldValueError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise FieldValueError(f"{where}: unknown field(s) {unknown}; expected some of {names}")
    data = {key: false_words[key] if value is False and key in false_words else value for key, value in data.items()}
    return cls(**{key: convert_value(value, hints[key], f"{where}.{key}", false_words) for key, value in data.items()})


def convert_value(value: Any, annotation: Any, where: str, false_words: Mapping[str, str] = NO_FALSE_WORDS) -> Any:
    """Check `value` against a field annotation, converting YAML scalars where unambiguous."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        (inner,) = [a for a in options if a is not type(None)]
        return convert_value(value, inner, where, false_words)
    if dataclasses.is_dataclass(annotation):
        return build_dataclass(annotation, value, where, false_words)
    if origin is list:
        (item_type,) = typing.get_args(annotation)
        if not isinstance(value, (list, tuple)):
            raise FieldValueError(f"{where}: expected a list, got {value!r}")
        return [convert_value(item, item_type, f"{where}[{i}]", false_words) for i, item in enumerate(value)]
    if annotation is dict or origin is dict:
        if not isinstance(value, Mapping):
            raise FieldValueError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if annotation is bool:
        if not isinstance(value, bool):
            raise FieldValueError(f"{where}: expected true/false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldValueError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation is float:
        # YAML 1.1 reads `1e-4` (no dot) as a string; accept any string float() parses.
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FieldValueError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise FieldValueError(f"{where}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation {annotation!r} at {where}")
