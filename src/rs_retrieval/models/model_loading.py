"""Load any saved retrieval model with the package's contract: our methods (registered with the
Auto classes) and CLIP-family folders (plain transformers `CLIPModel`/`SiglipModel` checkpoints).

A local folder is checked first (`check_model_folder`), so each way a copied or downloaded folder
goes wrong is one line naming the file and the fix instead of a deep transformers traceback.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import RSRetrievalError
from .clip import DUAL_ENCODER_CLASSES, as_retrieval_model, as_retrieval_processor

#: Weight files transformers looks for in a folder, in its order of preference.
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)

#: Files a saved processor folder holds at least one of.
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json")


class ModelFolderError(RSRetrievalError, OSError):
    """A local model folder that cannot be loaded as it is; the message names the file and the fix."""


def check_model_folder(folder: str | os.PathLike, trust_remote_code: bool = False) -> None:
    """Raise `ModelFolderError` for a folder without (valid) config.json, of a model type no one
    registered, without weights, or with a cut-off safetensors file; a training run folder is
    pointed at its `model/`."""
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        _refuse_run_folder(folder)
        raise ModelFolderError(f"{folder} is not a model folder: it has no config.json")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        reason = "it is empty" if not config_path.read_bytes().strip() else f"{err}"
        raise ModelFolderError(
            f"{config_path} is not valid JSON ({reason}); restore it from where the model came from"
        ) from None
    if not isinstance(config, dict):
        raise ModelFolderError(f"{config_path} holds a JSON {type(config).__name__}, not a model configuration object")
    _check_model_type(config, config_path, trust_remote_code)
    _check_weights(folder)


def _refuse_run_folder(folder: Path) -> None:
    """A training run folder (its model in `model/`) passed where the model is meant."""
    if (folder / "model" / "config.json").is_file():
        raise ModelFolderError(
            f"{folder} is a training run folder, not a model folder: did you mean {folder / 'model'}?"
        )


def _check_model_type(config: dict, config_path: Path, trust_remote_code: bool) -> None:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    from .registry import list_methods

    model_type = config.get("model_type")
    if model_type in CONFIG_MAPPING or ("auto_map" in config and trust_remote_code):
        return
    if "auto_map" in config:
        raise ModelFolderError(
            f"{config_path}: model_type {model_type!r} comes with its own code (auto_map); "
            "pass --trust-remote-code (trust_remote_code=True) if you trust the folder"
        )
    raise ModelFolderError(
        f"{config_path}: model_type {model_type!r} is neither a "
        f"retrieval method of rs_retrieval ({', '.join(list_methods())}) "
        "nor a transformers model: the config is damaged, or the method is registered by a package not imported"
    )


def _check_weights(folder: Path) -> None:
    present = [name for name in WEIGHT_FILES if (folder / name).is_file()]
    if not present:
        raise ModelFolderError(
            f"{folder} has config.json but no weights ({WEIGHT_FILES[0]}): copy or download the folder again"
        )
    if present[0] == "model.safetensors":
        check_safetensors_file(folder / "model.safetensors")
    elif present[0] == "model.safetensors.index.json":
        try:
            shards = sorted(set(json.loads((folder / present[0]).read_text(encoding="utf-8"))["weight_map"].values()))
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
            raise ModelFolderError(f"{folder / present[0]} is not a safetensors shard index ({err})") from None
        for shard in shards:
            if not (folder / shard).is_file():
                raise ModelFolderError(
                    f"{folder / shard} is missing (listed in {present[0]}): copy or download the folder again"
                )
            check_safetensors_file(folder / shard)


def check_safetensors_file(path: Path) -> None:
    """Refuse a safetensors file whose size is not the one its header describes (cut-off copy or download)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        header_size = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
        try:
            if not 0 < header_size <= size - 8:
                raise ValueError("header size out of range")
            header = json.loads(handle.read(header_size))
            end = max((entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"), default=0)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            raise ModelFolderError(
                f"{path} is damaged: no readable safetensors header ({size:,} bytes); copy or download it again"
            ) from None
    expected = 8 + header_size + end
    if size != expected:
        raise ModelFolderError(
            f"{path} is incomplete or damaged: {size:,} bytes where its "
            f"header describes {expected:,}; copy or download it again"
        )


def load_retrieval_model(name_or_path: str | os.PathLike, trust_remote_code: bool = False, **kwargs):
    """A model that follows the retrieval contract (`models/base.py`) from a folder or Hub id."""
    from transformers import AutoConfig, AutoModel

    if Path(name_or_path).is_dir():
        check_model_folder(name_or_path, trust_remote_code)
    config = AutoConfig.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    dual_encoder = DUAL_ENCODER_CLASSES.get(config.model_type)
    if dual_encoder is not None:
        return dual_encoder.from_pretrained(name_or_path, config=config, **kwargs)
    return as_retrieval_model(
        AutoModel.from_pretrained(name_or_path, config=config, trust_remote_code=trust_remote_code, **kwargs)
    )


def load_retrieval_processor(name_or_path: str | os.PathLike, trust_remote_code: bool = False):
    """The matching processor with `image_inputs`/`text_inputs` (CLIP/SigLIP processors wrapped)."""
    from transformers import AutoProcessor

    folder = Path(name_or_path)
    if folder.is_dir() and not any((folder / name).is_file() for name in PROCESSOR_FILES):
        _refuse_run_folder(folder)
    return as_retrieval_processor(AutoProcessor.from_pretrained(name_or_path, trust_remote_code=trust_remote_code))
