"""rs_retrieval: remote-sensing image-text retrieval models and datasets for the Hugging Face stack.

Importing the package registers every method with the registry (`list_methods`) and with
`AutoConfig`, `AutoModel`, `AutoImageProcessor`, `AutoTokenizer` and `AutoProcessor`. The
training, evaluation and search entry points are imported on first use.
"""

import importlib

__version__ = "0.1.0"

from .data import dataset_report, export_parquet, flatten_captions, load_dataset, split_info  # noqa: E402
from .models import get_method, list_methods, register_method  # noqa: E402  (registers the methods)

#: Public names imported on first access: name -> module.
_LAZY = {
    "retrieval_metrics": "rs_retrieval.evaluation.metrics",
    "evaluate_retrieval": "rs_retrieval.evaluation.engine",
    "Trainer": "rs_retrieval.training.trainer",
    "train": "rs_retrieval.training.trainer",
    "load_recipe": "rs_retrieval.training.recipe",
    "search_images": "rs_retrieval.search.engine",
    "rank_captions": "rs_retrieval.search.engine",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rs_retrieval' has no attribute {name!r}")


__all__ = [
    "Trainer",
    "dataset_report",
    "evaluate_retrieval",
    "export_parquet",
    "flatten_captions",
    "get_method",
    "list_methods",
    "load_dataset",
    "load_recipe",
    "rank_captions",
    "register_method",
    "retrieval_metrics",
    "search_images",
    "split_info",
    "train",
]
