"""Model cards of the package's methods (README.md with Hub YAML metadata) filled from measured data.

A model card's `model-index` holds only numbers measured on the checkpoint (a run's
`metrics.json`); published numbers go into a separate, labelled "Reported in the paper" table.
What the card says about the method (title, summary, paper, code, reconstruction, zero-shot
support, published numbers) comes from its registry record (`rs_retrieval.models.registry`).
CLIP-family folders get the CLIP card (`cards.clip`).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..fileio import atomic_write_text
from ..models.records import canonical_dataset
from ..models.registry import Method, find_method
from .clip import render_clip_card
from .runs import CardError, measured_splits, read_json, resolve_run, run_records
from .sections import (
    TAGS,
    card_template,
    data_section,
    dataset_spec,
    dataset_title,
    datasets_metadata,
    front_matter,
    licence_metadata,
    markdown_table,
    measured_section,
    model_index_metadata,
    training_section,
)

RECONSTRUCTION_NOTICE = (
    "> **This model is a reconstruction, not the authors' model.** No official code or weights exist; the "
    "architecture and training recipe are our reading of the paper's abstract and of related public designs, with "
    "every uncertain choice exposed as a config field. Numbers measured on this checkpoint are not the paper's "
    "numbers, and the paper's numbers are not claimed for it."
)


def _reported_section(info: Method | None, dataset: str | None) -> str:
    rows = info.reported(dataset) if info else []
    note = info.reported_note if info else ""
    lines = []
    if not rows and info and info.reported_results:
        rows = info.reported()
        lines += [
            f"No published numbers exist for {dataset_title(dataset)}; these are all published rows for the method.",
            "",
        ]
    if not rows:
        return note or "rs_retrieval records no published results for this method."
    lines += [
        "Numbers as published by the authors (copied, not reproduced by this checkpoint, and not part of the "
        "`model-index`). Protocols and splits can differ from ours.",
        "",
        markdown_table(
            ["variant", "dataset", "i2t R@1", "i2t R@5", "i2t R@10", "t2i R@1", "t2i R@5", "t2i R@10", "mR (printed)"],
            [
                [r.variant, dataset_title(r.dataset), *(f"{v:.2f}" for v in r.i2t + r.t2i), f"{r.printed_mr:.2f}"]
                for r in rows
            ],
        ),
        "",
    ]
    sources: dict[str, list[str]] = {}
    for r in rows:
        key = f"{r.source}; {r.note}" if r.note else r.source
        if dataset_title(r.dataset) not in sources.setdefault(key, []):
            sources[key].append(dataset_title(r.dataset))
    lines += [f"Source ({', '.join(titles)}): {key}." for key, titles in sources.items()]
    mismatched = [r for r in rows if abs(r.mean_recall - r.printed_mr) > 0.011]
    if mismatched:
        lines += [""] + [
            f"Note: the printed mR of {r.variant} on {dataset_title(r.dataset)} "
            f"({r.printed_mr:.2f}) is not the mean of its "
            f"six recalls ({r.mean_recall:.2f})."
            for r in mismatched
        ]
    if note:
        lines += ["", note]
    return "\n".join(lines)


def _citation_section(info: Method | None, dataset: str | None) -> str:
    lines = []
    if info is not None and info.paper is not None:
        lines.append(f"- Method: {info.paper.citation}")
    spec = dataset_spec(dataset)
    if spec is not None:
        lines.append(f"- Dataset: {spec.citation}")
    lines.append("- Implementation: rs_retrieval (Apache-2.0)")
    return "\n".join(lines)


def _pipeline_tag(info: Method | None) -> str:
    """`zero-shot-image-classification` where transformers' pipeline runs the model (the record's
    `zero_shot`), else `feature-extraction` (text embeddings; the image side may need inputs pipelines cannot pass)."""
    return "zero-shot-image-classification" if info is not None and info.zero_shot else "feature-extraction"


def render_model_card(
    path: str | Path,
    metrics: dict | None = None,
    dataset_name: str | None = None,
    method: str | None = None,
    repo_id: str | None = None,
    license: str | None = None,
    template_dir: str | Path | None = None,
    license_name: str | None = None,
    license_link: str | None = None,
) -> str:
    """The model card text for a run or model directory (see `write_model_card`)."""
    model_dir, run_dir = resolve_run(path)
    config = read_json(model_dir / "config.json")
    method = (method or config.get("model_type") or "").lower()
    if not method:
        raise CardError(f"{model_dir / 'config.json'} has no model_type; pass method=")
    if method in ("clip", "siglip"):
        return render_clip_card(
            model_dir,
            run_dir,
            config,
            metrics,
            dataset_name,
            repo_id,
            (license, license_name, license_link),
            template_dir,
        )
    run_metrics, metrics, dataset_name = run_records(run_dir, metrics, dataset_name)
    dataset = canonical_dataset(dataset_name)
    splits = measured_splits(run_dir, metrics)
    info = find_method(method)
    reconstruction = bool(config.get("is_reconstruction")) or (info is not None and info.reconstructed)
    model_name = repo_id.rsplit("/", 1)[-1] if repo_id else (run_dir or model_dir).resolve().name
    title = f"{(info.title if info else '') or method} trained on {dataset_title(dataset)}"
    if reconstruction:
        title += " (reconstruction)"
    model_index = model_index_metadata(model_name, dataset, splits)
    metadata = {
        **licence_metadata(license or "apache-2.0", license_name, license_link),
        "library_name": "transformers",
        "pipeline_tag": _pipeline_tag(info),
        "tags": [*TAGS, method, *(["reconstruction"] if reconstruction else []), "custom_code"],
        "datasets": datasets_metadata(dataset_name, dataset),
        "metrics": ["recall"] if model_index else None,
        "model-index": model_index,
    }
    summary = f"Image-text retrieval model (`{method}`) for remote-sensing imagery, built with `rs_retrieval`."
    if info is not None and info.summary:
        summary += f" {info.summary}"
    if info is not None and info.paper is not None:
        summary += f"\n\nMethod paper: {info.paper.citation}." + (
            f" Official code: {info.paper.code}." if info.paper.code else ""
        )
    text = card_template("model_card.md", template_dir).substitute(
        metadata=front_matter(metadata),
        title=title,
        summary=summary,
        notice=RECONSTRUCTION_NOTICE if reconstruction else "",
        model_ref=repo_id or str(model_dir),
        measured=measured_section(splits, dataset),
        reported=_reported_section(info, dataset),
        training=training_section(model_dir, run_dir, run_metrics),
        data=data_section(dataset),
        citation=_citation_section(info, dataset),
    )
    return re.sub(r"\n{3,}", "\n\n", text)


def write_model_card(
    path: str | Path, metrics: dict | None = None, dataset_name: str | None = None, method: str | None = None, **kwargs
) -> Path:
    """Write README.md into the model directory of a training run (`run/model/`) or into a model directory.

    `metrics` defaults to the run's metrics.json, `dataset_name` to the recipe's dataset and
    `method` to config.json's `model_type`. Other keyword arguments: `repo_id` (shown in the
    usage snippet), `license` (default: apache-2.0 for a trained model, the release's own licence for
    a converted release), `license_name`/`license_link` (required with `other`), `template_dir`.
    Returns the README path.
    """
    model_dir, _ = resolve_run(path)
    text = render_model_card(path, metrics=metrics, dataset_name=dataset_name, method=method, **kwargs)
    readme = model_dir / "README.md"
    atomic_write_text(readme, text)
    return readme
