"""Retrieval methods. Importing this package registers the package's methods (`registry`).

CLIP-family folders stay plain transformers checkpoints (registered without the Auto classes);
`load_retrieval_model` / `load_retrieval_processor` load them, and every registered method, with
the retrieval contract.
"""

from . import amfmn, clip, cmpagl, galr, msa  # noqa: F401  (each registers itself)
from ..pipelines import register_zero_shot
from .loading import load_retrieval_model, load_retrieval_processor
from .registry import Method, UnknownMethodError, get_method, list_methods, register_method

register_zero_shot(amfmn.AMFMNModel, msa.MSAModel, cmpagl.CMPAGLModel)

__all__ = [
    "Method", "UnknownMethodError", "get_method", "list_methods", "load_retrieval_model", "load_retrieval_processor", "register_method",
]
