"""`rs-retrieval quickstart`: the command-line front end of `rs_retrieval.quickstart.run_quickstart`."""

from __future__ import annotations

import argparse

from ..quickstart import DEFAULT_QUERY, DEFAULT_RECIPE, run_quickstart


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "quickstart", help="build rs_synth, train a small model on CPU, evaluate and search"
    )
    parser.add_argument(
        "--config",
        default=DEFAULT_RECIPE,
        help=f"packaged recipe name or recipe YAML path (default: {DEFAULT_RECIPE})",
    )
    parser.add_argument("--output-dir", default="runs/quickstart")
    parser.add_argument("--query", default=DEFAULT_QUERY)
    parser.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        metavar="CHECKPOINT",
        help='continue the run in --output-dir from "latest" (the default) or a checkpoints/step_N folder',
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    run_quickstart(args.config, args.output_dir, args.query, args.overrides, args.resume)
    return 0
