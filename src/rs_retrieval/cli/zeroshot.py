"""`rs-retrieval zeroshot classify` (images -> scene classes) and `rs-retrieval zeroshot evaluate` (ImageFolder dataset)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .arguments import add_model_arguments, load_model_from_args


def _add_common(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument(
        "--templates",
        help="prompt template set (e.g. georsclip_105, single_satellite_photo); default: the class set's",
    )
    parser.add_argument(
        "--rule",
        default="normalize_then_mean",
        choices=("normalize_then_mean", "mean_then_normalize"),
        help="how template embeddings are combined (mean_then_normalize = GeoRSCLIP's)",
    )
    parser.add_argument("--batch-size", type=int, default=64)


def classify(args: argparse.Namespace) -> int:
    from ..errors import InputNotFoundError

    target = Path(args.images)
    if not target.exists():  # before torch is even imported
        raise InputNotFoundError(f"{target} is neither an image file nor a folder")
    from ..search.folder_search import list_images
    from ..zeroshot.class_sets import load_class_set
    from ..zeroshot.classifier import ZeroShotClassifier

    paths = list_images(target, args.recursive) if target.is_dir() else [target]
    class_set = load_class_set(args.classes, templates=args.templates)
    model, processor = load_model_from_args(args)
    classifier = ZeroShotClassifier(model, processor, class_set, rule=args.rule, batch_size=args.batch_size)
    rows = []
    for start in range(0, len(paths), args.batch_size):
        batch = paths[start : start + args.batch_size]
        rows += [(path, best) for path, best in zip(batch, classifier.top_k(batch, args.top_k))]
    for path, best in rows:
        print(f"{path}: " + ", ".join(f"{name} {probability:.3f}" for name, probability in best))
    if args.output:
        from ..fileio import write_json_atomic

        write_json_atomic(
            args.output,
            {"model": args.model, "classes": args.classes, "predictions": {str(p): best for p, best in rows}},
        )
        print(f"wrote {args.output}")
    return 0


def evaluate_zeroshot(args: argparse.Namespace) -> int:
    from ..fileio import write_json_atomic
    from ..zeroshot.evaluate import evaluate_zero_shot, plot_confusion_matrix, rs_synth_image_folder

    output_dir = Path(args.output_dir)
    dataset_dir, class_set = args.dataset, args.classes
    if args.dataset == "rs_synth":
        dataset_dir = rs_synth_image_folder(
            output_dir / "rs_synth_test", split="test", seed=args.synth_seed, image_size=args.synth_image_size
        )
        class_set = class_set or "rs_synth"
    model, processor = load_model_from_args(args)
    metrics = evaluate_zero_shot(model, processor, dataset_dir, class_set, args.templates, args.batch_size, args.rule)
    metrics.update(model=args.model, dataset=str(args.dataset))
    write_json_atomic(output_dir / "zeroshot_metrics.json", metrics)
    picture = plot_confusion_matrix(
        metrics,
        output_dir / "confusion_matrix.png",
        title=f"{'/'.join(Path(str(args.model)).parts[-2:])} on {Path(str(args.dataset)).name}",
    )
    print(
        f"{metrics['num_images']} images, {len(metrics['classes'])} classes "
        f"({metrics['class_set']}, {len(metrics['templates'])} templates)"
    )
    print(
        f"top-1 {metrics['top1']:.2f}%  top-5 {metrics.get('top5', float('nan')):.2f}% "
        f" mean per-class {metrics['mean_per_class']:.2f}%"
    )
    for name, accuracy in metrics["per_class"].items():
        print(f"  {name:<28} {accuracy:6.2f}%")
    print(f"wrote {output_dir / 'zeroshot_metrics.json'} and {picture}")
    return 0


def register(subparsers) -> None:
    zeroshot = subparsers.add_parser(
        "zeroshot", help="zero-shot scene classification: classify images, or measure accuracy on a labelled folder"
    )
    commands = zeroshot.add_subparsers(dest="zeroshot_command", required=True)
    parser = commands.add_parser("classify", help="zero-shot scene classification of an image or a folder of images")
    parser.add_argument("images", help="image file or folder")
    parser.add_argument(
        "--classes",
        required=True,
        help=(
            "packaged class set (aid, resisc45, ucm, eurosat, whu_rs19, rsscn7, "
            "patternnet, optimal31, rs_synth) or a class file (.txt, one per line; .json)"
        ),
    )
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--recursive", action="store_true", help="include images in sub-folders")
    parser.add_argument("--output", help="also write the predictions as JSON here")
    _add_common(parser)
    parser.set_defaults(func=classify)

    parser = commands.add_parser(
        "evaluate",
        help="zero-shot accuracy on an ImageFolder-style dataset (one folder per class)",
        description="Top-1/top-5 accuracy, per-class accuracy and a confusion-matrix picture. --dataset rs_synth "
        "evaluates on the synthetic dataset's test images by scene class.",
    )
    parser.add_argument("--dataset", required=True, help="dataset folder (one sub-folder per class) or 'rs_synth'")
    parser.add_argument(
        "--classes", help="class set or file matching the folder names (default: the folder names themselves)"
    )
    parser.add_argument(
        "--output-dir", default="runs/zeroshot", help="where zeroshot_metrics.json and confusion_matrix.png go"
    )
    parser.add_argument("--synth-seed", type=int, default=0, help="rs_synth generation seed (with --dataset rs_synth)")
    parser.add_argument(
        "--synth-image-size", type=int, default=64, help="rs_synth image size (with --dataset rs_synth)"
    )
    _add_common(parser)
    parser.set_defaults(func=evaluate_zeroshot)
