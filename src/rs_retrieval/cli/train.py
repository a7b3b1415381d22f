"""`rs-retrieval train` (the command-line front end of `rs_retrieval.training.train`) and
`rs-retrieval recipes` (the recipes that ship with the package, addressable by name)."""

from __future__ import annotations

import argparse
import sys

from ..runtime import prepare_process

#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED = 130


def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--config",
        required=True,
        help="packaged recipe name (e.g. amfmn_synth; see `rs-retrieval recipes`) or a recipe YAML path",
    )
    parser.add_argument("--output-dir", default=None, help="run directory (default: the recipe's output_dir)")
    parser.add_argument(
        "--resume",
        default=None,
        metavar="CHECKPOINT",
        help='"latest" (the newest intact checkpoint), step_N, or a checkpoint folder',
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="override recipe fields, values parsed as YAML: --set training.lr=1e-3 model.embed_dim=64",
    )
    return parser


def run_train(args: argparse.Namespace) -> int:
    prepare_process()  # before torch loads (scripts/train.py comes here without the CLI)
    from ..cards import write_model_card
    from ..training.checkpoints import checkpoint_steps
    from ..training.recipe import RecipeError, load_recipe
    from ..training.trainer import Trainer

    try:
        recipe = load_recipe(args.config, args.overrides)
    except RecipeError as error:  # a user mistake: the message names the field, no traceback needed
        print(f"error: {error}", file=sys.stderr)
        return 2
    trainer = Trainer(recipe, run_dir=args.output_dir, on_finish=[write_model_card])
    try:
        run_dir = trainer.train(resume=args.resume)
    except KeyboardInterrupt:  # Ctrl-C: checkpoints are written whole or not at all, so say how to go on
        if checkpoint_steps(trainer.run_dir):
            print("interrupted; resume with --resume latest", file=sys.stderr)
        else:
            print(f"interrupted before the first checkpoint; remove {trainer.run_dir} to start again", file=sys.stderr)
        return INTERRUPTED
    print(f"run directory: {run_dir}")
    return 0


def run_recipes(args: argparse.Namespace) -> int:
    import yaml

    from ..training.recipe import packaged_recipes, recipe_summary

    recipes = packaged_recipes()
    width = max(map(len, recipes), default=0)
    for name, recipe_file in recipes.items():
        text = recipe_file.read_text(encoding="utf-8")
        raw = yaml.safe_load(text) or {}
        method, dataset = (
            (raw.get("model") or {}).get("type", "?"),
            (raw.get("data") or {}).get("name") or "(data.path)",
        )
        print(f"{name:<{width}}  {method:<7} {dataset:<13} {recipe_summary(text)}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a retrieval model from a recipe (accelerate; multi-process via accelerate launch)"
    )
    add_train_arguments(parser)
    parser.set_defaults(func=run_train)
    recipes = subparsers.add_parser(
        "recipes", help="list the packaged training recipes (name, method, dataset, description)"
    )
    recipes.set_defaults(func=run_recipes)
