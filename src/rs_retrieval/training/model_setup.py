"""A recipe's model and processor, and the run's model folder.

The processor comes first (its vocabulary may be built from the training captions, and the model
config's vocabulary size then follows it); the model is fresh (pretrained towers if the recipe
names them) or starts from `model.init_from`. `save_model_dir` writes the selected model.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..fileio import atomic_directory, reporting_full_disk
from ..models import get_method
from ..pretrained import stamp_vocabulary
from .recipe import Recipe, RecipeError, resolve_model_config
from .vocab import TRAIN_CAPTIONS, build_processor, vocabulary_from_captions


def build_model(recipe: Recipe, config, vocab=None):
    """A fresh model of the recipe's method (pretrained towers if named, given the processor's
    vocabulary `vocab`), or `init_from` weights."""
    model_class = get_method(recipe.model.type).model_class
    towers = recipe.model.pretrained
    if recipe.model.init_from is not None:
        if towers.vision or towers.text:
            raise RecipeError(
                "model.init_from and model.pretrained exclude each other (init_from already holds every weight)"
            )
        return model_class.from_pretrained(recipe.model.init_from, config=config)
    return model_class.from_pretrained_towers(config, towers.vision, towers.text, **{"vocab": vocab, **towers.options})


def _merge_derived(overrides: dict, derived: dict, where: str = "model") -> dict:
    """Recipe config overrides plus values derived from the data; an explicit different value is an error."""
    merged = dict(overrides)
    for key, value in derived.items():
        if isinstance(value, dict):
            merged[key] = _merge_derived(dict(overrides.get(key) or {}), value, f"{where}.{key}")
        elif key in overrides and overrides[key] != value:
            raise RecipeError(
                f"{where}.{key}={overrides[key]} contradicts the vocabulary built from the training captions ({value})"
            )
        else:
            merged[key] = value
    return merged


def build_model_and_processor(recipe: Recipe, train_captions) -> tuple:
    """(model, processor) for a recipe; `train_captions` feed `processor.vocab: train_captions`."""
    spec, model_spec, vocab = recipe.processor, recipe.model, None
    if spec.path is None and spec.vocab == TRAIN_CAPTIONS:
        vocab, derived = vocabulary_from_captions(model_spec.type, train_captions, spec.vocab_min_count)
        model_spec = dataclasses.replace(model_spec, config=_merge_derived(model_spec.config, derived))
    config = resolve_model_config(model_spec)
    processor = build_processor(spec, config, vocab)
    return build_model(recipe, config, vocab if vocab is not None else spec.vocab), processor


def save_model_dir(model, processor, target: Path) -> None:
    """`save_pretrained` model + processor into a temporary sibling folder, then swap it in."""
    stamp_vocabulary(model, processor)

    def fill(folder: Path) -> None:
        model.save_pretrained(folder)
        processor.save_pretrained(folder)

    previous = "the previous model there is unchanged" if Path(target).exists() else "no partial model was left"
    with reporting_full_disk(
        f"the model {target}", f"{previous}; the run's checkpoints are intact: free space, then --resume latest"
    ):
        atomic_directory(target, fill, overwrite=True)
