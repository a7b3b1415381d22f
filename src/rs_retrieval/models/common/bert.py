"""BERT text towers and WordPiece tokenizers shared by the BERT-based methods (MSA, CMPAGL).

Towers are plain `transformers.BertModel`s built from a `BertConfig` sub-config, so the weights of
`bert-base-uncased` (or any BERT checkpoint with the same shape) load from a local directory or a
Hub id. CMPAGL splits one pretrained BERT over two towers (text layers, then fusion layers);
`load_bert_layers` does that split strictly. `BertRetrievalProcessor` pairs the shared RS image
processor with a WordPiece tokenizer.
"""

from __future__ import annotations

import copy
import os

import torch
from torch import nn
from transformers import BertConfig, BertModel

from .processing import RetrievalProcessor
from .tokenizer_families import WORDPIECE


def build_bert(text_config: BertConfig, num_hidden_layers: int | None = None) -> BertModel:
    """A `BertModel` without pooler (no method uses it) from a copy of `text_config`."""
    config = copy.deepcopy(text_config)
    if num_hidden_layers is not None:
        config.num_hidden_layers = num_hidden_layers
    return BertModel(config, add_pooling_layer=False)


def load_bert_layers(
    source: str | os.PathLike,
    embeddings_and_layers: BertModel,
    extra_layers: nn.ModuleList | None = None,
) -> None:
    """Copy a pretrained BERT (local dir or Hub id) into a text tower and optional extra layers.

    `embeddings_and_layers` receives the embeddings and the first `n` encoder layers, where `n` is
    its own depth; `extra_layers` (e.g. CMPAGL's fusion layers, named like `BertLayer`) receive the
    next layers' self-attention and feed-forward weights, leaving their own extra sub-modules
    (cross-attention) as initialised. Every tensor of the target is checked: a missing layer or a
    shape mismatch raises `ValueError` naming the keys.
    """
    pretrained = BertModel.from_pretrained(os.fspath(source), add_pooling_layer=False)
    state = pretrained.state_dict()
    text_depth = len(embeddings_and_layers.encoder.layer)
    available = pretrained.config.num_hidden_layers
    needed = text_depth + (len(extra_layers) if extra_layers is not None else 0)
    if available < needed:
        raise ValueError(f"pretrained BERT {os.fspath(source)!r} has {available} layers; the towers need {needed}")

    _copy_strict(
        embeddings_and_layers,
        {k: v for k, v in state.items() if not k.startswith("encoder.") or int(k.split(".")[2]) < text_depth},
        source,
    )
    if extra_layers is None:
        return
    for offset, layer in enumerate(extra_layers):
        prefix = f"encoder.layer.{text_depth + offset}."
        layer_state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        own = layer.state_dict()
        missing = sorted(k for k in layer_state if k not in own)
        if missing:
            raise ValueError(
                f"{type(layer).__name__} has no tensors for pretrained keys {missing[:5]} of {os.fspath(source)!r}"
            )
        _check_shapes(own, layer_state, source)
        layer.load_state_dict(layer_state, strict=False)


def _check_shapes(own: dict[str, torch.Tensor], incoming: dict[str, torch.Tensor], source) -> None:
    mismatch = sorted(k for k in incoming if k in own and own[k].shape != incoming[k].shape)
    if mismatch:
        raise ValueError(
            f"pretrained BERT {os.fspath(source)!r} does not fit the text tower: shape mismatch for {mismatch[:5]} "
            f"(e.g. {mismatch[0]}: checkpoint {tuple(incoming[mismatch[0]].shape)} "
            f"vs model {tuple(own[mismatch[0]].shape)})"
        )


def _copy_strict(target: nn.Module, state: dict[str, torch.Tensor], source) -> None:
    own = target.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(
            f"pretrained BERT {os.fspath(source)!r} does not match the "
            f"text tower: missing={missing[:5]} unexpected={unexpected[:5]}"
        )
    _check_shapes(own, state, source)
    target.load_state_dict(state, strict=True)


class BertRetrievalProcessor(RetrievalProcessor):
    """RS image processor + BERT WordPiece tokenizer, padding every caption to the config's fixed
    length `max_text_len` (saved with the processor as `max_text_length`)."""

    tokenizer_family = WORDPIECE

    def __init__(self, image_processor=None, tokenizer=None, max_text_length: int = 32, **kwargs):
        self.max_text_length = int(max_text_length)
        super().__init__(image_processor, tokenizer, **kwargs)

    @classmethod
    def config_arguments(cls, config) -> dict:
        return {"max_text_length": config.max_text_len}
