"""Training recipes: one YAML file per (method, dataset), validated into typed dataclasses.

A recipe has four sections (`model`, `processor`, `data`, `training`) plus `output_dir`. Every
field can be overridden with dotted `key=value` strings whose values are parsed as YAML
(`training.lr=1e-3`, `model.embed_dim=64`, `training.lr_milestones=[5,10]`). Unknown fields,
unknown methods and values of the wrong type raise `RecipeError` naming the field.

In the `model` section, `type`, `pretrained`, `init_from` and `import_modules` are recipe fields;
every other key overrides a field of the method's config class (checked against its defaults).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterable, Mapping
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml

from ..errors import RSRetrievalError
from ..evaluation.choices import DEFAULT_PROTOCOL, TIE_POLICIES
from ..evaluation.protocols import PROTOCOL_NAMES, PROTOCOLS
from ..packaged import packaged_files
from .experiment_trackers import parse_report_to
from .typed_yaml import FieldValueError, build_dataclass


class RecipeError(RSRetrievalError, ValueError):
    """A recipe file or override is invalid; the message names the field and what was expected."""


@dataclasses.dataclass
class PretrainedTowers:
    """Pretrained backbone weights (local directory or Hub id of a transformers model)."""

    vision: str | None = None
    text: str | None = None
    #: Extra keyword arguments of the method's `from_pretrained_towers` (e.g. AMFMN `allow_pickle`).
    options: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class ModelSpec:
    #: Registered `model_type` of the method (e.g. `amfmn`).
    type: str = ""
    pretrained: PretrainedTowers = dataclasses.field(default_factory=PretrainedTowers)
    #: Start from a saved retrieval model (`save_pretrained` directory) instead of a fresh init.
    init_from: str | None = None
    #: Extra modules imported before the model type is resolved (they register custom methods).
    import_modules: list[str] = dataclasses.field(default_factory=list)
    #: Overrides of the method's config fields (every other key of the `model` section).
    config: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class ProcessorSpec:
    #: A saved processor folder (`AutoProcessor.from_pretrained`); excludes the fields below.
    path: str | None = None
    #: The method's own processor for this vocabulary: a vocabulary file of its tokenizer, or
    #: `train_captions` (built from the training captions; the config's vocab size follows).
    vocab: str | None = None
    #: `train_captions`: keep words seen at least this often.
    vocab_min_count: int = 1
    #: Keyword arguments of the method's processor builder (e.g. image `size`, `max_text_length`).
    options: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class DataSpec:
    #: Dataset name for `rs_retrieval.data.load_dataset` (rsitmd, rsicd, ucm_captions, rs_synth, ...).
    name: str | None = None
    #: Alternatively, a `DatasetDict.save_to_disk` folder with the same per-image columns.
    path: str | None = None
    data_dir: str | None = None
    source: str = "auto"
    cache_dir: str | None = None
    #: Extra keyword arguments of `load_dataset` (e.g. rs_synth `train_size`, `image_size`).
    options: dict = dataclasses.field(default_factory=dict)
    train_split: str = "train"
    validation_split: str = "val"
    #: When the dataset has no validation split: fraction of train images re-split off.
    val_fraction: float = 0.1
    #: Seed of `load_dataset` (rs_synth generation) and of the validation re-split.
    seed: int = 0
    #: Caption prior of the training images for the dynamic margin (`scripts/compute_caption_prior.py`);
    #: None computes it at the start of training when the model uses it.
    caption_prior: str | None = None
    #: Keep only the first N images of a split (quick experiments); None keeps all.
    max_train_images: int | None = None
    max_val_images: int | None = None


@dataclasses.dataclass
class ParamGroupRule:
    """Parameters whose name starts with one of `prefixes` (first matching rule wins)."""

    name: str = ""
    prefixes: list[str] = dataclasses.field(default_factory=list)
    lr: float | None = None
    weight_decay: float | None = None


@dataclasses.dataclass
class TrainingSpec:
    seed: int = 0
    epochs: int = 1
    #: Stop after this many optimizer steps (overrides `epochs` when reached first).
    max_steps: int | None = None
    #: Global batch of (image, caption) pairs per optimizer micro-step, split across processes.
    batch_size: int = 32
    eval_batch_size: int = 64
    gradient_accumulation_steps: int = 1
    #: Gradient-norm clipping after backward; None or 0 disables it.
    max_grad_norm: float | None = None
    #: "auto" (the packaged recipes): bf16 autocast where the hardware has bf16 arithmetic, else
    #: fp32 (`resolve_mixed_precision`); "no" keeps fp32 everywhere.
    mixed_precision: str = "no"
    num_workers: int = 0
    optimizer: str = "adam"
    lr: float = 1e-4
    weight_decay: float = 0.0
    #: No weight decay on parameters with fewer than 2 dimensions (gains, biases, CLIP's
    #: logit_scale), as open_clip trains; each group then splits into a decayed and a `/no_decay` part.
    no_decay_1d: bool = False
    betas: list[float] = dataclasses.field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    momentum: float = 0.9
    param_groups: list[ParamGroupRule] = dataclasses.field(default_factory=list)
    lr_scheduler: str = "constant"
    #: `multistep`: the lr is multiplied by `lr_gamma` at the start of each listed (0-based) epoch.
    lr_milestones: list[int] = dataclasses.field(default_factory=list)
    lr_gamma: float = 0.1
    #: `cosine`/`linear`: linear warm-up over this fraction of all steps, then decay to `min_lr_ratio`.
    warmup_ratio: float = 0.0
    min_lr_ratio: float = 0.0
    log_every_steps: int = 10
    #: Validate every N epochs (0: never; the last weights are then the final model).
    eval_every_epochs: int = 1
    checkpoint_every_steps: int | None = None
    keep_checkpoints: int = 2
    #: Debugging aid: end the process after N optimizer steps as if it were killed (no final
    #: checkpoint, no model); used to test that `--resume` reproduces an uninterrupted run.
    stop_after_steps: int | None = None
    #: Query texts shown in `retrieval_examples.png`.
    num_example_queries: int = 4
    #: Experiment trackers (comma-separated): tensorboard, wandb, jsonl, all, none, auto (`experiment_trackers.py`).
    report_to: str = "auto"


@dataclasses.dataclass
class EvaluationSpec:
    """How validation (model selection) and the quickstart's test metrics are computed."""

    #: A name of `rs_retrieval.evaluation.protocols.PROTOCOLS` (docs/protocols.md).
    protocol: str = DEFAULT_PROTOCOL
    #: None: the protocol's own order of tied scores, else `numpy`.
    tie_policy: str | None = None
    #: Column that identifies an image, for protocols that merge images by key.
    image_key_column: str = "filename"

    def metric_kwargs(self) -> dict:
        """Keyword arguments of `evaluate_retrieval`."""
        return {"protocol": self.protocol, "tie_policy": self.tie_policy, "image_key_column": self.image_key_column}


