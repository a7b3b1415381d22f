"""GaLR (Yuan et al., TGRS 2022); importing this package registers the method."""

from ..records import Paper, bibtex_entry
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
from .reported_results import REPORTED_RESULTS

register_method(
    GaLRConfig,
    GaLRModel,
    GaLRProcessor,
    converter="rs_retrieval.convert.amfmn_galr:convert_amfmn_galr",
    default_recipe="galr_synth",
    title="GaLR (Global and Local information based Retrieval)",
    paper=Paper(
        'Z. Yuan et al., "Remote Sensing Cross-Modal Text-Image Retrieval Based on Global and Local Information", '
        "IEEE TGRS, 2022, doi:10.1109/TGRS.2022.3163706, arXiv:2204.09860",
        bibtex_entry(
            "yuan2022galr",
            author="Yuan, Z. and others",
            title="Remote Sensing Cross-Modal Text-Image Retrieval Based on Global and Local Information",
            journal="IEEE Transactions on Geoscience and Remote Sensing",
            volume="60",
            year="2022",
            doi="10.1109/TGRS.2022.3163706",
            eprint="2204.09860",
            archivePrefix="arXiv",
        ),
        code="xiaoyuan1996/GaLR (MIT)",
    ),
    summary="AMFMN-style global image features fused with a graph over local object features (MIDF fusion).",
    reported_results=REPORTED_RESULTS,
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
