"""Model, CLIP and dataset cards (README.md with Hub YAML metadata) filled from measured data.

One job per module: `runs` reads a run folder's records, `sections` holds what every card shares,
`model` writes the cards of the package's methods from their registry records, `clip` those of
CLIP-family checkpoints, `dataset` those of Parquet exports. Publishing (`rs_retrieval.hub`),
conversion (`rs_retrieval.convert`) and training runs all write cards through here. The public
names below are imported on first use.
"""

from .._lazy import lazy_exports

_EXPORTS = {
    ".runs": ["CardError", "metric_splits", "resolve_run"],
    ".model": ["render_model_card", "write_model_card"],
    ".clip": ["render_clip_card"],
    ".dataset": ["parquet_splits", "render_dataset_card", "write_dataset_card"],
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(name for names in _EXPORTS.values() for name in names)
