"""open_clip checkpoints (RemoteCLIP, GeoRSCLIP, SkyCLIP, any open_clip ViT CLIP) -> a plain
transformers `CLIPModel` + `CLIPProcessor` folder (docs/clip-zeroshot.md).

The written folder loads with `CLIPModel.from_pretrained` / `CLIPProcessor.from_pretrained(..., backend="pil")` in an
environment without this package (the PIL backend is open_clip's resize; transformers cannot be told so by the folder,
see `models/clip/processing_clip.py`). Steps: read the file the way the releases ship it (bare state dict, training
checkpoint with `state_dict` and `module.` prefixes, `model.`-prefixed wrapper, safetensors, or an
`open_clip_config.json` repository folder); build the `CLIPConfig` from the open_clip architecture (a known name, an
open_clip model-config JSON, or the repository's config); rename every key with explicit rules (attention
in-projections split into q/k/v, projections transposed); load strictly; add the offline CLIP tokenizer and the PIL
image processor matching open_clip's validation transform; record provenance in `conversion.json` and the card.

The activation cannot be read from the weights: QuickGELU for checkpoints trained from OpenAI CLIP, exact GELU for
LAION-initialised ones (docs/clip-zeroshot.md#the-activation-check). Known releases carry their value; anything else
defaults to the architecture config's `quick_gelu` flag (GELU when absent, as open_clip). ResNet towers (RemoteCLIP
RN50) have no transformers class and are refused.
"""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path

import torch

from ..errors import InputNotFoundError, RSRetrievalError
from ..fileio import sha256_file, write_json_atomic
from ..models.clip.releases import CONVERSION_RECORD
from ..pretrained import stamp_vocabulary
from .common import CheckpointConversionError, load_converted, rename_keys, save_pretrained_atomic


class UnsupportedArchitectureError(RSRetrievalError, ValueError):
    """The checkpoint's architecture has no transformers equivalent we convert to (e.g. RN50)."""


def _vit(embed, width, layers, patch, text_width, text_heads, text_layers, image_size=224, head_width=64):
    return {
        "embed_dim": embed,
        "vision_cfg": {
            "image_size": image_size,
            "layers": layers,
            "width": width,
            "head_width": head_width,
            "patch_size": patch,
        },
        "text_cfg": {
            "context_length": 77,
            "vocab_size": 49408,
            "width": text_width,
            "heads": text_heads,
            "layers": text_layers,
        },
    }


#: open_clip model configs of the architectures the RS releases use (docs/clip-zeroshot.md).
ARCHITECTURES = {
    "ViT-B-32": _vit(512, 768, 12, 32, 512, 8, 12),
    "ViT-B-16": _vit(512, 768, 12, 16, 512, 8, 12),
    "ViT-L-14": _vit(768, 1024, 24, 14, 768, 12, 12),
    "ViT-L-14-336": _vit(768, 1024, 24, 14, 768, 12, 12, image_size=336),
    "ViT-H-14": _vit(1024, 1280, 32, 14, 1024, 16, 24, head_width=80),
}
RESNET_ARCHITECTURES = ("RN50", "RN101", "RN50x4", "RN50x16", "RN50x64")
ACTIVATIONS = {"quick_gelu": "quick_gelu", "gelu": "gelu"}

_VISION_DEFAULTS = {
    "image_size": 224,
    "layers": 12,
    "width": 768,
    "head_width": 64,
    "mlp_ratio": 4.0,
    "patch_size": 16,
}
_TEXT_DEFAULTS = {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12, "mlp_ratio": 4.0}
#: open_clip options that do not change inference; any other option with a truthy value is refused.
_IGNORABLE = {"patch_dropout", "output_tokens", "timm_model_pretrained"}
_TOP_LEVEL = {"embed_dim", "quick_gelu", "vision_cfg", "text_cfg", "custom_text", "cast_dtype"}


