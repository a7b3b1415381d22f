"""`rs-retrieval` command line: one module per command group (`cli/<group>.py`) registers its
sub-commands; argument helpers that several share are in `cli/arguments.py`. Only argparse wiring
and thin `run` functions live here: the work is done by the library packages, which never import
this package.

The package's typed errors (`RSRetrievalError`: bad input, missing files, missing extras) are
printed as one `error: ...` line with exit status 2; `--debug` or RS_RETRIEVAL_DEBUG=1 shows the
traceback instead. Anything else is a bug and keeps its traceback.
"""

import argparse
import importlib
import logging
import os
import sys

from ..errors import RSRetrievalError
from ..runtime import prepare_process

#: Modules that define `register(subparsers)`; each adds its sub-commands with `set_defaults(func=...)`.
#: They must not import torch/transformers at module level, so that `--help` stays fast.
COMMAND_MODULES = [
    "rs_retrieval.cli.data",
    "rs_retrieval.cli.train",
    "rs_retrieval.cli.evaluate",
    "rs_retrieval.cli.hub",
    "rs_retrieval.cli.search",
    "rs_retrieval.cli.index",
    "rs_retrieval.cli.convert",
    "rs_retrieval.cli.export",
    "rs_retrieval.cli.zeroshot",
    "rs_retrieval.cli.quickstart",
    "rs_retrieval.cli.serve",
]
DEBUG_ENV = "RS_RETRIEVAL_DEBUG"
#: Old spellings of commands renamed to follow the nesting rule (docs/contributing.md): still
#: accepted, with a warning, until the next release; `--help` lists only the new ones.
DEPRECATED_COMMANDS = {"classify": ["zeroshot", "classify"], "evaluate-zeroshot": ["zeroshot", "evaluate"]}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rs-retrieval", description="Remote-sensing image-text retrieval")
    parser.add_argument("--debug", action="store_true", help=f"show tracebacks of user errors (or set {DEBUG_ENV}=1)")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def replace_deprecated(argv: list[str]) -> list[str]:
    """`argv` with an old command spelling replaced by its new one, saying so on stderr."""
    position = next((i for i, token in enumerate(argv) if not token.startswith("-")), None)  # global options are flags
    if position is None or argv[position] not in DEPRECATED_COMMANDS:
        return argv
    new = DEPRECATED_COMMANDS[argv[position]]
    print(
        f"warning: 'rs-retrieval {argv[position]}' is deprecated; use 'rs-retrieval {' '.join(new)}'", file=sys.stderr
    )
    return [*argv[:position], *new, *argv[position + 1 :]]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(replace_deprecated(sys.argv[1:] if argv is None else list(argv)))
    prepare_process()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `rs-retrieval recipes | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush cannot fail again
        return 1
    except RSRetrievalError as error:
        if args.debug or os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
