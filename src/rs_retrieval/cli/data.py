"""`rs-retrieval data build|info|dedup`: materialise a dataset, print its data-quality report, or find duplicate images."""

from __future__ import annotations

import argparse
import json
import sys
import time

from ..data.readers import IMAGE_CHECKS

FORMATS = ("arrow", "parquet")


def _add_source_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "name", help="rsitmd, rsicd, ucm_captions, sydney_captions, rs_synth, or a Hub id / Parquet folder"
    )
    parser.add_argument("--data-dir", help="folder of the release (images/ + JSON) or of the precomp caption files")
    parser.add_argument("--source", default="auto", choices=("auto", "release", "precomp"))
    parser.add_argument("--image-dir", help="image folder (default: images/, imgs/ or the data dir)")
    parser.add_argument(
        "--image-check", default="verify", choices=IMAGE_CHECKS, help="how thoroughly images are checked"
    )
    parser.add_argument("--cache-dir", help="rs_synth: where it is generated; others: the datasets cache")
    parser.add_argument("--seed", type=int, default=0, help="rs_synth generation seed and --val-fraction seed")
    parser.add_argument("--val-fraction", type=float, help="seeded re-split of train into train + val")
    parser.add_argument(
        "--synth-sizes", type=int, nargs=3, metavar=("TRAIN", "VAL", "TEST"), help="rs_synth split sizes"
    )
    parser.add_argument("--image-size", type=int, help="rs_synth image side in pixels")


def _load(args: argparse.Namespace):
    from ..data.dataset_loading import load_dataset

    extra = {}
    if args.synth_sizes:
        extra.update(zip(("train_size", "val_size", "test_size"), args.synth_sizes))
    if args.image_size:
        extra["image_size"] = args.image_size
    return load_dataset(
        args.name,
        data_dir=args.data_dir,
        source=args.source,
        cache_dir=args.cache_dir,
        val_fraction=args.val_fraction,
        seed=args.seed,
        image_dir=args.image_dir,
        image_check=args.image_check,
        **extra,
    )


def _reports_errors(command):
    """Print a dataset error as one line (exit status 2) instead of a traceback."""

    def run(args: argparse.Namespace) -> int:
        from ..data.errors import DatasetFormatError

        try:
            return command(args)
        except (DatasetFormatError, FileExistsError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2

    return run


@_reports_errors
def build(args: argparse.Namespace) -> int:
    from ..data.export import export_parquet, save_arrow
    from ..data.schema import split_info

    start = time.perf_counter()
    dsdict = _load(args)
    write = export_parquet if args.format == "parquet" else save_arrow
    out = write(dsdict, args.out, overwrite=args.overwrite)
    sizes = ", ".join(f"{name} {len(ds)}" for name, ds in dsdict.items())
    print(f"{args.name}: {sizes} images -> {out} ({args.format}, {time.perf_counter() - start:.1f} s)")
    info = split_info(next(iter(dsdict.values())))
    leakage = info.pop("leakage", None)
    print(f"source: {json.dumps(info)}")
    if leakage is not None:
        from ..data.combined import LEAKAGE_REPORT

        print(
            f"leakage removed (distance <= {leakage['threshold']} from a member's test "
            f"image): {json.dumps(leakage['removed_count'])}; list in {out / LEAKAGE_REPORT}"
        )
    return 0


@_reports_errors
def info(args: argparse.Namespace) -> int:
    from ..data.report import dataset_report, format_report

    report = dataset_report(_load(args))
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 0


def _source_images(spec: str):
    """The images of one SOURCE: `NAME=DATA_DIR` (a dataset release, all splits), an image folder, or a dataset name."""
    from pathlib import Path

    from ..data.dataset_loading import LOCAL_NAMES, load_dataset
    from ..data.dedup import dataset_images, folder_images

    name, _, data_dir = spec.partition("=")
    if not data_dir and Path(name).expanduser().is_dir() and name.lower() not in LOCAL_NAMES:
        return folder_images(name)
    return dataset_images(load_dataset(name, data_dir=data_dir or None, image_check="exists"), name.lower())


def dedup(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..data.dedup import find_duplicates, pairs_picture
    from ..fileio import save_png_atomic, write_json_atomic

    start = time.perf_counter()
    images = [image for spec in args.sources for image in _source_images(spec)]
    report = find_duplicates(
        images,
        args.threshold,
        rotations=not args.no_rotations,
        across_only=args.across_only,
        workers=args.workers,
        progress=not args.no_progress,
    )
    picture = Path(args.picture) if args.picture else Path(args.out).with_suffix(".png")
    report["picture"] = picture.name
    write_json_atomic(args.out, report)
    save_png_atomic(pairs_picture(report["pairs"], args.show), picture)
    exact = sum(pair["exact"] for pair in report["pairs"])
    across = sum(pair["kind"] == "across" for pair in report["pairs"])
    print(
        f"{report['images']} images, {len(report['pairs'])} pairs at distance <= {args.threshold} "
        f"({exact} exact, {across} across sources) in {time.perf_counter() - start:.1f} s -> {args.out}, {picture}"
    )
    return 0


def register(subparsers) -> None:
    data = subparsers.add_parser("data", help="build or inspect datasets")
    commands = data.add_subparsers(dest="data_command", required=True)
    build_parser = commands.add_parser(
        "build", help="read (or, for rs_synth, generate) a dataset and write it to --out"
    )
    _add_source_arguments(build_parser)
    build_parser.add_argument("--out", required=True, help="output folder (created atomically)")
    build_parser.add_argument(
        "--format", default="parquet", choices=FORMATS, help="parquet: Hub layout; arrow: save_to_disk"
    )
    build_parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    build_parser.set_defaults(func=build)
    info_parser = commands.add_parser("info", help="print split sizes, blank and duplicate captions, scene counts")
    _add_source_arguments(info_parser)
    info_parser.add_argument("--json", action="store_true", help="print the full report as JSON")
    info_parser.set_defaults(func=info)
    from ..data.dedup import DEFAULT_THRESHOLD

    dedup_parser = commands.add_parser(
        "dedup",
        help="exact and near-duplicate images within and across image sets (perceptual hash)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    dedup_parser.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="NAME=DATA_DIR (a dataset release, all splits), an image folder, or a dataset name (rs_synth, Hub id)",
    )
    dedup_parser.add_argument("--out", required=True, help="JSON report (pairs closest first)")
    dedup_parser.add_argument(
        "--threshold", type=int, default=DEFAULT_THRESHOLD, help="largest Hamming distance (of 64 pHash bits) reported"
    )
    dedup_parser.add_argument(
        "--across-only", action="store_true", help="only pairs whose images come from different sources"
    )
    dedup_parser.add_argument(
        "--no-rotations", action="store_true", help="do not match copies rotated by 90, 180 or 270 degrees"
    )
    dedup_parser.add_argument("--picture", help="PNG of the closest pairs side by side (default: --out with .png)")
    dedup_parser.add_argument("--show", type=int, default=12, help="pairs drawn in the picture")
    dedup_parser.add_argument("--workers", type=int, default=4, help="hashing threads")
    dedup_parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    dedup_parser.set_defaults(func=_reports_errors(dedup))