@dataclasses.dataclass
class Recipe:
    model: ModelSpec = dataclasses.field(default_factory=ModelSpec)
    processor: ProcessorSpec = dataclasses.field(default_factory=ProcessorSpec)
    data: DataSpec = dataclasses.field(default_factory=DataSpec)
    training: TrainingSpec = dataclasses.field(default_factory=TrainingSpec)
    evaluation: EvaluationSpec = dataclasses.field(default_factory=EvaluationSpec)
    output_dir: str | None = None

    def to_dict(self) -> dict:
        """Plain nested dict in the YAML layout (model config overrides inlined in `model`)."""
        data = dataclasses.asdict(self)
        data["model"].update(data["model"].pop("config"))
        return data


_MODEL_RECIPE_FIELDS = {f.name for f in dataclasses.fields(ModelSpec)} - {"config"}
OPTIMIZERS = ("adam", "adamw", "sgd")
LR_SCHEDULERS = ("constant", "multistep", "cosine", "linear")
MIXED_PRECISION = ("auto", "no", "bf16", "fp16")
#: String fields whose word `no` YAML 1.1 reads as False (`--set training.mixed_precision=no`).
YAML_FALSE_WORDS = {"mixed_precision": "no"}


def resolve_mixed_precision(setting: str) -> str:
    """What accelerate runs for a recipe's `training.mixed_precision`: "auto" is "bf16" on the
    device training uses (CUDA when available, else the CPU) when it has bf16 arithmetic
    (`runtime.bf16_supported`), "no" elsewhere; the other settings as given."""
    if setting != "auto":
        return setting
    import torch

    from ..runtime import bf16_supported

    return "bf16" if bf16_supported("cuda" if torch.cuda.is_available() else "cpu") else "no"


def _choice(value: str, options: Iterable[str], where: str) -> None:
    if value not in options:
        raise RecipeError(f"{where}: expected one of {list(options)}, got {value!r}")


def _check_known_fields(defaults: dict, overrides: Mapping, where: str) -> None:
    """Every overridden key must be a field of the config (nested sub-config dicts too)."""
    for key, value in overrides.items():
        if key not in defaults:
            raise RecipeError(f"{where}: unknown config field {key!r}; known fields: {sorted(defaults)}")
        if isinstance(defaults[key], dict) and isinstance(value, Mapping):
            _check_known_fields(defaults[key], value, f"{where}.{key}")


