"""Retrieval methods; importing a method sub-package registers it with the transformers Auto classes."""

from . import amfmn, cmpagl, galr, msa  # noqa: F401
