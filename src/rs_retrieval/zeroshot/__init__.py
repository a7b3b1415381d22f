"""Zero-shot scene classification: packaged class lists and prompt templates, and a classifier
that works with every retrieval model of the package and with CLIP-family models."""

from .class_sets import ClassSet, ClassSetError, list_class_sets, list_template_sets, load_class_set, load_templates
from .classifier import ZeroShotClassifier, combine_templates, top_k_from_proba

__all__ = [
    "ClassSet",
    "ClassSetError",
    "ZeroShotClassifier",
    "combine_templates",
    "list_class_sets",
    "list_template_sets",
    "load_class_set",
    "load_templates",
    "top_k_from_proba",
]