def _set_fields(config, overrides: Mapping) -> None:
    for key, value in overrides.items():
        current = getattr(config, key)
        if isinstance(value, Mapping) and hasattr(current, "to_dict"):
            _set_fields(current, value)
        else:
            setattr(config, key, value)


def resolve_model_config(spec: ModelSpec):
    """The method's config with the recipe's overrides, validated against its known fields.

    A sub-config override (e.g. `text_config: {hidden_size: 64}`) builds the sub-config from its
    class defaults plus those values, as the config's own constructor does with a dict.
    """
    from transformers import AutoConfig

    for module in spec.import_modules:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise RecipeError(f"model.import_modules: cannot import {module!r}: {error}") from error
    from ..models import UnknownMethodError, get_method

    try:
        method = get_method(spec.type)
    except UnknownMethodError as error:
        raise RecipeError(f"model.type: {error}") from error
    where = f"model ({spec.type} config)"
    if spec.init_from is not None:
        config = AutoConfig.from_pretrained(spec.init_from)
        if config.model_type != spec.type:
            raise RecipeError(
                f"model.init_from: {spec.init_from!r} holds a {config.model_type!r} model, recipe says {spec.type!r}"
            )
        _check_known_fields(config.to_dict(), spec.config, where)
        _set_fields(config, spec.config)
        return config
    _check_known_fields(method.config_class().to_dict(), spec.config, where)
    try:
        return method.config_class(**spec.config)
    except (ValueError, TypeError) as error:
        raise RecipeError(f"{where}: the overrides give an invalid config: {error}") from error


def recipe_from_dict(raw: Mapping, source: str = "recipe") -> Recipe:
    """Validate a nested dict (the YAML layout) into a `Recipe`; raises `RecipeError`."""
    if not isinstance(raw, Mapping):
        raise RecipeError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    raw = dict(raw)
    model_raw = dict(raw.get("model") or {})
    config_overrides = {k: model_raw.pop(k) for k in list(model_raw) if k not in _MODEL_RECIPE_FIELDS}
    raw["model"] = model_raw
    try:
        recipe = build_dataclass(Recipe, raw, source, false_words=YAML_FALSE_WORDS)
    except FieldValueError as error:
        raise RecipeError(str(error)) from None
    recipe.model.config = config_overrides
    _validate(recipe, source)
    return recipe


def _validate(recipe: Recipe, source: str) -> None:
    if not recipe.model.type:
        raise RecipeError(f"{source}: model.type is required (a registered retrieval method)")
    resolve_model_config(recipe.model)
    processor, data, training = recipe.processor, recipe.data, recipe.training
    if (processor.path is None) == (processor.vocab is None):
        raise RecipeError(
            f"{source}: give exactly one of processor.path (a saved processor) "
            "and processor.vocab (a vocabulary file or 'train_captions')"
        )
    if processor.path is not None and processor.options:
        raise RecipeError(
            f"{source}: processor.options apply to processor.vocab only (a saved processor has its settings)"
        )
    if (data.name is None) == (data.path is None):
        raise RecipeError(f"{source}: give exactly one of data.name and data.path")
    if not 0.0 < data.val_fraction < 1.0:
        raise RecipeError(f"{source}: data.val_fraction must be in (0, 1), got {data.val_fraction}")
    _choice(training.optimizer, OPTIMIZERS, f"{source}: training.optimizer")
    _choice(training.lr_scheduler, LR_SCHEDULERS, f"{source}: training.lr_scheduler")
    _choice(training.mixed_precision, MIXED_PRECISION, f"{source}: training.mixed_precision")
    positive = (
        "epochs",
        "batch_size",
        "eval_batch_size",
        "gradient_accumulation_steps",
        "log_every_steps",
        "keep_checkpoints",
    )
    for name in positive:
        if getattr(training, name) < 1:
            raise RecipeError(f"{source}: training.{name} must be >= 1, got {getattr(training, name)}")
    for name in ("eval_every_epochs", "num_workers", "num_example_queries"):
        if getattr(training, name) < 0:
            raise RecipeError(f"{source}: training.{name} must be >= 0, got {getattr(training, name)}")
    for name in ("max_steps", "checkpoint_every_steps", "stop_after_steps"):
        value = getattr(training, name)
        if value is not None and value < 1:
            raise RecipeError(f"{source}: training.{name} must be >= 1 or null, got {value}")
    if training.lr <= 0:
        raise RecipeError(f"{source}: training.lr must be > 0, got {training.lr}")
    if len(training.betas) != 2:
        raise RecipeError(f"{source}: training.betas must have 2 values, got {training.betas}")
    if training.lr_scheduler == "multistep" and not training.lr_milestones:
        raise RecipeError(f"{source}: training.lr_scheduler 'multistep' needs training.lr_milestones (epochs)")
    if not 0.0 <= training.warmup_ratio < 1.0:
        raise RecipeError(f"{source}: training.warmup_ratio must be in [0, 1), got {training.warmup_ratio}")
    try:
        parse_report_to(training.report_to)
    except ValueError as err:
        raise RecipeError(f"{source}: training.{err}") from None
    for i, rule in enumerate(training.param_groups):
        if not rule.prefixes:
            raise RecipeError(f"{source}: training.param_groups[{i}] needs at least one prefix")
    _choice(recipe.evaluation.protocol, PROTOCOL_NAMES, f"{source}: evaluation.protocol")
    fixed = PROTOCOLS[recipe.evaluation.protocol].tie_policy
    if recipe.evaluation.tie_policy is not None:
        _choice(recipe.evaluation.tie_policy, TIE_POLICIES, f"{source}: evaluation.tie_policy")
        if fixed not in (None, recipe.evaluation.tie_policy):
            raise RecipeError(
                f"{source}: evaluation.tie_policy {recipe.evaluation.tie_policy!r} conflicts "
                f"with protocol {recipe.evaluation.protocol!r}, which orders ties by {fixed!r}"
            )


