"""Retrieval methods. Importing this package registers the package's methods (`registry`).

CLIP-family folders stay plain transformers checkpoints (registered without the Auto classes);
`load_retrieval_model` / `load_retrieval_processor` load them, and every registered method, with
the retrieval contract.
"""

from . import amfmn, clip, cmpagl, galr, msa  # noqa: F401  (each registers itself)
from .model_loading import load_retrieval_model, load_retrieval_processor
from .records import Paper, ReportedResult
from .registry import Method, UnknownMethodError, find_method, get_method, list_methods, register_method

__all__ = [
    "Method",
    "Paper",
    "ReportedResult",
    "UnknownMethodError",
    "find_method",
    "get_method",
    "list_methods",
    "load_retrieval_model",
    "load_retrieval_processor",
    "register_method",
]
