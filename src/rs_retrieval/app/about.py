"""The About tab: a short model card (method, size, preprocessing) and the metrics measured for it."""

from __future__ import annotations

import json
from pathlib import Path

from ..cards.runs import RECALL_KEYS, SPLIT_LABELS, CardError, metric_splits, resolve_run
from ..models.registry import find_method

_COLUMNS = (*RECALL_KEYS, "mR")
#: Metric files a run directory may hold, and how each section is labelled.
_METRIC_FILES = {"metrics.json": "{split}", "test_metrics.json": "test, re-rank {split}"}


def measured_metrics(model_path: str | Path) -> dict[str, dict]:
    """`{label: metrics}` from the run's metrics.json / test_metrics.json; empty for a Hub id or a bare model folder."""
    try:
        _, run_dir = resolve_run(model_path)
    except CardError:
        return {}
    found = {}
    for name, label in _METRIC_FILES.items():
        path = run_dir / name if run_dir is not None else None
        if path is None or not path.is_file():
            continue
        try:
            sections = metric_splits(json.loads(path.read_text(encoding="utf-8")))
        except (CardError, json.JSONDecodeError):
            continue  # a damaged metrics file is left out of the summary, not fatal to the app
        found.update(
            {label.format(split=SPLIT_LABELS.get(split, split)): values for split, values in sections.items()}
        )
    return found


def model_summary(model, processor, model_path: str | Path, corpus_line: str = "") -> str:
    """Markdown: method, parameters, input size, source, the corpus being searched and measured metrics."""
    model_type = getattr(model.config, "model_type", type(model).__name__)
    method = find_method(model_type)
    image_processor = getattr(processor, "image_processor", None)
    lines = [
        f"## {(method.title if method else '') or type(model).__name__}",
        "",
        method.summary if method else "",
        "",
        "| property | value |",
        "|---|---|",
        f"| method | `{model_type}` ({type(model).__name__}) |",
        f"| parameters | {sum(p.numel() for p in model.parameters()):,} |",
        f"| image input | {getattr(image_processor, 'size', '?')} px |",
        f"| model | `{model_path}` |",
    ]
    if corpus_line:
        lines.append(f"| searching | {corpus_line} |")
    if method and method.reconstructed:
        lines += ["", f"**A reconstruction, not the authors' model.** {method.reconstruction_note}"]
    if method and method.paper:
        lines += ["", f"Paper: {method.paper.citation}."]
    metrics = measured_metrics(model_path)
    lines += ["", "### Measured metrics", ""]
    if metrics:
        lines.append("| split | " + " | ".join(_COLUMNS) + " |")
        lines.append("|---" * (len(_COLUMNS) + 1) + "|")
        for label, values in metrics.items():
            lines.append(f"| {label} | " + " | ".join(f"{values[key]:.1f}" for key in _COLUMNS) + " |")
    else:
        lines.append("No metrics.json or test_metrics.json next to this model: nothing measured to show.")
    return "\n".join(lines)
