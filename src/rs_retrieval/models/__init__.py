"""Retrieval methods; importing a method sub-package registers it with the transformers Auto classes."""

from . import amfmn, cmpagl, galr, msa  # noqa: F401
from ..pipelines import register_zero_shot

register_zero_shot(amfmn.AMFMNModel, msa.MSAModel, cmpagl.CmpaglModel)
