"""The method registry: one `register_method` call makes a retrieval method known everywhere.

A method is a config class, a model class and a processor class (whose `tokenizer_family` says
how vocabularies become tokenizers), plus optionally an official-checkpoint converter and a
default recipe, and what is known about it: its paper, a summary, whether it is a reconstruction,
whether transformers' zero-shot pipeline serves it, and the numbers its authors published.
`register_method` does every `Auto*` registration the same way, so
`AutoConfig/AutoModel/AutoImageProcessor/AutoTokenizer/AutoProcessor.from_pretrained` load a
saved folder of the method; the trainer, the converters, the CLI, the model cards and the app
look methods up with `get_method` / `list_methods` only.

Adding a method (in the package or in user code):

    register_method(MyConfig, MyModel, MyProcessor, default_recipe="my_synth",
                    title="My method", paper=Paper("A. Author, ..."), summary="...", zero_shot=True)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoProcessor, AutoTokenizer
from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

from ..errors import RSRetrievalError
from ..pipelines import register_zero_shot
from .common.base import RetrievalPreTrainedModel
from .common.processing import RetrievalProcessor, RSImageProcessor
from .records import Paper, ReportedResult, canonical_dataset


class UnknownMethodError(RSRetrievalError, ValueError):
    """A method name that no `register_method` call declared."""


@dataclass(frozen=True)
class Method:
    """Everything the package knows about one retrieval method."""

    name: str
    config_class: type
    model_class: type
    processor_class: type
    image_processor_class: type = RSImageProcessor
    #: Official-checkpoint converter: a callable or "module:function", imported on first use,
    #: called as `fn(checkpoint_path, method=..., vocab_path=..., out_dir=..., **options)`.
    converter: str | Callable | None = None
    #: Packaged recipe a user starts from (`rs-retrieval train --config NAME`).
    default_recipe: str | None = None
    #: False for CLIP/SigLIP: their folders load through `models.model_loading`, not the Auto classes.
    auto_classes: bool = True
    #: Long name for cards and the app ("AMFMN (Asymmetric Multimodal Feature Matching Network)").
    title: str = ""
    paper: Paper | None = None
    #: What the method does, in a sentence or two (model cards, the app's About tab).
    summary: str = ""
    #: True where no official code exists and the model is our reading of the paper; the note says what is known.
    reconstructed: bool = False
    reconstruction_note: str = ""
    #: True where the image side is pixels only, so `pipeline("zero-shot-image-classification")` serves it.
    zero_shot: bool = False
    #: Numbers as published by the authors (never measured here), and what is known where no table exists.
    reported_results: tuple[ReportedResult, ...] = ()
    reported_note: str = ""

    @property
    def tokenizer_family(self):
        """None for processors that bring their checkpoint's tokenizer (CLIP family)."""
        return getattr(self.processor_class, "tokenizer_family", None)

    def get_converter(self) -> Callable:
        if self.converter is None:
            raise UnknownMethodError(
                f"no checkpoint converter for method {self.name!r}; methods with one: {methods_with_converters()}"
            )
        if callable(self.converter):
            return self.converter
        module, _, name = self.converter.partition(":")
        return getattr(importlib.import_module(module), name)

    def reported(self, dataset: str | None = None) -> list[ReportedResult]:
        """Published rows, on `dataset` when given (any spelling `canonical_dataset` knows)."""
        dataset = canonical_dataset(dataset)
        return [r for r in self.reported_results if dataset is None or r.dataset == dataset]


_METHODS: dict[str, Method] = {}
_ALIASES: dict[str, str] = {}


