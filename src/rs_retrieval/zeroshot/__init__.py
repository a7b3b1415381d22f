"""Zero-shot scene classification: packaged class lists and prompt templates, and a classifier
that works with every retrieval model of the package and with CLIP-family models.
(torch is imported only when the classifier is used, so the CLI's --help stays fast.)"""

from .._lazy import lazy_exports

_EXPORTS = {
    ".class_sets": [
        "ClassSet",
        "ClassSetError",
        "list_class_sets",
        "list_template_sets",
        "load_class_set",
        "load_templates",
    ],
    ".classifier": ["ZeroShotClassifier", "combine_templates", "top_k_from_proba"],
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

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
