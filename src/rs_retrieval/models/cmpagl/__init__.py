"""CMPAGL (Sun et al., TGRS 2024), a RECONSTRUCTION (no public code); importing this package
registers the method."""

from ..registry import register_method
from .configuration_cmpagl import CMPAGLConfig
from .gswin import GlobalLocalCrossAttention, GswinVisionEncoder, merge_windows, partition_windows
from .modeling_cmpagl import CMPAGLModel, FusionEncoder, improved_triplet_loss, itc_loss, sample_itm_negatives
from .processing_cmpagl import CMPAGLProcessor

register_method(CMPAGLConfig, CMPAGLModel, CMPAGLProcessor, default_recipe="cmpagl_synth", legacy_processor_names=("CmpaglProcessor",))

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
