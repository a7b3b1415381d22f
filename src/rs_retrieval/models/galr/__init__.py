"""GaLR: importing this package registers it with the transformers Auto classes."""

from ..amfmn import register_family
from .configuration_galr import GaLRConfig
from .modeling_galr import GaLRModel
from .processing_galr import (
    GaLRProcessor,
    load_local_features_file,
    local_feature_key,
    read_official_local_features,
    save_local_features,
)

register_family(GaLRConfig, GaLRModel, GaLRProcessor)

__all__ = [
    "GaLRConfig",
    "GaLRModel",
    "GaLRProcessor",
    "load_local_features_file",
    "local_feature_key",
    "read_official_local_features",
    "save_local_features",
]
