"""CLIP-family model cards.

They differ from the cards of our methods: the checkpoint is plain transformers (no remote code),
provenance comes from the converter's `conversion.json` (source file, SHA-256, activation and its
evidence), and the reported numbers are those of the release (`rs_retrieval.models.clip.releases`).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..models.clip.releases import CONVERSION_RECORD, RELEASES
from ..models.records import canonical_dataset
from .runs import measured_splits, read_json, run_records
from .sections import (
    TAGS,
    card_template,
    data_section,
    dataset_title,
    datasets_metadata,
    front_matter,
    licence_metadata,
    markdown_table,
    measured_section,
    model_index_metadata,
    training_section,
)

FAMILY_NAMES = {"remoteclip": "RemoteCLIP", "georsclip": "GeoRSCLIP", "skyclip": "SkyCLIP"}
ACCEPTANCE_CHECK = (
    "Acceptance check (docs/clip-zeroshot.md#the-activation-check): not "
    "run by rs_retrieval, because the released weights were not available "
    "where this converter was built. Random-weight tests cannot "
    "tell QuickGELU from GELU; with the real file, convert it "
    "with both `--activation quick_gelu` and `--activation gelu`, "
    "evaluate RSITMD with the release's own protocol, and keep "
    "the activation that reproduces the published mR within about 0.5."
)


def _provenance(record: dict | None, release) -> str:
    if record is None:
        return "Not converted from an open_clip file (no `conversion.json`)."
    lines = [
        f"- source file: `{record['source_file']}` (SHA-256 `{record['source_sha256']}`), {record['source_keys']} "
        f"open_clip tensors -> {record['converted_keys']} CLIPModel tensors, loaded strictly",
        f"- architecture: {record['architecture']}; image size "
        f"{record['image_size']}, mean {record['image_mean']}, std {record['image_std']}",
        f"- activation: `{record['hidden_act']}` "
        f"({release.activation_evidence if release else record['hidden_act_source']})",
        f"- logit scale (log): {record['logit_scale']:.4f}",
    ]
    if release is not None:
        lines.insert(0, f"- release: `{release.id}` from {release.where}")
    return "\n".join(lines + ["", ACCEPTANCE_CHECK])


def _reported(release) -> str:
    if release is None or not (release.retrieval or release.zero_shot):
        return "No published numbers are recorded for this checkpoint."
    lines = [
        "Numbers as published (copied, not reproduced by rs_retrieval, "
        "not part of the `model-index`). Protocols differ between papers.",
        "",
    ]
    if release.retrieval:
        rows = [
            [r.variant, dataset_title(r.dataset), *(f"{v:.2f}" for v in r.i2t + r.t2i), f"{r.printed_mr:.2f}"]
            for r in release.retrieval
        ]
        lines += [
            markdown_table(
                ["variant", "dataset", "i2t R@1", "i2t R@5", "i2t R@10", "t2i R@1", "t2i R@5", "t2i R@10", "mR"], rows
            ),
            "",
        ]
        lines += [f"Source: {source}." for source in dict.fromkeys(r.source for r in release.retrieval)] + [""]
    if release.zero_shot:
        lines += [
            "Zero-shot scene classification (top-1 %):",
            "",
            markdown_table(
                ["dataset", "top-1", "source"], [[z.dataset, f"{z.top1:.2f}", z.source] for z in release.zero_shot]
            ),
        ]
    return "\n".join(lines)


def _release_licence(release) -> str:
    licence = release.licence
    link = f" ({licence.link})" if licence.link else ""
    return (
        f"Card licence: `{licence.id}`{f' ({licence.name})' if licence.name else ''}{link}. {licence.statement} "
        "Check the terms before re-hosting or using the weights; the conversion code (rs_retrieval) is Apache-2.0."
    )


def render_clip_card(
    model_dir: Path, run_dir: Path | None, config: dict, metrics, dataset_name, repo_id, licence: tuple, template_dir
) -> str:
    record = read_json(model_dir / CONVERSION_RECORD) if (model_dir / CONVERSION_RECORD).is_file() else None
    release = RELEASES.get(record.get("release")) if record and record.get("release") else None
    run_metrics, metrics, dataset_name = run_records(run_dir, metrics, dataset_name)
    dataset = canonical_dataset(dataset_name)
    splits = measured_splits(run_dir, metrics)
    model_name = repo_id.rsplit("/", 1)[-1] if repo_id else (run_dir or model_dir).resolve().name
    kind = config.get("model_type", "clip")
    if release is not None:
        family = FAMILY_NAMES.get(release.family, release.family)
        title = f"{release.id}: {family} {release.arch} as a transformers CLIPModel"
        summary = (
            f"The {family} {release.arch} checkpoint ({release.files[0]}), converted from open_clip "
            f"to a plain transformers `CLIPModel` by `rs_retrieval`. Paper: {release.paper}."
        )
    else:
        title = f"{kind.upper()} dual encoder" + (f" trained on {dataset_title(dataset)}" if dataset else "")
        summary = (
            f"A transformers `{'CLIPModel' if kind == 'clip' else 'SiglipModel'}` for remote-sensing "
            "image-text retrieval and zero-shot scene classification, built with `rs_retrieval`."
        )
    license, license_name, license_link = licence
    if license is None and release is not None:  # the release's own licence unless the user names one
        license, license_name, license_link = release.licence.id, release.licence.name, release.licence.link
    model_index = model_index_metadata(model_name, dataset, splits)
    metadata = {
        **licence_metadata(license or "apache-2.0", license_name, license_link),
        "library_name": "transformers",
        "pipeline_tag": "zero-shot-image-classification",
        "tags": [*TAGS, kind, "zero-shot-image-classification", *([release.family] if release else [])],
        "datasets": datasets_metadata(dataset_name, dataset),
        "metrics": ["recall"] if model_index else None,
        "model-index": model_index,
    }
    citation = "\n".join(
        ([f"- Model: {release.paper}"] if release else []) + ["- Conversion and tooling: rs_retrieval (Apache-2.0)"]
    )
    text = card_template("clip_model_card.md", template_dir).substitute(
        metadata=front_matter(metadata),
        title=title,
        summary=summary,
        model_ref=repo_id or str(model_dir),
        provenance=_provenance(record, release),
        measured=measured_section(splits, dataset),
        reported=_reported(release),
        training=training_section(model_dir, run_dir, run_metrics) if run_dir else "Not trained by rs_retrieval.",
        data=_release_licence(release) if release else data_section(dataset),
        citation=citation,
    )
    return re.sub(r"\n{3,}", "\n\n", text)
