"""Retrieval methods; importing a method sub-package registers it with the transformers Auto classes.

CLIP-family folders stay plain transformers checkpoints; `load_retrieval_model` /
`load_retrieval_processor` load them (and every registered method) with the retrieval contract.
"""

from . import amfmn, clip, cmpagl, galr, msa  # noqa: F401
from ..pipelines import register_zero_shot
from .loading import load_retrieval_model, load_retrieval_processor  # noqa: F401

register_zero_shot(amfmn.AMFMNModel, msa.MSAModel, cmpagl.CmpaglModel)
