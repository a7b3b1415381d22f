"""Official MSA weights (`yr666666/MSA`) -> an `MSAModel` `save_pretrained` folder.

The reference saves (in commented-out code, `retrieval.py`) one state_dict per module: `best_img_model.pth`
(`model_retrieval`: torchvision ResNet-50 under `feature_extractor.`, the scale projections `fc1..fc4`, and dead
layers), `best_img_map.pth` (`feature_map`: `fc`, `att`, `fc2`), `best_text_model.pth` (`Bert`: `bert_model.*`) and,
never saved by the reference but accepted here, `best_crossatt.pth` (`Multi_img_crossatt`, training only). Give the
folder holding them, or one file whose keys carry those four prefixes (`img_model.`, `img_map.`, `text_model.`,
`crossatt.`). Every key is renamed by an explicit rule (docs/methods/msa.md#reference-code-and-converter); dead
parameters (`norm_layer`, `image_channel_reduce`, `image_patch_proj`, the ResNet `fc`, the BERT pooler, `ln_post`) are
dropped on purpose; anything else unmatched, missing or mis-shaped is an error.
"""

from __future__ import annotations

import os
import re
import warnings

import torch
from transformers import BertConfig

from ..errors import InputNotFoundError, UsageError
from ..models.common.towers import resnet_config
from ..models.msa import MSAConfig, MSAModel, MSAProcessor
from ..pretrained import stamp_vocabulary
from .common import (
    CheckpointConversionError,
    load_converted,
    load_state_dict_file,
    rename_keys,
    resnet_rule,
    save_pretrained_atomic,
    tensor_shape,
)

#: Part name -> reference file name inside a checkpoint folder.
PART_FILES = {
    "img_model": "best_img_model.pth",
    "img_map": "best_img_map.pth",
    "text_model": "best_text_model.pth",
    "crossatt": "best_crossatt.pth",
}
REQUIRED_PARTS = ("img_model", "img_map", "text_model")


def _indexed(template: str):
    """Rename `...{1-4}...` (1-based scale index in group 1) into `template` with a 0-based index."""
    return lambda match: template.format(int(match.group(1)) - 1, *match.groups()[1:])


CONVERSION_RULES = [
    resnet_rule("img_model.feature_extractor.", "vision_model.resnet."),
    (r"img_model\.fc([1-4])\.(weight|bias)", _indexed("scale_proj.{}.{}")),
    (r"img_model\.(norm_layer|image_channel_reduce|image_patch_proj)\..+", None),  # defined, never used
    (r"img_map\.fc\.(weight|bias)", r"image_head.proj.\1"),
    (r"img_map\.att\.(weight|bias)", r"image_head.gate.\1"),
    (r"img_map\.fc2\.(weight|bias)", r"image_head.out.\1"),
    (r"text_model\.bert_model\.(pooler\..+|embeddings\.position_ids)", None),  # pooler unused; buffer
    (r"text_model\.bert_model\.(.+)", r"text_model.\1"),
    (r"crossatt\.fc([1-4])\.(weight|bias)", _indexed("mscmat.query_proj.{}.{}")),
    (
        r"crossatt\.cross_attn([1-4])\.(in_proj_weight|in_proj_bias|out_proj\.weight|out_proj\.bias)",
        _indexed("mscmat.attention.{}.{}"),
    ),
    (r"crossatt\.ln_pre_t\.(weight|bias)", r"mscmat.query_norm.\1"),
    (r"crossatt\.ln_pre_i\.(weight|bias)", r"mscmat.token_norm.\1"),
    (r"crossatt\.ln_post\..+", None),  # defined, never used
    (r"crossatt\.match_fc([1-4])\.(weight|bias)", _indexed("mscmat.match_head.{}.{}")),
]


