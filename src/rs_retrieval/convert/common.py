"""Strict helpers for converting official PyTorch checkpoints into our `save_pretrained` folders.

A conversion is: read the state_dict (`load_state_dict_file`), rename every key with an explicit
rule list (`rename_keys`: a key no rule covers is an error, a rule may drop a key on purpose),
compare with the target model (`check_state_dict`: missing, unexpected and shape-mismatched keys
are all errors), load, and write model + processor into the output folder atomically
(`save_pretrained_atomic`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence

import torch

from ..errors import InputNotFoundError, OutputExistsError
from ..fileio import atomic_directory
from ..models.common.weights import CheckpointConversionError, check_state_dict, load_converted, preview_keys  # noqa: F401  (converters' API)

#: (pattern, replacement): `re.fullmatch(pattern, key)`; replacement is a template for `Match.expand`,
#: a callable(match) -> new key (or None to drop it), or None to drop the key.
RenameRule = tuple[str, str | Callable[[re.Match], str | None] | None]


def load_state_dict_file(path: str | os.PathLike, allow_pickle: bool = False) -> tuple[dict[str, torch.Tensor], dict]:
    """(state_dict, metadata) from a `.pth`/`.pth.tar` file: either a bare state_dict or the
    reference training wrapper `{"model": state_dict, "epoch", ...}` (metadata = the other entries).

    Files are read with `torch.load(weights_only=True)`; a wrapper holding other Python objects
    needs `allow_pickle=True` (arbitrary code can run: only for files you trust).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputNotFoundError(f"checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except Exception as error:  # torch raises UnpicklingError/RuntimeError variants
        if allow_pickle:
            raise CheckpointConversionError(f"{path}: cannot read checkpoint: {error}") from error
        raise CheckpointConversionError(
            f"{path}: cannot be read with weights_only=True ({type(error).__name__}: {str(error).splitlines()[0]}); "
            "if you trust the file, pass allow_pickle=True (--allow-pickle)"
        ) from error
    if isinstance(data, dict) and "model" in data and isinstance(data["model"], dict):
        state, metadata = data["model"], {k: v for k, v in data.items() if k != "model"}
    else:
        state, metadata = data, {}
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointConversionError(
            f"{path}: expected a state_dict (name -> tensor) or a dict with one under 'model'"
        )
    return dict(state), metadata


def tensor_shape(state: dict[str, torch.Tensor], key: str, source: str = "checkpoint") -> tuple[int, ...]:
    """Shape of `state[key]`; converters read the architecture from these, so a missing key is an error."""
    if key not in state:
        raise CheckpointConversionError(f"{source}: missing key {key!r}")
    return tuple(state[key].shape)


def strip_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Remove `prefix` (e.g. "module." of DataParallel) when every key has it; otherwise unchanged."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return state


def rename_keys(
    state: dict[str, torch.Tensor], rules: Sequence[RenameRule], source: str = "checkpoint"
) -> dict[str, torch.Tensor]:
    """Apply the first rule whose pattern fully matches each key; unmatched keys are an error."""
    compiled = [(re.compile(pattern), replacement) for pattern, replacement in rules]
    renamed, unmatched = {}, []
    for key, value in state.items():
        for pattern, replacement in compiled:
            match = pattern.fullmatch(key)
            if match is None:
                continue
            new_key = (
                replacement(match)
                if callable(replacement)
                else None
                if replacement is None
                else match.expand(replacement)
            )
            if new_key is not None:
                if new_key in renamed:
                    raise CheckpointConversionError(f"{source}: two keys map to {new_key!r} (second: {key!r})")
                renamed[new_key] = value
            break
        else:
            unmatched.append(key)
    if unmatched:
        raise CheckpointConversionError(
            f"{source}: {len(unmatched)} unexpected key(s) no conversion rule covers: {preview_keys(unmatched)}"
        )
    return renamed


def torchvision_resnet_key(key: str) -> str | None:
    """torchvision ResNet key -> transformers `ResNetModel` key (None for the classifier `fc.*`).

    Works for basic (ResNet-18/34: conv1..2) and bottleneck (ResNet-50+: conv1..3) blocks.
    """
    if key.startswith("fc."):
        return None
    stem = re.fullmatch(r"(conv1|bn1)\.(.+)", key)
    if stem:
        kind = "convolution" if stem.group(1) == "conv1" else "normalization"
        return f"embedder.embedder.{kind}.{stem.group(2)}"
    block = re.fullmatch(r"layer(\d)\.(\d+)\.(conv|bn)(\d)\.(.+)", key)
    if block:
        stage, index, kind, k, rest = block.groups()
        kind = "convolution" if kind == "conv" else "normalization"
        return f"encoder.stages.{int(stage) - 1}.layers.{index}.layer.{int(k) - 1}.{kind}.{rest}"
    shortcut = re.fullmatch(r"layer(\d)\.(\d+)\.downsample\.([01])\.(.+)", key)
    if shortcut:
        stage, index, which, rest = shortcut.groups()
        kind = "convolution" if which == "0" else "normalization"
        return f"encoder.stages.{int(stage) - 1}.layers.{index}.shortcut.{kind}.{rest}"
    raise CheckpointConversionError(f"not a torchvision ResNet key: {key!r}")


def resnet_rule(official_prefix: str, our_prefix: str) -> RenameRule:
    """A rename rule for a torchvision ResNet under `official_prefix` (classifier dropped)."""

    def rename(match: re.Match) -> str | None:
        inner = torchvision_resnet_key(match.group(1))
        return None if inner is None else our_prefix + inner

    return (re.escape(official_prefix) + r"(.+)", rename)


def save_pretrained_atomic(out_dir: str | os.PathLike, *savables, overwrite: bool = False) -> str:
    """`save_pretrained` every object into a temporary sibling folder, then move it to `out_dir`.

    An existing non-empty `out_dir` is an error unless `overwrite`; it is then replaced as a whole.
    """
    out_dir = os.path.abspath(os.fspath(out_dir))
    if os.path.exists(out_dir) and (not os.path.isdir(out_dir) or os.listdir(out_dir)) and not overwrite:
        raise OutputExistsError(
            f"output folder exists and is not empty: {out_dir} (pass overwrite=True / --overwrite)"
        )

    def fill(folder) -> None:
        for obj in savables:
            obj.save_pretrained(folder)

    return str(atomic_directory(out_dir, fill, overwrite=True))
