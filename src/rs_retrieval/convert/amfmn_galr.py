"""Official AMFMN / GaLR checkpoints (`AMFMN_best.pth.tar`, `GaLR_best.pth.tar`) -> our models.

Our modules keep the official names (docs/methods/amfmn.md#reference-code-and-converter,
docs/methods/galr.md#reference-code-and-converter), so every key maps to itself except the torchvision ResNet-18 under
`extract_feature.resnet.` (renamed into transformers' `ResNetModel` under `extract_feature.backbone.resnet.`,
classifier `fc.*` dropped) and AMFMN's unused `vgmf_gate.*` (dropped). The architecture (vocabulary size, widths,
attention type, graph size, input size) is read from the tensor shapes; anything else left over is refused.
"""

from __future__ import annotations

import math
import os

import torch

from ..errors import UsageError
from ..models import get_method
from ..models.amfmn_family.tokenization_word import load_vocab
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

#: The methods whose official checkpoints this module converts (they share the AMFMN code base).
CONVERTED_METHODS = ("amfmn", "galr")
_VGA_KEYS = {
    "soft_att": "cross_attention_s.cross_attention.0.weight",
    "fusion_att": "cross_attention_s.cross_attention_fc1.0.weight",
    "similarity_att": "cross_attention_s.fc_visual.0.weight",
}


def conversion_rules(method: str) -> list:
    """Key rules for `rename_keys`: the ResNet renaming, AMFMN's dropped `vgmf_gate`, identity otherwise."""
    rules = [resnet_rule("extract_feature.resnet.", "extract_feature.backbone.resnet.")]
    if method == "amfmn":
        rules.append((r"vgmf_gate\.gate\.(weight|bias)", None))
    rules.append((r"(extract_feature\.linear|mvsa|text_feature|cross_attention_s|local_feature|fusion)\..+", r"\g<0>"))
    return rules


def infer_config_kwargs(state: dict[str, torch.Tensor], method: str, source: str = "checkpoint") -> dict:
    """Architecture fields of the config, read from the official tensor shapes."""
    vocab_size, word_dim = tensor_shape(state, "text_feature.seq2vec.embedding.weight", source)
    embed_dim, _ = tensor_shape(state, "extract_feature.linear.weight", source)
    multiscale_in = tensor_shape(state, "mvsa.LF_conv.weight", source)[0]
    multiscale_out = tensor_shape(state, "mvsa.conv1x1_1.weight", source)[0]
    mask_inputs = tensor_shape(state, "mvsa.solo_attention.weight", source)[1]
    map_side = math.isqrt(mask_inputs // multiscale_out)
    if map_side * map_side * multiscale_out != mask_inputs:
        raise CheckpointConversionError(
            f"{source}: mvsa.solo_attention takes {mask_inputs} inputs, not O x side^2 with O={multiscale_out}"
        )
    kwargs = dict(
        vocab_size=vocab_size,
        word_embed_dim=word_dim,
        text_hidden_dim=tensor_shape(state, "text_feature.seq2vec.rnn.gru_cell.weight_ir.weight", source)[0],
        embed_dim=embed_dim,
        multiscale_in=multiscale_in,
        multiscale_out=multiscale_out,
        image_size=16 * map_side,
    )
    if method == "amfmn":
        found = [att for att, key in _VGA_KEYS.items() if key in state]
        if len(found) != 1:
            raise CheckpointConversionError(
                f"{source}: expected the keys of exactly one attention type {sorted(_VGA_KEYS)}, found {found}"
            )
        kwargs["att_type"] = found[0]
    else:
        d1, node_dim = tensor_shape(state, "local_feature.fc1.weight", source)
        d2 = tensor_shape(state, "local_feature.fc2.weight", source)[0]
        d3 = tensor_shape(state, "local_feature.fc3.weight", source)[0]
        flat = tensor_shape(state, "local_feature.out.weight", source)[1]
        if flat % d3:
            raise CheckpointConversionError(
                f"{source}: local_feature.out takes {flat} inputs, not a multiple of fc3's {d3} outputs"
            )
        kwargs.update(
            num_nodes=flat // d3,
            node_dim=node_dim,
            gcn_dims=[d1, d2, d3],
            mca_hidden=embed_dim,
            mca_ff=tensor_shape(state, "fusion.g2g_SA.ffn.mlp.fc.linear.weight", source)[0],
            dynamic_fusion_dim=tensor_shape(state, "fusion.dynamic_weight.0.weight", source)[0],
        )
    return kwargs


def convert_amfmn_galr(
    checkpoint_path,
    method: str,
    vocab_path,
    out_dir,
    allow_pickle: bool = False,
    overwrite: bool = False,
    config_overrides: dict | None = None,
) -> str:
    """Convert an official AMFMN or GaLR checkpoint (wrapper dict or bare state_dict) and write a
    `save_pretrained` folder (safetensors + config + processor with the vocabulary) atomically.

    `vocab_path` is the reference `vocab.json` the model was trained with (its size must match the
    embedding). `config_overrides` sets fields the weights cannot tell (e.g. `mca_heads`, `margin`).
    Returns the output folder.
    """
    if method not in CONVERTED_METHODS:
        raise ValueError(f"method must be one of {list(CONVERTED_METHODS)}, got {method!r}")
    if vocab_path is None:
        raise UsageError(
            f"{method} conversion needs the reference vocab.json the model was trained with (--vocab, vocab_path)"
        )
    source = os.fspath(checkpoint_path)
    spec = get_method(method)
    state, _ = load_state_dict_file(checkpoint_path, allow_pickle=allow_pickle)
    config = spec.config_class(**{**infer_config_kwargs(state, method, source), **(config_overrides or {})})
    word2idx = load_vocab(vocab_path)
    if len(word2idx) + 1 != config.vocab_size:
        raise CheckpointConversionError(
            f"{vocab_path} has {len(word2idx)} words (+ padding = "
            f"{len(word2idx) + 1}) but the checkpoint embedding has "
            f"{config.vocab_size} rows: use the vocabulary the model was trained with"
        )
    model = spec.model_class(config)
    load_converted(model, rename_keys(state, conversion_rules(method), source), source)
    processor = spec.processor_class.from_config(config, word2idx)
    stamp_vocabulary(model, processor)
    return save_pretrained_atomic(out_dir, model, processor, overwrite=overwrite)
