"""`rs-retrieval` command line: each area of the package contributes its sub-commands."""

import argparse
import importlib
import sys

#: Modules that define `register(subparsers)`; each adds its sub-commands with `set_defaults(func=...)`.
COMMAND_MODULES = [
    "rs_retrieval.data.commands",
    "rs_retrieval.training.commands",
    "rs_retrieval.evaluation.commands",
    "rs_retrieval.hub.commands",
    "rs_retrieval.search_commands",
    "rs_retrieval.index.commands",
    "rs_retrieval.convert.commands",
    "rs_retrieval.zeroshot.commands",
    "rs_retrieval.quickstart",
    "rs_retrieval.app.commands",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rs-retrieval", description="Remote-sensing image-text retrieval")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
