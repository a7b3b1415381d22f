"""Datasets of rs_retrieval: RSITMD, RSICD, UCM-Captions, Sydney-Captions and the synthetic rs_synth.

`load_dataset` gives a `datasets.DatasetDict` with one row per image (five captions each);
`flatten_captions` gives the one-row-per-caption training view; `dataset_report` the data-quality
statistics; `export_parquet` the Hub layout. `datasets` itself is imported only when used.
"""

from .dataset_loading import DATASETS, LOCAL_NAMES, load_dataset, train_val_split
from .errors import (
    CaptionCountError,
    CorruptImageError,
    DatasetFormatError,
    DatasetNotFoundError,
    MissingFieldError,
    MissingImageError,
    UnknownSplitError,
)
from .export import export_parquet, save_arrow
from .report import dataset_report, format_report
from .schema import CAPTIONS_PER_IMAGE, UNKNOWN_SCENE, scene_from_filename, split_info
from .synth import SYNTH_SCENES, SynthConfig, generate_rs_synth, write_rs_synth
from .views import flatten_captions

__all__ = [
    "CAPTIONS_PER_IMAGE",
    "DATASETS",
    "LOCAL_NAMES",
    "SYNTH_SCENES",
    "UNKNOWN_SCENE",
    "CaptionCountError",
    "CorruptImageError",
    "DatasetFormatError",
    "DatasetNotFoundError",
    "MissingFieldError",
    "MissingImageError",
    "UnknownSplitError",
    "SynthConfig",
    "dataset_report",
    "export_parquet",
    "flatten_captions",
    "format_report",
    "generate_rs_synth",
    "load_dataset",
    "save_arrow",
    "scene_from_filename",
    "split_info",
    "train_val_split",
    "write_rs_synth",
]
