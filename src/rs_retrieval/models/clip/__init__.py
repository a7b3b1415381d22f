"""CLIP-family models (RemoteCLIP, GeoRSCLIP, SkyCLIP, any `CLIPModel`/`SiglipModel`) as retrieval methods.

They are registered as methods but not with the Auto classes (their folders are plain
transformers checkpoints); `rs_retrieval.models.load_retrieval_model` / `load_retrieval_processor`
load them with the retrieval contract.
"""

from transformers import CLIPConfig, SiglipConfig

from ..records import Paper
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
    title="CLIP family (RemoteCLIP, GeoRSCLIP, SkyCLIP as plain transformers CLIPModel checkpoints)",
    paper=Paper(
        'A. Radford et al., "Learning Transferable Visual Models From Natural Language Supervision", ICML 2021, '
        "arXiv:2103.00020"
    ),
    summary="Dual encoder (ViT or ResNet image tower, Transformer text tower) trained with a contrastive loss; the "
    "remote-sensing releases are CLIP checkpoints trained further on remote-sensing captions. Zero-shot "
    "classification uses transformers' own pipeline.",
)
register_method(
    SiglipConfig,
    SiglipRetrievalModel,
    DualEncoderProcessor,
    auto_classes=False,
    title="SigLIP (plain transformers SiglipModel checkpoints)",
    paper=Paper('X. Zhai et al., "Sigmoid Loss for Language Image Pre-Training", ICCV 2023, arXiv:2303.15343'),
    summary="Dual encoder like CLIP, trained with a pairwise sigmoid loss instead of the softmax contrastive loss.",
)

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