def parse_overrides(items: Iterable[str]) -> list[tuple[list[str], Any]]:
    """`["training.lr=1e-3", ...]` -> `[(["training", "lr"], 0.001), ...]` (values parsed as YAML)."""
    parsed = []
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise RecipeError(f"override {item!r}: expected dotted.key=value")
        try:
            value = yaml.safe_load(text) if text else None
        except yaml.YAMLError as error:
            raise RecipeError(f"override {item!r}: value is not valid YAML: {error}") from error
        parsed.append((key.split("."), value))
    return parsed


def apply_overrides(raw: Mapping, overrides: Iterable[str]) -> dict:
    """A copy of the raw recipe dict with dotted overrides applied (validation happens later)."""
    import copy

    result = copy.deepcopy(dict(raw))
    for path, value in parse_overrides(overrides):
        node = result
        for depth, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise RecipeError(f"override {'.'.join(path)}: {'.'.join(path[: depth + 1])} is not a mapping")
            node = child
        node[path[-1]] = value
    return result


RECIPE_SUFFIXES = (".yaml", ".yml")


def packaged_recipes() -> dict[str, Traversable]:
    """Name -> file of every recipe that ships with the package (`rs-retrieval recipes` lists them)."""
    folder = packaged_files("rs_retrieval.recipes")
    files = [item for item in folder.iterdir() if item.is_file() and Path(item.name).suffix in RECIPE_SUFFIXES]
    return {Path(item.name).stem: item for item in sorted(files, key=lambda item: item.name)}


def recipe_summary(text: str) -> str:
    """First sentence of a recipe's leading comment block (its one-line description)."""
    comment = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        comment.append(line.lstrip("#").strip())
    sentence, _, _ = " ".join(comment).partition(". ")
    return sentence.rstrip(".")


def find_recipe(name_or_path: str | Path) -> Path | Traversable:
    """A recipe file: an existing path, else a packaged recipe name (`amfmn_synth` or `amfmn_synth.yaml`)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    recipes = packaged_recipes()
    name = path.stem if path.suffix in RECIPE_SUFFIXES else path.name
    if path.parent == Path(".") and name in recipes:
        return recipes[name]
    raise RecipeError(
        f"recipe file not found: {name_or_path} is neither a file nor a packaged "
        f"recipe name (packaged: {', '.join(recipes)}; see `rs-retrieval recipes`)"
    )


def load_recipe(name_or_path: str | Path, overrides: Iterable[str] = ()) -> Recipe:
    """Read a YAML recipe (a file path or a packaged recipe name), apply `key=value` overrides, validate."""
    recipe_file = find_recipe(name_or_path)
    source = str(recipe_file)
    try:
        raw = yaml.safe_load(recipe_file.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise RecipeError(f"{source}: not valid YAML: {error}") from error
    return recipe_from_dict(apply_overrides(raw or {}, overrides), source=source)


def dump_recipe(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe.to_dict(), sort_keys=False)
