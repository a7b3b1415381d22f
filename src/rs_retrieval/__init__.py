"""rs_retrieval: remote-sensing image-text retrieval models and datasets for the Hugging Face stack.

Importing the package registers every method with `AutoConfig`, `AutoModel` and `AutoProcessor`
(except under the `rs-retrieval` command line, whose commands import what they use, so that
`--help` and argument errors answer at once instead of after loading torch and transformers).
"""

import os
import sys

__version__ = "0.1.0"

__all__ = ["dataset_report", "export_parquet", "flatten_captions", "load_dataset", "models", "split_info"]


def _started_as_cli() -> bool:
    """True in `rs-retrieval ...` and `python -m rs_retrieval.cli ...`."""
    argv = list(getattr(sys, "orig_argv", []))
    run_module = argv[argv.index("-m") + 1] if "-m" in argv[:-1] else None
    return os.path.basename(sys.argv[0]) == "rs-retrieval" or run_module == "rs_retrieval.cli"


if not _started_as_cli():
    from . import models  # noqa: E402, F401  (registers AMFMN, GaLR, MSA, CMPAGL with the Auto classes)
    from .data import dataset_report, export_parquet, flatten_captions, load_dataset, split_info  # noqa: E402, F401
