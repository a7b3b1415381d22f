"""Averaging over k trained folds (AMFMN/GaLR `test_ave.py`) and the results table."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

_RECALL = re.compile(r"^i2t_R@(\d+)$")


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _is_metrics(value) -> bool:
    return isinstance(value, Mapping) and "mR" in value


def _is_aggregate(value) -> bool:
    return isinstance(value, Mapping) and "n_folds" in value and "mean" in value


def aggregate_folds(fold_metrics: Sequence[Mapping]) -> dict:
    """Mean and sample standard deviation (ddof=1; 0 for one fold) of every numeric metric.

    Each element is one fold's `retrieval_metrics` dict, or one fold's `{rerank name: metrics}`
    (as `evaluate_retrieval` returns), which is aggregated per name. Non-numeric entries (protocol,
    tie policy) must agree across folds and are copied. Returns
    ``{"n_folds": k, "mean": {...}, "std": {...}, <settings>}`` (or one such dict per name).
    """
    if not fold_metrics:
        raise ValueError("aggregate_folds needs at least one fold")
    first = fold_metrics[0]
    for index, fold in enumerate(fold_metrics):
        if set(fold) != set(first):
            raise ValueError(f"fold {index} has keys {sorted(fold)}, fold 0 has {sorted(first)}")
    if not _is_metrics(first) and all(isinstance(value, Mapping) for value in first.values()):
        return {name: aggregate_folds([fold[name] for fold in fold_metrics]) for name in first}
    result = {"n_folds": len(fold_metrics), "mean": {}, "std": {}}
    for key, value in first.items():
        values = [fold[key] for fold in fold_metrics]
        if all(_is_number(v) for v in values):
            result["mean"][key] = float(np.mean(values))
            result["std"][key] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        elif any(v != value for v in values):
            raise ValueError(f"folds disagree on {key!r}: {values}")
        else:
            result[key] = value
    return result


def _rows(results) -> list[tuple[str | None, Mapping, Mapping | None, Mapping]]:
    """(label, mean metrics, std metrics or None, settings) per table row."""
    if _is_metrics(results):
        return [(None, results, None, results)]
    if _is_aggregate(results):
        return [(None, results["mean"], results["std"], results)]
    if isinstance(results, Mapping) and results and all(_is_metrics(v) or _is_aggregate(v) for v in results.values()):
        return [(str(name), *_rows(value)[0][1:]) for name, value in results.items()]
    raise TypeError("format_table expects a metrics dict, an aggregate_folds result, or a mapping of name -> either")


def _cell(mean: float, std: float | None) -> str:
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


def format_table(results, title: str | None = None) -> str:
    """Markdown table of i2t/t2i R@K and mR (± std for fold aggregates), one row per result.

    `results`: a `retrieval_metrics` dict, an `aggregate_folds` dict, or a mapping of row name
    (e.g. re-ranker) to either. A footer names the protocol, tie policy, query counts and folds.
    """
    rows = _rows(results)
    ks = sorted(int(match.group(1)) for key in rows[0][1] if (match := _RECALL.match(key)))
    header = (
        ([] if rows[0][0] is None else ["rerank"]) + [f"i2t R@{k}" for k in ks] + [f"t2i R@{k}" for k in ks] + ["mR"]
    )
    keys = [f"i2t_R@{k}" for k in ks] + [f"t2i_R@{k}" for k in ks] + ["mR"]
    body = []
    for label, mean, std, _ in rows:
        missing = [key for key in keys if key not in mean]
        if missing:
            raise KeyError(f"row {label!r} lacks {missing}")
        cells = [_cell(mean[key], None if std is None else std[key]) for key in keys]
        body.append(([] if label is None else [label]) + cells)
    widths = [max(len(line[column]) for line in [header, *body]) for column in range(len(header))]
    first_numeric = 0 if rows[0][0] is None else 1

    def render(line):
        return (
            "| "
            + " | ".join(
                cell.ljust(w) if c < first_numeric else cell.rjust(w) for c, (cell, w) in enumerate(zip(line, widths))
            )
            + " |"
        )

    rule = (
        "|"
        + "|".join("-" * (w + 1) + ":" if c >= first_numeric else "-" * (w + 2) for c, w in enumerate(widths))
        + "|"
    )
    lines = ([title] if title else []) + [render(header), rule] + [render(line) for line in body]
    _, mean, _, settings = rows[0]
    notes = [f"{key}: {settings[key]}" for key in ("protocol", "tie_policy") if key in settings]
    if "i2t_queries" in mean:
        notes.append(f"queries: {_count(mean['i2t_queries'])} images, {_count(mean['t2i_queries'])} texts")
    if "n_folds" in settings:
        notes.append(f"mean ± std over {settings['n_folds']} folds")
    if notes:
        lines.append(", ".join(notes))
    return "\n".join(lines)


def _count(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"
