"""CLIP-family models (RemoteCLIP, GeoRSCLIP, SkyCLIP, any `CLIPModel`/`SiglipModel`) as retrieval methods.

They are registered as methods but not with the Auto classes (their folders are plain
transformers checkpoints); `rs_retrieval.models.load_retrieval_model` / `load_retrieval_processor`
load them with the retrieval contract.
"""

from transformers import CLIPConfig, SiglipConfig

from ..registry import register_method
from .modeling_clip import DUAL_ENCODER_CLASSES, CLIPRetrievalModel, SiglipRetrievalModel, as_retrieval_model
from .processing_clip import DualEncoderProcessor, as_retrieval_processor, build_clip_processor, build_clip_tokenizer

register_method(
    CLIPConfig,
    CLIPRetrievalModel,
    DualEncoderProcessor,
    auto_classes=False,
    aliases=("openclip",),
    converter="rs_retrieval.convert.openclip:convert_openclip_command",
    default_recipe="clip_synth",
)
register_method(SiglipConfig, SiglipRetrievalModel, DualEncoderProcessor, auto_classes=False)

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
