"""Dataclasses from YAML mappings: values checked per annotation, the field named in every error."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from rs_retrieval.errors import RSRetrievalError
from rs_retrieval.training.typed_yaml import FieldValueError, build_dataclass


@dataclasses.dataclass
class Inner:
    rate: float = 0.1
    precision: str = "no"


@dataclasses.dataclass
class Outer:
    steps: int = 1
    name: str | None = None
    milestones: list[int] = dataclasses.field(default_factory=list)
    options: dict = dataclasses.field(default_factory=dict)
    flag: bool = False
    inner: Inner = dataclasses.field(default_factory=Inner)


def build(text: str, **kwargs):
    return build_dataclass(Outer, yaml.safe_load(text), "cfg", **kwargs)


def test_yaml_values_become_typed_fields_and_none_keeps_the_defaults():
    built = build("steps: 3\nmilestones: [5, 10]\noptions: {a: 1}\nflag: true\ninner: {rate: 1e-4}\n")
    assert built == Outer(steps=3, milestones=[5, 10], options={"a": 1}, flag=True, inner=Inner(rate=1e-4))
    assert isinstance(built.inner.rate, float)  # YAML 1.1 reads 1e-4 as a string
    assert build("name: null\ninner:\n") == Outer() and build_dataclass(Outer, None, "cfg") == Outer()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("steps: true", "cfg.steps: expected an integer, got True"),
        ("steps: 1.5", "cfg.steps: expected an integer, got 1.5"),
        ("milestones: 5", "cfg.milestones: expected a list, got 5"),
        ("milestones: [1, x]", "cfg.milestones[1]: expected an integer, got 'x'"),
        ("inner: {rate: fast}", "cfg.inner.rate: expected a number, got 'fast'"),
        ("inner: 3", "cfg.inner: expected a mapping, got 3"),
        ("flag: 1", "cfg.flag: expected true/false, got 1"),
        ("name: 7", "cfg.name: expected a string, got 7"),
        ("options: [1]", "cfg.options: expected a mapping, got [1]"),
        ("inner: {rat: 1}", "cfg.inner: unknown field(s) ['rat']; expected some of ['rate', 'precision']"),
    ],
)
def test_a_value_of_the_wrong_type_names_its_field(text, message):
    with pytest.raises(FieldValueError) as caught:
        build(text)
    assert str(caught.value) == message and isinstance(caught.value, (RSRetrievalError, ValueError))


def test_false_words_turn_yaml_false_back_into_the_word_at_any_depth():
    assert build("inner: {precision: no}", false_words={"precision": "no"}).inner.precision == "no"
    with pytest.raises(FieldValueError, match=r"cfg.inner.precision: expected a string, got False"):
        build("inner: {precision: no}")
