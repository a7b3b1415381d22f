"""One accelerate-based trainer for every retrieval method, driven by YAML recipes.

    from rs_retrieval.training import load_recipe, train
    run_dir = train(load_recipe("amfmn_synth", ["training.epochs=2"]))  # a packaged recipe name or a YAML path

The same entry point backs `rs-retrieval train` and `accelerate launch scripts/train.py`.
"""

from .._lazy import lazy_exports

_EXPORTS = {
    ".recipe": ["Recipe", "RecipeError", "apply_overrides", "load_recipe", "recipe_from_dict"],
    ".trainer": ["Trainer", "TrainerState", "train"],
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "Recipe",
    "RecipeError",
    "Trainer",
    "TrainerState",
    "apply_overrides",
    "load_recipe",
    "recipe_from_dict",
    "train",
]
