"""rs_retrieval: remote-sensing image-text retrieval models and datasets for the Hugging Face stack.

Importing the package registers every method with the method registry (`list_methods`) and with
the transformers Auto classes (except under the `rs-retrieval` command line, whose commands import
what they use, so that `--help` and argument errors answer at once instead of after loading torch
and transformers). The public names below are imported on first use.
"""

import os
import sys

from ._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    ".data": ["dataset_report", "export_parquet", "flatten_captions", "load_dataset", "split_info"],
    ".models": ["get_method", "list_methods", "register_method"],
    ".pretrained": ["load_model_and_processor"],
    ".evaluation.metrics": ["retrieval_metrics"],
    ".evaluation.evaluator": ["evaluate_retrieval"],
    ".training.recipe": ["load_recipe"],
    ".training.trainer": ["Trainer", "train"],
    ".search.folder_search": ["rank_captions", "search_images"],
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(name for names in _EXPORTS.values() for name in names)


def _started_as_cli() -> bool:
    """True in `rs-retrieval ...` and `python -m rs_retrieval.cli ...`."""
    argv = list(getattr(sys, "orig_argv", []))
    run_module = argv[argv.index("-m") + 1] if "-m" in argv[:-1] else None
    return os.path.basename(sys.argv[0]) == "rs-retrieval" or run_module == "rs_retrieval.cli"


if not _started_as_cli():
    from . import models  # noqa: F401  (registers AMFMN, GaLR, MSA, CMPAGL)
