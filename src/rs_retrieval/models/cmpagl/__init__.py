"""CMPAGL (Sun et al., TGRS 2024), a RECONSTRUCTION (no public code); importing this package
registers the method."""

from ..records import Paper, bibtex_entry
from ..registry import register_method
from .configuration_cmpagl import CMPAGLConfig
from .gswin import GlobalLocalCrossAttention, GswinVisionEncoder, merge_windows, partition_windows
from .modeling_cmpagl import CMPAGLModel, FusionEncoder, improved_triplet_loss, itc_loss, sample_itm_negatives
from .processing_cmpagl import CMPAGLProcessor

register_method(
    CMPAGLConfig,
    CMPAGLModel,
    CMPAGLProcessor,
    default_recipe="cmpagl_synth",
    legacy_processor_names=("CmpaglProcessor",),
    title="CMPAGL (Cross-Modal Pre-Aligned method with Global and Local information)",
    paper=Paper(
        'Z. Sun, M. Zhao, G. Liu, A. Kaup, "Cross-Modal Pre-Aligned Method with Global and Local Information for '
        'Remote-Sensing Image and Text Retrieval", IEEE TGRS, vol. 62, 2024, doi:10.1109/TGRS.2024.3489224, '
        "arXiv:2411.14704",
        bibtex_entry(
            "sun2024cmpagl",
            author="Sun, Z. and Zhao, M. and Liu, G. and Kaup, A.",
            title=(
                "Cross-Modal Pre-Aligned Method with Global and Local "
                "Information for Remote-Sensing Image and Text Retrieval"
            ),
            journal="IEEE Transactions on Geoscience and Remote Sensing",
            volume="62",
            pages="4709118",
            year="2024",
            doi="10.1109/TGRS.2024.3489224",
            eprint="2411.14704",
            archivePrefix="arXiv",
        ),
        code="ZbaoSun/CMPAGL (README only: no code released)",
    ),
    summary="Swin-style image encoder with global-local window attention, BERT text encoder and an ALBEF-style fusion "
    "encoder for re-ranking.",
    reconstructed=True,
    reconstruction_note="No official code or weights exist: the model is our reading of the paper's abstract and of "
    "related public designs, with every uncertain choice exposed as a config field.",
    zero_shot=True,
    reported_note="No per-dataset numbers are known: the CMPAGL abstract (arXiv 2411.14704) claims improvements of up "
    "to 4.65% in R@1 and 2.28% in mR over the state of the art on four datasets including RSICD and RSITMD. "
    "No code or weights have been released.",
)

__all__ = [
    "CMPAGLConfig",
    "CMPAGLModel",
    "CMPAGLProcessor",
    "FusionEncoder",
    "GlobalLocalCrossAttention",
    "GswinVisionEncoder",
    "improved_triplet_loss",
    "itc_loss",
    "merge_windows",
    "partition_windows",
    "sample_itm_negatives",
]
