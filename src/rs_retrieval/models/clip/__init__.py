"""CLIP-family models (RemoteCLIP, GeoRSCLIP, SkyCLIP, any `CLIPModel`/`SiglipModel`) as retrieval methods.

They are not registered with the Auto classes (their folders are plain transformers checkpoints);
`rs_retrieval.models.load_retrieval_model` / `load_retrieval_processor` load them with the
retrieval contract, and `DUAL_ENCODER_CLASSES` names them for recipes and a method registry.
"""

from .modeling_clip import DUAL_ENCODER_CLASSES, CLIPRetrievalModel, SiglipRetrievalModel, as_retrieval_model
from .processing_clip import DualEncoderProcessor, as_retrieval_processor, build_clip_processor, build_clip_tokenizer

__all__ = [
    "DUAL_ENCODER_CLASSES",
    "CLIPRetrievalModel",
    "SiglipRetrievalModel",
    "as_retrieval_model",
    "DualEncoderProcessor",
    "as_retrieval_processor",
    "build_clip_processor",
    "build_clip_tokenizer",
]
