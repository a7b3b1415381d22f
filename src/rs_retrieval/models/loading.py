"""Load any saved retrieval model with the package's contract: our methods (registered with the
Auto classes) and CLIP-family folders (plain transformers `CLIPModel`/`SiglipModel` checkpoints)."""

from __future__ import annotations

import os

from .clip import DUAL_ENCODER_CLASSES, as_retrieval_model, as_retrieval_processor


def load_retrieval_model(name_or_path: str | os.PathLike, trust_remote_code: bool = False, **kwargs):
    """A model that follows the retrieval contract (`models/base.py`) from a folder or Hub id."""
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    dual_encoder = DUAL_ENCODER_CLASSES.get(config.model_type)
    if dual_encoder is not None:
        return dual_encoder.from_pretrained(name_or_path, config=config, **kwargs)
    return as_retrieval_model(AutoModel.from_pretrained(name_or_path, config=config, trust_remote_code=trust_remote_code, **kwargs))


def load_retrieval_processor(name_or_path: str | os.PathLike, trust_remote_code: bool = False):
    """The matching processor with `image_inputs`/`text_inputs` (CLIP/SigLIP processors wrapped)."""
    from transformers import AutoProcessor

    return as_retrieval_processor(AutoProcessor.from_pretrained(name_or_path, trust_remote_code=trust_remote_code))
