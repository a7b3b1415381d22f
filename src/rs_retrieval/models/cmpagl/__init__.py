"""CMPAGL (Sun et al., TGRS 2024), a RECONSTRUCTION (no public code): registers `cmpagl` with
AutoConfig/AutoModel/AutoImageProcessor/AutoProcessor."""

from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoProcessor

from ..common.processing import RSImageProcessor
from .configuration_cmpagl import CmpaglConfig
from .gswin import GlobalLocalCrossAttention, GswinVisionEncoder, merge_windows, partition_windows
from .modeling_cmpagl import CmpaglModel, FusionEncoder, improved_triplet_loss, itc_loss, sample_itm_negatives
from .processing_cmpagl import CmpaglProcessor

AutoConfig.register(CmpaglConfig.model_type, CmpaglConfig)
AutoModel.register(CmpaglConfig, CmpaglModel)
AutoImageProcessor.register(CmpaglConfig, image_processor_classes={"pil": RSImageProcessor})
AutoProcessor.register(CmpaglConfig, CmpaglProcessor)

__all__ = [
    "CmpaglConfig",
    "CmpaglModel",
    "CmpaglProcessor",
    "FusionEncoder",
    "GlobalLocalCrossAttention",
    "GswinVisionEncoder",
    "improved_triplet_loss",
    "itc_loss",
    "merge_windows",
    "partition_windows",
    "sample_itm_negatives",
]
