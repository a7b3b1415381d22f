"""Retrieval methods. Importing this package registers the package's methods (`registry`)."""

from . import amfmn, cmpagl, galr, msa  # noqa: F401  (each registers itself)
from .registry import Method, UnknownMethodError, get_method, list_methods, register_method

__all__ = ["Method", "UnknownMethodError", "get_method", "list_methods", "register_method"]
