"""MSA (Yang et al., TGRS 2024); importing this package registers the method."""

from ..registry import register_method
from .configuration_msa import MSAConfig
from .modeling_msa import MSCMAT, MSAModel, csmmc_loss, msa_triplet_loss, mscma_loss
from .processing_msa import MSAProcessor

register_method(MSAConfig, MSAModel, MSAProcessor, converter="rs_retrieval.convert.msa:convert_msa", default_recipe="msa_synth")

__all__ = ["MSAConfig", "MSAModel", "MSAProcessor", "MSCMAT", "msa_triplet_loss", "mscma_loss", "csmmc_loss"]
