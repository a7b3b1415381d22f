#!/usr/bin/env python
"""Train a retrieval model from a recipe; the same code path as `rs-retrieval train`.

    python scripts/train.py --config configs/amfmn_synth.yaml --set training.epochs=2
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no \
        --dynamo_backend no scripts/train.py --config configs/amfmn_synth.yaml
"""

import argparse
import sys

from rs_retrieval.cli.train import add_train_arguments, run_train


def main(argv=None) -> int:
    parser = add_train_arguments(
        argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    )
    return run_train(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