def register_method(
    config_class: type,
    model_class: type,
    processor_class: type,
    image_processor_class: type = RSImageProcessor,
    converter: str | Callable | None = None,
    default_recipe: str | None = None,
    legacy_processor_names: tuple[str, ...] = (),
    auto_classes: bool = True,
    aliases: tuple[str, ...] = (),
    *,
    title: str = "",
    paper: Paper | None = None,
    summary: str = "",
    reconstructed: bool = False,
    reconstruction_note: str = "",
    zero_shot: bool = False,
    reported_results: tuple[ReportedResult, ...] = (),
    reported_note: str = "",
) -> Method:
    """Register a method under `config_class.model_type` with the registry and every Auto class.

    Registering the same classes again is a no-op (re-imports, notebooks); another method under
    an existing name replaces it. `legacy_processor_names`: earlier names of the processor class,
    which folders saved before a rename still carry (see `_register_legacy_processor_name`).
    `auto_classes=False` for methods whose `model_type` is transformers' own (CLIP, SigLIP: their
    folders stay plain transformers checkpoints, `models.model_loading` loads them with the contract).
    `aliases`: other names `get_method` accepts (e.g. a checkpoint format, "openclip").
    The keyword-only arguments are the method's record (`Method`); `zero_shot=True` also registers
    the model with `AutoModelForZeroShotImageClassification` (`rs_retrieval.pipelines`).
    """
    name = config_class.model_type
    if not name:
        raise ValueError(f"{config_class.__name__} has no model_type")
    if not (isinstance(model_class, type) and issubclass(model_class, RetrievalPreTrainedModel)):
        raise TypeError(f"{model_class!r} is not a RetrievalPreTrainedModel")
    if auto_classes and not (isinstance(processor_class, type) and issubclass(processor_class, RetrievalProcessor)):
        raise TypeError(f"{processor_class!r} is not a RetrievalProcessor")
    if auto_classes and processor_class.tokenizer_family is None:
        raise TypeError(f"{processor_class.__name__} names no tokenizer_family")
    if model_class.base_model_prefix != name:
        raise TypeError(
            f"{model_class.__name__}.base_model_prefix must be the "
            f"model_type {name!r}, got {model_class.base_model_prefix!r}"
        )
    if model_class.config_class is not config_class:
        raise TypeError(
            f"{model_class.__name__}.config_class is {model_class.config_class.__name__}, not {config_class.__name__}"
        )
    method = Method(
        name,
        config_class,
        model_class,
        processor_class,
        image_processor_class,
        converter,
        default_recipe,
        auto_classes,
        title=title,
        paper=paper,
        summary=summary,
        reconstructed=reconstructed,
        reconstruction_note=reconstruction_note,
        zero_shot=zero_shot,
        reported_results=tuple(reported_results),
        reported_note=reported_note,
    )
    if auto_classes:
        AutoConfig.register(name, config_class, exist_ok=True)
        AutoModel.register(config_class, model_class, exist_ok=True)
        AutoImageProcessor.register(
            config_class, image_processor_classes={"pil": image_processor_class}, exist_ok=True
        )
        AutoTokenizer.register(
            config_class, tokenizer_class=processor_class.tokenizer_family.tokenizer_class, exist_ok=True
        )
        AutoProcessor.register(config_class, processor_class, exist_ok=True)
    if zero_shot:
        register_zero_shot(model_class)
    for legacy_name in legacy_processor_names:
        _register_legacy_processor_name(config_class, processor_class, legacy_name)
    _METHODS[name] = method
    _ALIASES.update(dict.fromkeys(aliases, name))
    return method


def _register_legacy_processor_name(config_class: type, processor_class: type, legacy_name: str) -> None:
    """`AutoProcessor.from_pretrained` looks a saved folder's processor up by the class name in its
    `processor_config.json` and gives up on names it does not know, so an old name must stay
    findable: an alias class of that name, keyed by a private config subclass, whose
    `from_pretrained` builds the current class."""

    def from_pretrained(cls, *args, **kwargs):
        return processor_class.from_pretrained(*args, **kwargs)

    alias = type(
        legacy_name,
        (processor_class,),
        {"from_pretrained": classmethod(from_pretrained), "__module__": processor_class.__module__},
    )
    key = type(f"{config_class.__name__}Before{legacy_name}", (config_class,), {"__module__": config_class.__module__})
    PROCESSOR_MAPPING.register(key, alias, exist_ok=True)


def list_methods() -> list[str]:
    """Names (`model_type`s) of every registered method, sorted."""
    return sorted(_METHODS)


def get_method(name: str) -> Method:
    name = _ALIASES.get(name, name)
    if name not in _METHODS:
        raise UnknownMethodError(f"unknown retrieval method {name!r}; registered methods: {list_methods()}")
    return _METHODS[name]


def find_method(name: str) -> Method | None:
    """The method registered under `name` (or an alias), None when there is none (cards of foreign folders)."""
    return _METHODS.get(_ALIASES.get(name, name))


def methods_with_converters() -> list[str]:
    return [name for name in list_methods() if _METHODS[name].converter is not None]
