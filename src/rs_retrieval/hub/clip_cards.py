"""Model cards of CLIP-family folders (converted releases and CLIP models trained with rs_retrieval).

They differ from the cards of our methods: the checkpoint is plain transformers (no remote code),
provenance comes from the converter's `conversion.json` (source file, SHA-256, activation and its
evidence), and the reported numbers are those of the release (`models/clip/zoo.py`).
"""

from __future__ import annotations

import re
from pathlib import Path

from .cards import TAGS, _data_section, _dataset_title, _front_matter, _measured_section, _model_index, _read_json, _table, _template, _training_section, metric_splits
from .paper_results import canonical_dataset

FAMILY_NAMES = {"remoteclip": "RemoteCLIP", "georsclip": "GeoRSCLIP", "skyclip": "SkyCLIP"}
ACCEPTANCE_CHECK = (
    "Acceptance check (`clip-family.md` 2.3): not run by rs_retrieval, because the released weights were not available "
    "where this converter was built. Random-weight tests cannot tell QuickGELU from GELU; with the real file, convert it "
    "with both `--activation quick_gelu` and `--activation gelu`, evaluate RSITMD with the release's own protocol, and keep "
    "the activation that reproduces the published mR within about 0.5."
)


def _provenance(record: dict | None, release) -> str:
    if record is None:
        return "Not converted from an open_clip file (no `conversion.json`)."
    lines = [
        f"- source file: `{record['source_file']}` (SHA-256 `{record['source_sha256']}`), {record['source_keys']} open_clip tensors -> {record['converted_keys']} CLIPModel tensors, loaded strictly",
        f"- architecture: {record['architecture']}; image size {record['image_size']}, mean {record['image_mean']}, std {record['image_std']}",
        f"- activation: `{record['hidden_act']}` ({release.activation_evidence if release else record['hidden_act_source']})",
        f"- logit scale (log): {record['logit_scale']:.4f}",
    ]
    if release is not None:
        lines.insert(0, f"- release: `{release.id}` from {release.where}")
    return "\n".join(lines + ["", ACCEPTANCE_CHECK])


def _reported(release) -> str:
    if release is None or not (release.retrieval or release.zero_shot):
        return "No published numbers are recorded for this checkpoint."
    lines = ["Numbers as published (copied, not reproduced by rs_retrieval, not part of the `model-index`). Protocols differ between papers.", ""]
    if release.retrieval:
        rows = [[r.variant, _dataset_title(r.dataset), *(f"{v:.2f}" for v in r.i2t + r.t2i), f"{r.printed_mr:.2f}"] for r in release.retrieval]
        lines += [_table(["variant", "dataset", "i2t R@1", "i2t R@5", "i2t R@10", "t2i R@1", "t2i R@5", "t2i R@10", "mR"], rows), ""]
        lines += [f"Source: {source}." for source in dict.fromkeys(r.source for r in release.retrieval)] + [""]
    if release.zero_shot:
        lines += ["Zero-shot scene classification (top-1 %):", "", _table(["dataset", "top-1", "source"], [[z.dataset, f"{z.top1:.2f}", z.source] for z in release.zero_shot])]
    return "\n".join(lines)


def render_clip_card(model_dir: Path, run_dir: Path | None, config: dict, metrics, dataset_name, repo_id, license, template_dir) -> str:
    from ..convert.openclip import CONVERSION_RECORD
    from ..models.clip.zoo import RELEASES

    record = _read_json(model_dir / CONVERSION_RECORD) if (model_dir / CONVERSION_RECORD).is_file() else None
    release = RELEASES.get(record.get("release")) if record and record.get("release") else None
    run_metrics = _read_json(run_dir / "metrics.json") if run_dir and (run_dir / "metrics.json").is_file() else None
    metrics = run_metrics if metrics is None else metrics
    if dataset_name is None and run_dir is not None and (run_dir / "training_args.json").is_file():
        dataset_name = _read_json(run_dir / "training_args.json").get("recipe", {}).get("data", {}).get("name")
    dataset = canonical_dataset(dataset_name)
    splits = metric_splits(metrics) if metrics else {}
    model_name = repo_id.rsplit("/", 1)[-1] if repo_id else (run_dir or model_dir).resolve().name
    kind = config.get("model_type", "clip")
    if release is not None:
        family = FAMILY_NAMES.get(release.family, release.family)
        title = f"{release.id}: {family} {release.arch} as a transformers CLIPModel"
        summary = f"The {family} {release.arch} checkpoint ({release.files[0]}), converted from open_clip to a plain transformers `CLIPModel` by `rs_retrieval`. Paper: {release.paper}."
    else:
        title = f"{kind.upper()} dual encoder" + (f" trained on {_dataset_title(dataset)}" if dataset else "")
        summary = f"A transformers `{'CLIPModel' if kind == 'clip' else 'SiglipModel'}` for remote-sensing image-text retrieval and zero-shot scene classification, built with `rs_retrieval`."
    licence = (f"Weights: {release.licence}. Check it before re-hosting or using the weights." if release else _data_section(dataset))
    metadata = {
        "license": "other" if release else license,
        "library_name": "transformers",
        "pipeline_tag": "zero-shot-image-classification",
        "tags": [*TAGS, kind, "zero-shot-image-classification", *([release.family] if release else [])],
        "datasets": [dataset_name] if dataset_name and "/" in dataset_name else None,
        "model-index": _model_index(model_name, dataset, splits),
    }
    citation = "\n".join(([f"- Model: {release.paper}"] if release else []) + ["- Conversion and tooling: rs_retrieval (Apache-2.0)"])
    text = _template("clip_model_card.md", template_dir).substitute(
        metadata=_front_matter(metadata),
        title=title,
        summary=summary,
        model_ref=repo_id or str(model_dir),
        provenance=_provenance(record, release),
        measured=_measured_section(splits, dataset),
        reported=_reported(release),
        training=_training_section(model_dir, run_dir, run_metrics) if run_dir else "Not trained by rs_retrieval.",
        data=licence,
        citation=citation,
    )
    return re.sub(r"\n{3,}", "\n\n", text)
