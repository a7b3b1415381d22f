"""Class lists and prompt templates for zero-shot scene classification
(docs/clip-zeroshot.md#zero-shot-scene-classification).

The packaged class sets (`data/<name>.json`) keep the label order of each dataset's release
(class index i = the i-th folder, sorted as the dataset loaders sort them), the folder names
(to match an ImageFolder-style copy of the dataset), human-readable prompt names, per-source
name variants (`georsclip`, `clip_benchmark`, `sclip`) and the name of the default template set.
Template sets live in `data/templates.json`; every template holds exactly one `{}`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

from ..errors import RSRetrievalError


class ClassSetError(RSRetrievalError, ValueError):
    """Unknown class set or template set, or a class/template file that cannot be used."""


@dataclass(frozen=True)
class ClassSet:
    """Classes (in label order) and the prompt templates that turn a class into texts.

    `folders` are the dataset's folder names (label i = folder i), used to read an
    ImageFolder-style dataset; for a user list they equal `classes`.
    """

    name: str
    classes: tuple[str, ...]
    templates: tuple[str, ...]
    folders: tuple[str, ...] = ()
    source: str = ""
    variants: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if not self.classes:
            raise ClassSetError(f"class set {self.name!r} has no classes")
        duplicates = sorted({c for c in self.classes if self.classes.count(c) > 1})
        if duplicates:
            raise ClassSetError(f"class set {self.name!r} repeats class name(s) {duplicates}")
        _check_templates(self.templates, self.name)
        if not self.folders:
            object.__setattr__(self, "folders", tuple(self.classes))
        if len(self.folders) != len(self.classes):
            raise ClassSetError(
                f"class set {self.name!r}: {len(self.folders)} folders for {len(self.classes)} classes"
            )

    def prompts(self) -> list[list[str]]:
        """The texts of every class: `prompts()[c][t]` = template t filled with class c."""
        return [[template.format(name) for template in self.templates] for name in self.classes]

    def with_templates(self, templates: str | list[str] | tuple[str, ...]) -> ClassSet:
        """The same classes with another template set (a packaged name) or an explicit list."""
        chosen = load_templates(templates) if isinstance(templates, str) else tuple(templates)
        return ClassSet(self.name, self.classes, chosen, self.folders, self.source, self.variants)

    def with_variant(self, variant: str) -> ClassSet:
        """The same labels named as one published source named them (e.g. `georsclip`)."""
        if variant not in self.variants:
            raise ClassSetError(f"class set {self.name!r} has no variant {variant!r}; it has {sorted(self.variants)}")
        return ClassSet(
            self.name, tuple(self.variants[variant]), self.templates, self.folders, self.source, self.variants
        )


def _check_templates(templates, where: str) -> None:
    if not templates:
        raise ClassSetError(f"{where}: no prompt templates")
    for template in templates:
        if not isinstance(template, str) or template.count("{}") != 1:
            raise ClassSetError(f"{where}: template {template!r} must contain exactly one '{{}}'")


def _data_file(name: str):
    return resources.files(__package__).joinpath("data", name)


@cache
def _template_sets() -> dict[str, dict]:
    return json.loads(_data_file("templates.json").read_text(encoding="utf-8"))


def list_template_sets() -> list[str]:
    return sorted(_template_sets())


def load_templates(name: str) -> tuple[str, ...]:
    """A packaged template set by name (see `list_template_sets()`)."""
    sets = _template_sets()
    if name not in sets:
        raise ClassSetError(f"unknown template set {name!r}; packaged sets: {sorted(sets)}")
    return tuple(sets[name]["templates"])


def list_class_sets() -> list[str]:
    """Names of the packaged class sets (aid, eurosat, optimal31, patternnet, resisc45, rs_synth, ...)."""
    return sorted(
        entry.name[:-5]
        for entry in resources.files(__package__).joinpath("data").iterdir()
        if entry.name.endswith(".json") and entry.name != "templates.json"
    )


def _from_mapping(data: dict, name: str, where: str) -> ClassSet:
    if not isinstance(data.get("classes"), list) or not all(isinstance(c, str) for c in data["classes"]):
        raise ClassSetError(f"{where}: 'classes' must be a list of strings")
    templates = data.get("templates", "single_satellite_photo")
    templates = load_templates(templates) if isinstance(templates, str) else tuple(templates)
    return ClassSet(
        name=data.get("name", name),
        classes=tuple(data["classes"]),
        templates=templates,
        folders=tuple(data.get("folders", ())),
        source=data.get("source", where),
        variants=data.get("variants", {}),
    )


def _read_user_file(path: Path) -> ClassSet:
    """A JSON class set (the packaged layout) or a text file with one class name per line (`#` comments)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ClassSetError(f"cannot read class file {path}: {error}") from error
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ClassSetError(f"{path}: not valid JSON ({error})") from error
        if isinstance(data, list):
            data = {"classes": data}
        if not isinstance(data, dict):
            raise ClassSetError(f"{path}: expected a list of class names or an object with 'classes'")
        return _from_mapping(data, path.stem, str(path))
    classes = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not classes:
        raise ClassSetError(f"{path}: no class names (one per line)")
    return _from_mapping({"classes": classes}, path.stem, str(path))


def load_class_set(
    name_or_path: str | os.PathLike, templates: str | list[str] | None = None, variant: str | None = None
) -> ClassSet:
    """A packaged class set by name, or a user file (`.txt`: one class per line; `.json`).

    `templates` replaces the set's default templates (a packaged template-set name or a list);
    `variant` picks the class names one published source used (e.g. `georsclip` for AID).
    """
    key = str(name_or_path)
    if key in list_class_sets():
        data = json.loads(_data_file(f"{key}.json").read_text(encoding="utf-8"))
        class_set = _from_mapping(data, key, f"packaged class set {key}")
    elif Path(key).is_file():
        class_set = _read_user_file(Path(key))
    else:
        raise ClassSetError(f"{key!r} is neither a packaged class set ({', '.join(list_class_sets())}) nor a file")
    if variant is not None:
        class_set = class_set.with_variant(variant)
    if templates is not None:
        class_set = class_set.with_templates(templates)
    return class_set
