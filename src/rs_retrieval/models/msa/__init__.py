"""MSA (Yang et al., TGRS 2024); importing this package registers the method."""

from ..records import Paper, bibtex_entry
from ..registry import register_method
from .configuration_msa import MSAConfig
from .modeling_msa import MSCMAT, MSAModel, csmmc_loss, msa_triplet_loss, mscma_loss
from .processing_msa import MSAProcessor
from .reported_results import REPORTED_NOTE, REPORTED_RESULTS

register_method(
    MSAConfig,
    MSAModel,
    MSAProcessor,
    converter="rs_retrieval.convert.msa:convert_msa",
    default_recipe="msa_synth",
    title="MSA (Multi-Scale Alignment)",
    paper=Paper(
        'R. Yang et al., "Transcending Fusion: A Multi-Scale Alignment Method for Remote Sensing Image-Text '
        'Retrieval", IEEE TGRS, 2024, arXiv:2405.18959',
        bibtex_entry(
            "yang2024msa",
            author="Yang, R. and others",
            title="Transcending Fusion: A Multi-Scale Alignment Method for Remote Sensing Image-Text Retrieval",
            journal="IEEE Transactions on Geoscience and Remote Sensing",
            year="2024",
            eprint="2405.18959",
            archivePrefix="arXiv",
        ),
        code="yr666666/MSA (Apache-2.0)",
    ),
    summary="ResNet-50 + BERT dual encoder trained with multi-scale alignment losses; the cross-modal attention head is "
    "used in training only, so retrieval is a plain dot product.",
    zero_shot=True,
    reported_results=REPORTED_RESULTS,
    reported_note=REPORTED_NOTE,
)

__all__ = ["MSAConfig", "MSAModel", "MSAProcessor", "MSCMAT", "msa_triplet_loss", "mscma_loss", "csmmc_loss"]
