#!/usr/bin/env python
"""Publish a training run, model directory or dataset to the Hugging Face Hub (same as `rs-retrieval push`).

python scripts/push_to_hub.py runs/amfmn-rsitmd my-org/amfmn-rsitmd
python scripts/push_to_hub.py exports/rsitmd my-org/rsitmd --dataset-name rsitmd
"""

import argparse
import sys

from rs_retrieval.cli.hub import register


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="push_to_hub.py")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["push", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
