"""`rs-retrieval evaluate`: score a saved model on a dataset split, with and without re-ranking."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UsageError
from ..evaluation.choices import DEFAULT_PROTOCOL, DEFAULT_TIE_POLICY, PROTOCOL_NAMES, RERANKER_NAMES, TIE_POLICIES
from ..evaluation.folds import format_table
from ..fileio import write_json_atomic
from .arguments import add_model_arguments, load_model_from_args


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="retrieval metrics of a saved model on a dataset split",
        description=(
            "Encode a dataset split with a saved model, print R@1/5/10 "
            "and mR per re-ranker, optionally write them as JSON."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_model_arguments(parser)
    parser.add_argument("--dataset", required=True, help="dataset name, as rs_retrieval.data.load_dataset takes it")
    parser.add_argument("--data-dir", help="local folder with the dataset release")
    parser.add_argument("--source", default="auto", help="dataset source, passed to load_dataset")
    parser.add_argument("--cache-dir", help="datasets cache folder")
    parser.add_argument(
        "--image-size",
        type=int,
        help="rs_synth: side of the generated images (default: as the model's run "
        "generated them, i.e. its recipe's data options and the model's input size)",
    )
    parser.add_argument("--split", default="test")
    parser.add_argument(
        "--rerank", nargs="+", default=["none", "galr_mr"], choices=RERANKER_NAMES, help="re-rankers to report"
    )
    parser.add_argument(
        "--protocol",
        default=DEFAULT_PROTOCOL,
        choices=PROTOCOL_NAMES,
        help=(
            "evaluation protocol (docs/protocols.md): amfmn = AMFMN/GaLR/MSA "
            "tables, remoteclip and skyscript = those code bases exactly"
        ),
    )
    parser.add_argument(
        "--tie-policy",
        choices=TIE_POLICIES,
        help=(
            "order of tied scores (default: the protocol's own, else "
            f"{DEFAULT_TIE_POLICY} = the reference code's argsort)"
        ),
    )
    parser.add_argument(
        "--image-key-column",
        default="filename",
        help="column that identifies an image (protocols that merge images by key)",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--galr-k1", type=int, default=30, help="galr_mr: candidates re-ranked per query (at least 10)"
    )
    parser.add_argument("--galr-wp1", type=float, default=0.3, help="galr_mr: saliency weight")
    parser.add_argument("--galr-wp2", type=float, default=1.1, help="galr_mr: reverse-search weight")
    parser.add_argument("--smr-tau", type=float, default=0.05, help="smr: softmax temperature")
    parser.add_argument("--smr-top-k", type=int, help="smr: re-rank only each query's top k")
    parser.add_argument("--output", help="write the metrics to this JSON file")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(func=run_evaluate)


def generated_dataset_options(args: argparse.Namespace) -> dict:
    """`load_dataset` options for a generated dataset (rs_synth): the seed, sizes and image size the
    model's run generated it with (its recipe.yaml beside the model folder), else the model's input
    size as training uses; `--image-size` overrides. Says on stderr which data is evaluated."""
    from ..training.data import GENERATED_DATASETS, dataset_options

    if args.dataset not in GENERATED_DATASETS or args.data_dir is not None:
        if args.image_size is not None:
            raise UsageError(
                f"--image-size applies to generated datasets ({', '.join(GENERATED_DATASETS)}), not to {args.dataset}"
            )
        return {}
    from transformers import AutoConfig

    from .. import models  # noqa: F401  (registers the package's methods with AutoConfig)
    from ..models.common.processing import input_image_size
    from ..training.recipe import DataSpec, load_recipe

    try:
        model_size = input_image_size(AutoConfig.from_pretrained(args.model, trust_remote_code=args.trust_remote_code))
    except OSError as err:
        raise UsageError(
            f"--model {args.model}: cannot read its config.json ({str(err).strip().splitlines()[0]})"
        ) from None
    recipe_file = Path(args.model).parent / "recipe.yaml"
    spec, origin = DataSpec(name=args.dataset), "at the model's input size, as training generates it"
    if recipe_file.is_file() and load_recipe(recipe_file).data.name == args.dataset:
        spec, origin = load_recipe(recipe_file).data, f"as the model's run generated it ({recipe_file})"
    options = {"seed": spec.seed, **dataset_options(spec, model_size)}
    if args.image_size is not None:
        options["image_size"], origin = args.image_size, "(--image-size)"
    print(
        f"{args.dataset}: images generated at {options['image_size']} px {origin}; --image-size picks another size",
        file=sys.stderr,
    )
    return options


def run_evaluate(args: argparse.Namespace) -> int:
    if args.no_progress:  # also the dataset-preparation and weight-loading bars
        import datasets
        from transformers.utils import logging as transformers_logging

        datasets.disable_progress_bars()
        transformers_logging.disable_progress_bar()

    from ..data import load_dataset  # imported here: the data module pulls in the dataset builders
    from ..data.report import describe_data
    from ..evaluation.evaluator import evaluate_retrieval

    generated = generated_dataset_options(args)
    dataset = load_dataset(
        args.dataset,
        data_dir=args.data_dir,
        source=args.source,
        split=args.split,
        cache_dir=args.cache_dir,
        **generated,
    )
    if not hasattr(dataset, "column_names") or isinstance(dataset.column_names, dict):
        raise UsageError(
            f"load_dataset({args.dataset!r}, split={args.split!r}) returned "
            f"{type(dataset).__name__}, expected one split (a datasets.Dataset)"
        )
    from ..evaluation.metrics import resolve_tie_policy
    from ..evaluation.protocols import get_protocol

    try:
        resolve_tie_policy(args.protocol, args.tie_policy)
    except ValueError as err:
        raise UsageError(f"--tie-policy: {err}") from None
    if get_protocol(args.protocol).needs_image_keys and args.image_key_column not in dataset.column_names:
        raise UsageError(
            f"--image-key-column {args.image_key_column!r} is not a column of the dataset ({dataset.column_names})"
        )
    metric_kwargs = {
        "protocol": args.protocol,
        "tie_policy": args.tie_policy,
        "image_key_column": args.image_key_column,
    }
    from ..pretrained import resolve_device

    device = resolve_device(args.device)
    model, processor = load_model_from_args(args, device)
    rerank_params = {
        "galr_mr": {"k1": args.galr_k1, "wp1": args.galr_wp1, "wp2": args.galr_wp2},
        "smr": {"tau": args.smr_tau, "top_k": args.smr_top_k},
    }
    results = evaluate_retrieval(
        model,
        processor,
        dataset,
        rerank=args.rerank,
        batch_size=args.batch_size,
        device=device,
        progress=not args.no_progress,
        rerank_params={name: rerank_params[name] for name in args.rerank if name in rerank_params},
        **metric_kwargs,
    )
    print(format_table(results, title=f"{args.model} on {args.dataset} ({args.split})"))
    if args.output:
        payload = {
            "model": args.model,
            "dataset": args.dataset,
            "split": args.split,
            "protocol": args.protocol,
            "data": describe_data(dataset, args.dataset, args.split, generated.get("image_size")),
            "precision": args.precision,
            "rerank_params": {name: rerank_params[name] for name in args.rerank if name in rerank_params},
            "results": results,
        }
        write_json_atomic(args.output, payload)
        print(f"wrote {args.output}")
    return 0