def read_official_parts(path: str | os.PathLike, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """One flat state_dict with part prefixes, from a folder of reference files or one combined file."""
    path = os.fspath(path)
    if os.path.isdir(path):
        state = {}
        for part, name in PART_FILES.items():
            file = os.path.join(path, name)
            if not os.path.isfile(file):
                if part in REQUIRED_PARTS:
                    raise InputNotFoundError(
                        f"MSA checkpoint folder {path} lacks {name} (needs "
                        f"{', '.join(PART_FILES[p] for p in REQUIRED_PARTS)})"
                    )
                continue
            part_state, _ = load_state_dict_file(file, allow_pickle=allow_pickle)
            state.update({f"{part}.{key}": value for key, value in part_state.items()})
        return state
    state, _ = load_state_dict_file(path, allow_pickle=allow_pickle)
    parts = {key.split(".", 1)[0] for key in state}
    if not set(REQUIRED_PARTS) <= parts or not parts <= set(PART_FILES):
        raise CheckpointConversionError(
            f"{path}: a single-file MSA checkpoint needs keys prefixed by "
            f"{list(REQUIRED_PARTS)} (optionally 'crossatt.'), found prefixes {sorted(parts)}"
        )
    return state


def infer_config(state: dict[str, torch.Tensor], source: str = "checkpoint", **overrides) -> MSAConfig:
    """The `MSAConfig` whose shapes match the reference tensors. Head counts cannot be read from
    weights: BERT and MSCMAT get hidden/64 (12 for the reference's 768; standard for BERTs);
    `overrides` (MSAConfig fields, e.g. `mscmat_heads`) win."""
    vocab, hidden = tensor_shape(state, "text_model.bert_model.embeddings.word_embeddings.weight", source)
    layer_ids = {
        int(m.group(1)) for key in state if (m := re.match(r"text_model\.bert_model\.encoder\.layer\.(\d+)\.", key))
    }
    text_config = BertConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=len(layer_ids),
        num_attention_heads=max(1, hidden // 64),
        intermediate_size=tensor_shape(
            state, "text_model.bert_model.encoder.layer.0.intermediate.dense.weight", source
        )[0],
        max_position_embeddings=tensor_shape(
            state, "text_model.bert_model.embeddings.position_embeddings.weight", source
        )[0],
        type_vocab_size=tensor_shape(state, "text_model.bert_model.embeddings.token_type_embeddings.weight", source)[
            0
        ],
    )
    prefix = "img_model.feature_extractor."
    bottleneck = prefix + "layer1.0.conv3.weight" in state
    last_conv = "conv3" if bottleneck else "conv2"
    depths = [
        len({m.group(1) for key in state if (m := re.match(re.escape(prefix) + rf"layer{s}\.(\d+)\.", key))})
        for s in range(1, 5)
    ]
    if 0 in depths:
        raise CheckpointConversionError(
            f"{source}: the ResNet under {prefix!r} lacks a stage (blocks per stage: {depths})"
        )
    vision_config = resnet_config(
        "resnet50" if bottleneck else "resnet18",
        depths=depths,
        hidden_sizes=[tensor_shape(state, f"{prefix}layer{s}.0.{last_conv}.weight", source)[0] for s in range(1, 5)],
        embedding_size=tensor_shape(state, prefix + "conv1.weight", source)[0],
    )
    fields = dict(
        hidden_size=tensor_shape(state, "img_map.fc.weight", source)[0], mscmat_heads=text_config.num_attention_heads
    )
    return MSAConfig(text_config=text_config, vision_config=vision_config, **{**fields, **overrides})


def convert_msa(
    checkpoint_path,
    method: str = "msa",
    vocab_path=None,
    out_dir=None,
    allow_pickle: bool = False,
    overwrite: bool = False,
    config_overrides: dict | None = None,
) -> str:
    """Convert reference MSA weights and write model + processor (`vocab_path` = the
    bert-base-uncased `vocab.txt` the model was trained with) atomically into `out_dir`.

    Without `best_crossatt.pth` (the reference never saves it) the training-only MSCMAT head keeps
    its initialisation, with a warning; retrieval does not use it.
    """
    if method != "msa":
        raise ValueError(f"convert_msa converts MSA checkpoints, not {method!r}")
    if vocab_path is None or out_dir is None:
        raise UsageError("MSA conversion needs the BERT vocab.txt (--vocab, vocab_path) and out_dir")
    source = os.fspath(checkpoint_path)
    state = read_official_parts(checkpoint_path, allow_pickle=allow_pickle)
    config = infer_config(state, source, **(config_overrides or {}))
    model = MSAModel(config)
    converted = rename_keys(state, CONVERSION_RULES, source)
    if not any(key.startswith("crossatt.") for key in state):
        warnings.warn(
            f"{source}: no MSCMAT weights (best_crossatt.pth); the training-only head keeps its initialisation",
            stacklevel=2,
        )
        converted.update({k: v for k, v in model.state_dict().items() if k.startswith("mscmat.")})
    load_converted(model, converted, source)
    processor = MSAProcessor.from_config(config, vocab_path)
    if len(processor.tokenizer) != config.text_config.vocab_size:
        raise CheckpointConversionError(
            f"{vocab_path} has {len(processor.tokenizer)} tokens but the "
            f"checkpoint's BERT embedding has {config.text_config.vocab_size} rows"
        )
    stamp_vocabulary(model, processor)
    return save_pretrained_atomic(out_dir, model, processor, overwrite=overwrite)
