"""MSA (Yang et al., TGRS 2024): registers `msa` with AutoConfig/AutoModel/AutoImageProcessor/AutoProcessor."""

from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoProcessor

from ..common.processing import RSImageProcessor
from .configuration_msa import MSAConfig
from .modeling_msa import MSCMAT, MSAModel, csmmc_loss, msa_triplet_loss, mscma_loss
from .processing_msa import MSAProcessor

AutoConfig.register(MSAConfig.model_type, MSAConfig)
AutoModel.register(MSAConfig, MSAModel)
AutoImageProcessor.register(MSAConfig, image_processor_classes={"pil": RSImageProcessor})
AutoProcessor.register(MSAConfig, MSAProcessor)

__all__ = ["MSAConfig", "MSAModel", "MSAProcessor", "MSCMAT", "msa_triplet_loss", "mscma_loss", "csmmc_loss"]
