"""AMFMN (Yuan et al., TGRS 2021/22); importing this package registers the method."""

from ..records import Paper, bibtex_entry
from ..registry import register_method
from .configuration_amfmn import AMFMNConfig
from .modeling_amfmn import AMFMNModel
from .processing_amfmn import AMFMNProcessor
from .reported_results import REPORTED_RESULTS

register_method(
    AMFMNConfig,
    AMFMNModel,
    AMFMNProcessor,
    converter="rs_retrieval.convert.amfmn_galr:convert_amfmn_galr",
    default_recipe="amfmn_synth",
    title="AMFMN (Asymmetric Multimodal Feature Matching Network)",
    paper=Paper(
        'Z. Yuan et al., "Exploring a Fine-Grained Multiscale Method for Cross-Modal Remote Sensing Image Retrieval", '
        "IEEE TGRS, vol. 60, 2022, doi:10.1109/TGRS.2021.3078451, arXiv:2204.09868",
        bibtex_entry(
            "yuan2022amfmn",
            author="Yuan, Z. and others",
            title="Exploring a Fine-Grained Multiscale Method for Cross-Modal Remote Sensing Image Retrieval",
            journal="IEEE Transactions on Geoscience and Remote Sensing",
            volume="60",
            year="2022",
            doi="10.1109/TGRS.2021.3078451",
            eprint="2204.09868",
            archivePrefix="arXiv",
        ),
        code="xiaoyuan1996/AMFMN (no LICENSE file; the README shows an MIT badge)",
    ),
    summary="ResNet-18 image encoder with multiscale visual self-attention and a GRU text encoder; the image features "
    "gate the text features, so the image-text score depends on the pair.",
    zero_shot=True,
    reported_results=REPORTED_RESULTS,
)

__all__ = ["AMFMNConfig", "AMFMNModel", "AMFMNProcessor"]
