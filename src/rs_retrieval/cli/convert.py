"""`rs-retrieval convert`: official checkpoints -> `save_pretrained` folders (methods registered with a converter)."""

import argparse


def parse_override(text: str) -> tuple[str, object]:
    """KEY=VALUE with the value parsed as YAML, the same syntax as `rs-retrieval train --set`."""
    from ..training.recipe import RecipeError, parse_overrides

    try:
        ((path, value),) = parse_overrides([text])
    except RecipeError as error:
        raise argparse.ArgumentTypeError(str(error)) from error
    return ".".join(path), value


def add_convert_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--method", required=True, help="registered method with a checkpoint converter (amfmn, galr, msa)"
    )
    parser.add_argument(
        "--checkpoint", required=True, help="official .pth/.pth.tar file (wrapper dict or bare state_dict)"
    )
    parser.add_argument(
        "--vocab",
        help=(
            "vocabulary the model was trained with: reference vocab.json (AMFMN/GaLR), BERT "
            "vocab.txt (MSA), CLIP BPE .txt.gz or tokenizer folder (openclip; default: packaged)"
        ),
    )
    parser.add_argument("--out", required=True, help="output folder (written atomically)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing non-empty output folder")
    parser.add_argument(
        "--allow-pickle", action="store_true", help="read checkpoints that need full unpickling (trusted files only)"
    )
    clip = parser.add_argument_group("openclip (RemoteCLIP, GeoRSCLIP, SkyCLIP, any open_clip ViT CLIP)")
    clip.add_argument(
        "--arch",
        help=(
            "open_clip architecture: ViT-B-32, ViT-B-16, ViT-L-14, "
            "ViT-L-14-336, ViT-H-14 (optionally -quickgelu) or a model-config JSON"
        ),
    )
    clip.add_argument(
        "--activation",
        dest="hidden_act",
        choices=("quick_gelu", "gelu"),
        help="MLP activation the checkpoint was trained with (default: the release's documented one)",
    )
    clip.add_argument(
        "--release",
        help="known release id (e.g. remoteclip-vit-b-32, georsclip-vit-b-32-ret2); guessed from the file name",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        type=parse_override,
        metavar="KEY=VALUE",
        help="config field the weights cannot tell, e.g. --set mca_heads=8 (values parsed as YAML, as in train --set)",
    )
    return parser


def run_convert(args: argparse.Namespace) -> int:
    """User errors (missing checkpoint first, then vocabulary, options, layout) are the package's
    typed errors: the CLI prints them as one `error:` line with exit status 2."""
    from ..convert import convert_checkpoint
    from ..errors import UsageError

    options = dict(allow_pickle=args.allow_pickle, overwrite=args.overwrite)
    clip_options = {name: getattr(args, name) for name in ("arch", "hidden_act", "release") if getattr(args, name)}
    if clip_options and args.method != "openclip":
        raise UsageError("--arch/--activation/--release apply to --method openclip only")
    options.update(clip_options)
    if args.overrides:
        options["config_overrides"] = dict(args.overrides)
    print(convert_checkpoint(args.checkpoint, args.method, vocab_path=args.vocab, out_dir=args.out, **options))
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert",
        help=(
            "convert an official AMFMN/GaLR/MSA or open_clip "
            "(RemoteCLIP/GeoRSCLIP/SkyCLIP) checkpoint into a save_pretrained folder"
        ),
    )
    add_convert_arguments(parser).set_defaults(func=run_convert)