def resolve_architecture(arch: str | os.PathLike | dict) -> dict:
    """An open_clip model config dict from a known name, a model-config JSON file or a dict."""
    if isinstance(arch, dict):
        cfg = copy.deepcopy(arch)
    elif str(arch).removesuffix("-quickgelu") in ARCHITECTURES:
        cfg = copy.deepcopy(ARCHITECTURES[str(arch).removesuffix("-quickgelu")])
        if str(arch).endswith("-quickgelu"):
            cfg["quick_gelu"] = True
    elif str(arch).split("-quickgelu")[0] in RESNET_ARCHITECTURES:
        raise UnsupportedArchitectureError(_resnet_message(str(arch)))
    elif Path(arch).is_file():
        try:
            cfg = json.loads(Path(arch).read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise CheckpointConversionError(f"{arch}: not a JSON open_clip model config ({error})") from error
    else:
        raise CheckpointConversionError(
            f"unknown architecture {arch!r}: give one of "
            f"{sorted(ARCHITECTURES)} or an open_clip model-config JSON file"
        )
    if isinstance(cfg, dict) and isinstance(cfg.get("model_cfg"), dict):  # an open_clip_config.json
        cfg = cfg["model_cfg"]
    _check_supported(cfg)
    return cfg


def _resnet_message(what: str) -> str:
    return (
        f"{what}: ResNet CLIP towers (ModifiedResNet with attention "
        "pooling, e.g. RemoteCLIP RN50) have no transformers "
        "class, and rs_retrieval does not convert them; use a ViT checkpoint (ViT-B-32, ViT-L-14, ...)"
    )


def _check_supported(cfg: dict) -> None:
    if (
        not isinstance(cfg.get("vision_cfg"), dict)
        or not isinstance(cfg.get("text_cfg"), dict)
        or "embed_dim" not in cfg
    ):
        raise CheckpointConversionError("an open_clip model config needs embed_dim, vision_cfg and text_cfg")
    if isinstance(cfg["vision_cfg"].get("layers"), (list, tuple)):
        raise UnsupportedArchitectureError(_resnet_message("this architecture"))
    problems = [f"{key}" for key in cfg if key not in _TOP_LEVEL and cfg[key]]
    for part, defaults in (("vision_cfg", _VISION_DEFAULTS), ("text_cfg", _TEXT_DEFAULTS)):
        problems += [
            f"{part}.{key}={value!r}"
            for key, value in cfg[part].items()
            if key not in defaults and key not in _IGNORABLE and value
        ]
    if problems:
        raise UnsupportedArchitectureError(
            "open_clip options without a CLIPModel equivalent: "
            f"{', '.join(problems)} (only OpenAI-style ViT CLIP converts)"
        )


def clip_config_from_open_clip(cfg: dict, hidden_act: str):
    """The transformers `CLIPConfig` of an open_clip ViT config (docs/clip-zeroshot.md)."""
    from transformers import CLIPConfig

    if hidden_act not in ACTIVATIONS:
        raise ValueError(f"hidden_act must be one of {sorted(ACTIVATIONS)}, got {hidden_act!r}")
    vision = {**_VISION_DEFAULTS, **{k: v for k, v in cfg["vision_cfg"].items() if k in _VISION_DEFAULTS}}
    text = {**_TEXT_DEFAULTS, **{k: v for k, v in cfg["text_cfg"].items() if k in _TEXT_DEFAULTS}}
    if vision["width"] % vision["head_width"]:
        raise CheckpointConversionError(
            f"vision width {vision['width']} is not a multiple of head_width {vision['head_width']}"
        )
    common = {
        "hidden_act": hidden_act,
        "layer_norm_eps": 1e-5,
        "attention_dropout": 0.0,
        "projection_dim": cfg["embed_dim"],
    }
    return CLIPConfig(
        projection_dim=cfg["embed_dim"],
        text_config={
            **common,
            "hidden_size": text["width"],
            "intermediate_size": int(text["width"] * text["mlp_ratio"]),
            "num_hidden_layers": text["layers"],
            "num_attention_heads": text["heads"],
            "max_position_embeddings": text["context_length"],
            "vocab_size": text["vocab_size"],
            "bos_token_id": 49406,
            "eos_token_id": 49407,
            "pad_token_id": 49407,
        },
        vision_config={
            **common,
            "hidden_size": vision["width"],
            "intermediate_size": int(vision["width"] * vision["mlp_ratio"]),
            "num_hidden_layers": vision["layers"],
            "num_attention_heads": vision["width"] // vision["head_width"],
            "patch_size": vision["patch_size"],
            "image_size": vision["image_size"],
        },
    )


# ---------------------------------------------------------------------------------- reading


def _find_weights(folder: Path) -> Path:
    for name in (
        "open_clip_model.safetensors",
        "open_clip_pytorch_model.bin",
        "model.safetensors",
        "pytorch_model.bin",
    ):
        if (folder / name).is_file():
            return folder / name
    raise InputNotFoundError(
        f"{folder} holds no open_clip weights (open_clip_model.safetensors / open_clip_pytorch_model.bin)"
    )


def read_open_clip_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The open_clip state dict of a release file (docs/clip-zeroshot.md): bare state dict
    (RemoteCLIP, GeoRSCLIP), training checkpoint `{"state_dict": ..., "epoch", "optimizer"}` with
    `module.` prefixes (SkyCLIP), `model.`-prefixed wrapper copies, or safetensors."""
    path = Path(path)
    if path.is_dir():
        path = _find_weights(path)
    if not path.is_file():
        raise InputNotFoundError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        data = load_file(str(path))
    else:
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises UnpicklingError/RuntimeError variants
            raise CheckpointConversionError(
                f"{path}: cannot be read as a tensor checkpoint "
                f"({type(error).__name__}: {str(error).splitlines()[0]}); "
                "TorchScript archives (OpenAI's original .pt files) are not open_clip state dicts"
            ) from error
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not data or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise CheckpointConversionError(
            f"{path}: expected an open_clip state dict (name -> tensor), "
            "or a training checkpoint with one under 'state_dict'"
        )
    state = {key.removeprefix("module."): value for key, value in data.items()}
    if all(key.startswith("model.") for key in state):
        state = {key.removeprefix("model."): value for key, value in state.items()}
    # Non-persistent in open_clip; present in some exports.
    state = {
        key: value
        for key, value in state.items()
        if key not in ("attn_mask", "input_resolution", "context_length", "vocab_size")
    }
    if any(key.startswith("visual.attnpool.") or key.startswith("visual.layer1.") for key in state):
        raise UnsupportedArchitectureError(_resnet_message(str(path)))
    return state


# --------------------------------------------------------------------------------- renaming


def _split_in_proj(prefix: str):
    """Rule for `<blocks>.N.attn.in_proj_{weight,bias}`: one fused tensor -> q/k/v (split later)."""

    def rename(match: re.Match) -> str:
        return f"{prefix}.encoder.layers.{match.group(1)}.self_attn.qkv_proj.{match.group(2)}"

    return rename


def _block_rules(source: str, target: str) -> list:
    block = re.escape(source) + r"\.(\d+)\."
    return [
        (block + r"ln_1\.(weight|bias)", rf"{target}.encoder.layers.\1.layer_norm1.\2"),
        (block + r"ln_2\.(weight|bias)", rf"{target}.encoder.layers.\1.layer_norm2.\2"),
        (block + r"attn\.in_proj_(weight|bias)", _split_in_proj(target)),
        (block + r"attn\.out_proj\.(weight|bias)", rf"{target}.encoder.layers.\1.self_attn.out_proj.\2"),
        (block + r"mlp\.c_fc\.(weight|bias)", rf"{target}.encoder.layers.\1.mlp.fc1.\2"),
        (block + r"mlp\.c_proj\.(weight|bias)", rf"{target}.encoder.layers.\1.mlp.fc2.\2"),
    ]


#: open_clip key -> CLIPModel key (docs/clip-zeroshot.md); `qkv_proj` entries are split afterwards.
OPEN_CLIP_RULES = [
    (r"token_embedding\.weight", "text_model.embeddings.token_embedding.weight"),
    (r"positional_embedding", "text_model.embeddings.position_embedding.weight"),
    *_block_rules("transformer.resblocks", "text_model"),
    (r"ln_final\.(weight|bias)", r"text_model.final_layer_norm.\1"),
    (r"text_projection", "text_projection.weight"),
    (r"visual\.conv1\.weight", "vision_model.embeddings.patch_embedding.weight"),
    (r"visual\.class_embedding", "vision_model.embeddings.class_embedding"),
    (r"visual\.positional_embedding", "vision_model.embeddings.position_embedding.weight"),
    (r"visual\.ln_pre\.(weight|bias)", r"vision_model.pre_layrnorm.\1"),
    *_block_rules("visual.transformer.resblocks", "vision_model"),
    (r"visual\.ln_post\.(weight|bias)", r"vision_model.post_layernorm.\1"),
    (r"visual\.proj", "visual_projection.weight"),
    (r"logit_scale", "logit_scale"),
]
_TRANSPOSED = ("text_projection.weight", "visual_projection.weight")


def open_clip_to_transformers(state: dict[str, torch.Tensor], source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Rename an open_clip ViT state dict to `CLIPModel` keys (every key must be covered)."""
    renamed = rename_keys(state, OPEN_CLIP_RULES, source)
    converted = {}
    for key, value in renamed.items():
        if ".qkv_proj." in key:
            if value.shape[0] % 3:
                raise CheckpointConversionError(
                    f"{source}: fused attention projection {key} has {value.shape[0]} rows, not a multiple of 3"
                )
            for name, chunk in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
                converted[key.replace("qkv_proj", name)] = chunk.clone()
        elif key in _TRANSPOSED:
            if value.dim() != 2:
                raise CheckpointConversionError(f"{source}: {key} should be a matrix, got shape {tuple(value.shape)}")
            converted[key] = value.t().contiguous()
        else:
            converted[key] = value
    return converted


# --------------------------------------------------------------------------------- releases


def _repository_config(path: Path) -> dict | None:
    """The `open_clip_config.json` next to (or inside) a checkpoint, when there is one."""
    folder = path if path.is_dir() else path.parent
    config = folder / "open_clip_config.json"
    return json.loads(config.read_text(encoding="utf-8")) if config.is_file() else None


def convert_open_clip(
    path: str | os.PathLike,
    out_dir: str | os.PathLike,
    arch: str | os.PathLike | dict | None = None,
    hidden_act: str | None = None,
    release: str | None = None,
    vocab_path: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> str:
    """Convert an open_clip checkpoint into a plain transformers CLIP folder; returns the folder.

    Args:
        path: release file (`.pt`, `.bin`, `.safetensors`) or an open_clip repository folder.
        arch: open_clip architecture name (ViT-B-32, ViT-B-16, ViT-L-14, ViT-L-14-336, ViT-H-14, with
            an optional `-quickgelu`), an open_clip model-config JSON, or None for the release's /
            the repository's own config.
        hidden_act: "quick_gelu" or "gelu"; default: the release's documented value, else the
            config's `quick_gelu` flag.
        release: id of a known release (`models.clip.releases.RELEASES`, e.g. "remoteclip-vit-b-32"); guessed
            from the file name when omitted. It names the card's reported numbers and licence.
        vocab_path: CLIP BPE merges file (`bpe_simple_vocab_16e6.txt.gz`) or a tokenizer folder;
            default: the copy packaged with rs_retrieval.
    """
    from transformers import AutoTokenizer, CLIPProcessor

    from ..cards import write_model_card
    from ..models.clip import CLIPRetrievalModel, build_clip_tokenizer
    from ..models.clip.processing_clip import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, build_clip_image_processor
    from .clip_zoo import find_release

    path = Path(path)
    info = find_release(release, path)
    repository = _repository_config(path) if path.exists() else None
    arch = arch if arch is not None else (info.arch if info else repository)
    if arch is None:
        raise CheckpointConversionError(
            f"{path}: pass arch (e.g. ViT-B-32): the file does not name "
            "its architecture and there is no open_clip_config.json"
        )
    cfg = resolve_architecture(arch)
    act = hidden_act or (info.hidden_act if info else ("quick_gelu" if cfg.get("quick_gelu") else "gelu"))
    act_source = (
        "given" if hidden_act else (f"documented for {info.id}" if info else "architecture config (open_clip default)")
    )
    config = clip_config_from_open_clip(cfg, act)

    source_state = read_open_clip_checkpoint(path)
    state = open_clip_to_transformers(source_state, str(path))
    model = CLIPRetrievalModel(config)
    load_converted(model, state, str(path))
    model = model.eval()

    preprocess = (repository or {}).get("preprocess_cfg", {})
    if (
        preprocess.get("resize_mode", "shortest") != "shortest"
        or preprocess.get("interpolation", "bicubic") != "bicubic"
    ):
        raise UnsupportedArchitectureError(
            f"preprocessing {preprocess} differs from CLIP's (shortest-side bicubic resize + centre crop)"
        )
    image_processor = build_clip_image_processor(
        config.vision_config.image_size,
        preprocess.get("mean", OPENAI_CLIP_MEAN),
        preprocess.get("std", OPENAI_CLIP_STD),
    )
    context_length = config.text_config.max_position_embeddings
    if vocab_path is not None and Path(vocab_path).is_dir():
        tokenizer = AutoTokenizer.from_pretrained(vocab_path, model_max_length=context_length)
    else:
        tokenizer = build_clip_tokenizer(vocab_path, model_max_length=context_length)
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)
    stamp_vocabulary(model, processor)

    record = {
        "source_file": path.name,
        "source_sha256": sha256_file(path if path.is_file() else _find_weights(path)),
        "source_keys": len(source_state),
        "converted_keys": len(state),
        "release": info.id if info else None,
        "architecture": arch if isinstance(arch, str) else "open_clip config",
        "open_clip_config": cfg,
        "hidden_act": act,
        "hidden_act_source": act_source,
        "image_size": config.vision_config.image_size,
        "image_mean": list(image_processor.image_mean),
        "image_std": list(image_processor.image_std),
        "logit_scale": float(model.logit_scale.detach()),
    }
    out = save_pretrained_atomic(out_dir, model, processor, _ConversionRecord(record), overwrite=overwrite)
    write_model_card(out)
    return out


#: Provenance of a converted folder (read by the model card).


class _ConversionRecord:
    """Writes `conversion.json` inside the atomic output folder, next to the weights."""

    def __init__(self, record: dict):
        self.record = record

    def save_pretrained(self, folder) -> None:
        write_json_atomic(Path(folder) / CONVERSION_RECORD, self.record)


def convert_openclip_command(path, method: str = "openclip", vocab_path=None, out_dir=None, **options) -> str:
    """`convert_checkpoint` entry point (the "clip" method's converter, also named "openclip")."""
    options.pop("allow_pickle", None)  # releases are tensors only: always read with weights_only
    overrides = options.pop("config_overrides", None) or {}
    return convert_open_clip(path, out_dir, vocab_path=vocab_path, **{**overrides, **options})
