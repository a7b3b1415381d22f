"""AMFMN: importing this package registers it with the transformers Auto classes."""

from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoProcessor, AutoTokenizer

from ..common.processing import RSImageProcessor
from ..common.tokenization_word import RSWordTokenizer
from .configuration_amfmn import AMFMNConfig, AMFMNFamilyConfig
from .modeling_amfmn import AMFMNFamilyPreTrainedModel, AMFMNModel
from .processing_amfmn import AMFMNFamilyProcessor, AMFMNProcessor


def register_family(config_class, model_class, processor_class) -> None:
    """Register one AMFMN-family method (config, model, image processor, tokenizer, processor)."""
    AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    AutoModel.register(config_class, model_class, exist_ok=True)
    AutoImageProcessor.register(config_class, image_processor_classes={"pil": RSImageProcessor}, exist_ok=True)
    AutoTokenizer.register(config_class, tokenizer_class=RSWordTokenizer, exist_ok=True)
    AutoProcessor.register(config_class, processor_class, exist_ok=True)


register_family(AMFMNConfig, AMFMNModel, AMFMNProcessor)

__all__ = [
    "AMFMNConfig",
    "AMFMNFamilyConfig",
    "AMFMNFamilyPreTrainedModel",
    "AMFMNFamilyProcessor",
    "AMFMNModel",
    "AMFMNProcessor",
]
