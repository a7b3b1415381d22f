"""rs_retrieval: remote-sensing image-text retrieval models and datasets for the Hugging Face stack.

Importing the package registers every method with `AutoConfig`, `AutoModel` and `AutoProcessor`.
"""

__version__ = "0.1.0"

from . import models  # noqa: E402  (registers AMFMN, GaLR, MSA, CMPAGL with the Auto classes)
from .data import dataset_report, export_parquet, flatten_captions, load_dataset, split_info  # noqa: E402

__all__ = ["dataset_report", "export_parquet", "flatten_captions", "load_dataset", "models", "split_info"]
