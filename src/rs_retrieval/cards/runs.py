"""What a training run folder records, read the same way by the cards, the Hub Space and the app.

A run folder holds the saved model (`model/config.json`, or the folder itself is the model),
`metrics.json` (sections `test`, `validation`, ...), the test-split `test_metrics.json` and
`training_args.json` (the recipe). These readers check what they return: a metrics section holds
the six recalls and mR as finite numbers, or the error names the file or section.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..errors import RSRetrievalError

RECALL_KEYS = ("i2t_R@1", "i2t_R@5", "i2t_R@10", "t2i_R@1", "t2i_R@5", "t2i_R@10")
#: metrics.json sections, in the order a card shows them; only the first two enter `model-index`.
SPLIT_LABELS = {
    "test": "test",
    "validation": "validation (selected checkpoint)",
    "last_validation": "validation (last evaluation)",
}
#: The run's test-split evaluation; the card shows it and puts it into `model-index`.
TEST_METRICS_FILE = "test_metrics.json"


class CardError(RSRetrievalError, ValueError):
    """Card inputs are missing or malformed (the message names the file or field)."""


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CardError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise CardError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def resolve_run(path: str | Path) -> tuple[Path, Path | None]:
    """(model directory with config.json, run directory with metrics.json or None) for a run or model dir."""
    path = Path(path)
    if (path / "config.json").is_file():
        model_dir = path
    elif (path / "model" / "config.json").is_file():
        model_dir = path / "model"
    else:
        raise CardError(
            f"{path} holds no saved model: expected {path / 'config.json'} or {path / 'model' / 'config.json'}"
        )
    for candidate in (model_dir, model_dir.parent):
        if any((candidate / name).is_file() for name in ("metrics.json", TEST_METRICS_FILE, "training_args.json")):
            return model_dir, candidate
    return model_dir, None


def metric_splits(metrics: dict, flat_split: str = "test") -> dict[str, dict]:
    """`{split: metrics}` for every section of `metrics` that holds the six recalls and mR.

    Accepts a metrics.json dict (sections `test`, `validation`, ...) or one flat metrics dict,
    which is labelled `flat_split`.
    """
    if not isinstance(metrics, dict):
        raise CardError(f"metrics must be a dict, got {type(metrics).__name__}")
    if any(key in metrics for key in RECALL_KEYS):
        metrics = {flat_split: metrics}
    splits = {}
    for name, section in metrics.items():
        if not isinstance(section, dict) or not any(key in section for key in RECALL_KEYS):
            continue
        missing = [key for key in (*RECALL_KEYS, "mR") if not _finite(section.get(key))]
        if missing:
            raise CardError(f"metrics section {name!r} lacks finite numeric values for {missing}")
        splits[name] = section
    order = list(SPLIT_LABELS)
    return dict(sorted(splits.items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order)))


def splits_from_test_metrics(data: dict) -> dict[str, dict]:
    """The sections of a run's `test_metrics.json`: an `evaluate_retrieval` result (`{reranker:
    metrics}`, as the quickstart writes it), an `rs-retrieval evaluate --output` payload (the same
    under `results`) or one flat metrics dict. Un-reranked numbers are the `test` split (the one in
    `model-index`); re-ranked ones get their own rows."""
    results = data.get("results", data)
    if not isinstance(results, dict) or any(key in results for key in RECALL_KEYS):
        return metric_splits(results, flat_split="test")
    named = {("test" if name == "none" else f"test, {name} re-rank"): section for name, section in results.items()}
    return metric_splits(named)


def run_records(run_dir: Path | None, metrics: dict | None, dataset_name: str | None):
    """(the run's metrics.json, `metrics` or else those, `dataset_name` or else the recipe's dataset)."""
    run_metrics = read_json(run_dir / "metrics.json") if run_dir and (run_dir / "metrics.json").is_file() else None
    if dataset_name is None and run_dir is not None and (run_dir / "training_args.json").is_file():
        dataset_name = read_json(run_dir / "training_args.json").get("recipe", {}).get("data", {}).get("name")
    return run_metrics, run_metrics if metrics is None else metrics, dataset_name


def measured_splits(run_dir: Path | None, metrics: dict | None) -> dict[str, dict]:
    """The metric sections of `metrics`, plus the run's `test_metrics.json` when they lack a test split."""
    splits = metric_splits(metrics) if metrics else {}
    test_file = run_dir / TEST_METRICS_FILE if run_dir is not None else None
    if "test" not in splits and test_file is not None and test_file.is_file():
        splits = metric_splits({**splits_from_test_metrics(read_json(test_file)), **splits})
    return splits
