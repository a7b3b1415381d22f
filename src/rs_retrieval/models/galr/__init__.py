"""GaLR (Yuan et al., TGRS 2022); importing this package registers the method."""

from ..registry import register_method
from .configuration_galr import GaLRConfig
from .modeling_galr import GaLRModel
from .processing_galr import (
    GaLRProcessor,
    load_local_features_file,
    local_feature_key,
    read_official_local_features,
    save_local_features,
)

register_method(
    GaLRConfig, GaLRModel, GaLRProcessor,
    converter="rs_retrieval.convert.amfmn_galr:convert_amfmn_galr", default_recipe="galr_synth",
)

__all__ = [
    "GaLRConfig",
    "GaLRModel",
    "GaLRProcessor",
    "load_local_features_file",
    "local_feature_key",
    "read_official_local_features",
    "save_local_features",
]
