"""AMFMN (Yuan et al., TGRS 2021/22); importing this package registers the method."""

from ..registry import register_method
from .configuration_amfmn import AMFMNConfig
from .modeling_amfmn import AMFMNModel
from .processing_amfmn import AMFMNProcessor

register_method(
    AMFMNConfig, AMFMNModel, AMFMNProcessor,
    converter="rs_retrieval.convert.amfmn_galr:convert_amfmn_galr", default_recipe="amfmn_synth",
)

__all__ = ["AMFMNConfig", "AMFMNModel", "AMFMNProcessor"]
