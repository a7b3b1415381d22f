"""One accelerate-based trainer for every retrieval method, driven by YAML recipes.

    from rs_retrieval.training import load_recipe, train
    run_dir = train(load_recipe("amfmn_synth", ["training.epochs=2"]))  # a packaged recipe name or a YAML path

The same entry point backs `rs-retrieval train` and `accelerate launch scripts/train.py`.
"""

from .recipe import Recipe, RecipeError, apply_overrides, load_recipe, recipe_from_dict
from .trainer import Trainer, TrainerState, train

__all__ = ["Recipe", "RecipeError", "Trainer", "TrainerState", "apply_overrides", "load_recipe", "recipe_from_dict", "train"]
