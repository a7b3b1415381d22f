"""Model and dataset cards (README.md with Hub YAML metadata) filled from measured data.

A model card's `model-index` holds only numbers measured on the checkpoint (a run's
`metrics.json`); published numbers go into a separate, labelled "Reported in the paper" table
(`paper_results`). A dataset card states the source, the licence as the authors published it,
split sizes counted from the Parquet files being published, the schema and known caveats.
Templates are `string.Template` files in the repository's `hub_cards/`, shipped in the package as
`rs_retrieval.card_templates` (`rs_retrieval.packaged`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

import yaml

from ..data.combined import LEAKAGE_REPORT
from ..errors import RSRetrievalError
from ..fileio import atomic_write_text
from ..packaged import packaged_files
from .dataset_notes import dataset_notes
from .paper_results import REPORTED_NOTES, canonical_dataset, reported_results

RECALL_KEYS = ("i2t_R@1", "i2t_R@5", "i2t_R@10", "t2i_R@1", "t2i_R@5", "t2i_R@10")
#: metrics.json sections, in the order a card shows them; only the first two enter `model-index`.
SPLIT_LABELS = {"test": "test", "validation": "validation (selected checkpoint)", "last_validation": "validation (last evaluation)"}
#: The run's test-split evaluation; the card shows it and puts it into `model-index`.
TEST_METRICS_FILE = "test_metrics.json"
FIGURES = {"training_curves.png": "Training curves", "retrieval_examples.png": "Retrieval examples (validation)"}
TAGS = ["remote-sensing", "image-text-retrieval", "cross-modal-retrieval", "rs_retrieval"]


class CardError(RSRetrievalError, ValueError):
    """Card inputs are missing or malformed (the message names the file or field)."""


@dataclass(frozen=True)
class MethodInfo:
    title: str
    paper: str
    code: str
    summary: str


METHODS = {
    "amfmn": MethodInfo(
        "AMFMN (Asymmetric Multimodal Feature Matching Network)",
        'Z. Yuan et al., "Exploring a Fine-Grained Multiscale Method for Cross-Modal Remote Sensing Image Retrieval", '
        "IEEE TGRS, vol. 60, 2022, doi:10.1109/TGRS.2021.3078451, arXiv:2204.09868",
        "xiaoyuan1996/AMFMN (no LICENSE file; the README shows an MIT badge)",
        "ResNet-18 image encoder with multiscale visual self-attention and a GRU text encoder; the image features "
        "gate the text features, so the image-text score depends on the pair.",
    ),
    "galr": MethodInfo(
        "GaLR (Global and Local information based Retrieval)",
        'Z. Yuan et al., "Remote Sensing Cross-Modal Text-Image Retrieval Based on Global and Local Information", '
        "IEEE TGRS, 2022, doi:10.1109/TGRS.2022.3163706, arXiv:2204.09860",
        "xiaoyuan1996/GaLR (MIT)",
        "AMFMN-style global image features fused with a graph over local object features (MIDF fusion).",
    ),
    "msa": MethodInfo(
        "MSA (Multi-Scale Alignment)",
        'R. Yang et al., "Transcending Fusion: A Multi-Scale Alignment Method for Remote Sensing Image-Text '
        'Retrieval", IEEE TGRS, 2024, arXiv:2405.18959',
        "yr666666/MSA (Apache-2.0)",
        "ResNet-50 + BERT dual encoder trained with multi-scale alignment losses; the cross-modal attention head is "
        "used in training only, so retrieval is a plain dot product.",
    ),
    "cmpagl": MethodInfo(
        "CMPAGL (Cross-Modal Pre-Aligned method with Global and Local information)",
        'Z. Sun, M. Zhao, G. Liu, A. Kaup, "Cross-Modal Pre-Aligned Method with Global and Local Information for '
        'Remote-Sensing Image and Text Retrieval", IEEE TGRS, vol. 62, 2024, doi:10.1109/TGRS.2024.3489224, '
        "arXiv:2411.14704",
        "ZbaoSun/CMPAGL (README only: no code released)",
        "Swin-style image encoder with global-local window attention, BERT text encoder and an ALBEF-style fusion "
        "encoder for re-ranking.",
    ),
}
RECONSTRUCTION_NOTICE = (
    "> **This model is a reconstruction, not the authors' model.** No official code or weights exist; the "
    "architecture and training recipe are our reading of the paper's abstract and of related public designs, with "
    "every uncertain choice exposed as a config field. Numbers measured on this checkpoint are not the paper's "
    "numbers, and the paper's numbers are not claimed for it."
)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _read_json(path: Path) -> dict:
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
        raise CardError(f"{path} holds no saved model: expected {path / 'config.json'} or {path / 'model' / 'config.json'}")
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


def _dataset_spec(name: str | None):
    if name is None:
        return None
    from ..data.loading import DATASETS

    return DATASETS.get(name)


def _dataset_title(name: str | None) -> str:
    spec = _dataset_spec(name)
    return spec.title if spec is not None else (name or "an unspecified dataset")


def _model_index(model_name: str, dataset: str | None, splits: dict[str, dict]) -> list[dict] | None:
    indexed = {name: values for name, values in splits.items() if name in ("test", "validation")}
    if dataset is None or not indexed:
        return None
    results = []
    for split, values in indexed.items():
        metrics = [{"type": key, "name": key.replace("_", " "), "value": round(float(values[key]), 4)} for key in (*RECALL_KEYS, "mR")]
        results.append({
            "task": {"type": "image-text-retrieval", "name": "Image-text retrieval"},
            "dataset": {"type": dataset, "name": _dataset_title(dataset), "split": split},
            "metrics": metrics,
        })
    return [{"name": model_name, "results": results}]


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _measured_section(splits: dict[str, dict], dataset: str | None) -> str:
    if not splits:
        return "No retrieval metrics were recorded for this checkpoint."
    rows = []
    for name, values in splits.items():
        queries = f"{values['i2t_queries']} / {values['t2i_queries']}" if "i2t_queries" in values and "t2i_queries" in values else "-"
        rows.append([SPLIT_LABELS.get(name, name), queries, *(f"{values[k]:.2f}" for k in (*RECALL_KEYS, "mR"))])
    header = ["split", "images / captions", "i2t R@1", "i2t R@5", "i2t R@10", "t2i R@1", "t2i R@5", "t2i R@10", "mR"]
    first = next(iter(splits.values()))
    protocol = f" (protocol `{first['protocol']}`, ties `{first.get('tie_policy', '?')}`)" if "protocol" in first else ""
    return (
        f"Dataset: {_dataset_title(dataset)}. Recall in percent (i2t: best of the image's captions; t2i: per caption), "
        f"computed by `rs_retrieval.evaluation`{protocol} from this checkpoint; these are the values in the card's "
        "`model-index`.\n\n" + _table(header, rows)
    )


def _reported_section(method: str, dataset: str | None) -> str:
    rows = reported_results(method, dataset)
    note = REPORTED_NOTES.get(method, "")
    lines = []
    if not rows and reported_results(method):
        rows = reported_results(method)
        lines += [f"No published numbers exist for {_dataset_title(dataset)}; these are all published rows for the method.", ""]
    if not rows:
        return note or "rs_retrieval records no published results for this method."
    lines += [
        "Numbers as published by the authors (copied, not reproduced by this checkpoint, and not part of the "
        "`model-index`). Protocols and splits can differ from ours.",
        "",
        _table(
            ["variant", "dataset", "i2t R@1", "i2t R@5", "i2t R@10", "t2i R@1", "t2i R@5", "t2i R@10", "mR (printed)"],
            [[r.variant, _dataset_title(r.dataset), *(f"{v:.2f}" for v in r.i2t + r.t2i), f"{r.printed_mr:.2f}"] for r in rows],
        ),
        "",
    ]
    sources: dict[str, list[str]] = {}
    for r in rows:
        key = f"{r.source}; {r.note}" if r.note else r.source
        if _dataset_title(r.dataset) not in sources.setdefault(key, []):
            sources[key].append(_dataset_title(r.dataset))
    lines += [f"Source ({', '.join(titles)}): {key}." for key, titles in sources.items()]
    mismatched = [r for r in rows if abs(r.mean_recall - r.printed_mr) > 0.011]
    if mismatched:
        lines += [""] + [
            f"Note: the printed mR of {r.variant} on {_dataset_title(r.dataset)} ({r.printed_mr:.2f}) is not the mean of its "
            f"six recalls ({r.mean_recall:.2f})." for r in mismatched
        ]
    if note:
        lines += ["", note]
    return "\n".join(lines)


def _training_section(readme_dir: Path, run_dir: Path | None, metrics: dict | None) -> str:
    lines = []
    args = _read_json(run_dir / "training_args.json") if run_dir and (run_dir / "training_args.json").is_file() else {}
    recipe = args.get("recipe", {})
    data, training = recipe.get("data", {}), recipe.get("training", {})
    facts = {
        "dataset": data.get("name") or data.get("path"),
        "epochs": training.get("epochs"), "max steps": training.get("max_steps"),
        "batch size (pairs)": training.get("batch_size"), "optimizer": training.get("optimizer"),
        "learning rate": training.get("lr"), "lr schedule": training.get("lr_scheduler"),
        "mixed precision": args.get("mixed_precision"), "processes": args.get("num_processes"),
        "seed": training.get("seed"),
    }
    if metrics:
        facts.update({
            "checkpoint selection": metrics.get("selection"), "evaluation protocol": metrics.get("protocol"),
            "best epoch": metrics.get("best_epoch"),
            "optimizer steps": metrics.get("global_step"),
            "throughput (pairs/s)": None if metrics.get("train_pairs_per_s") is None else f"{metrics['train_pairs_per_s']:.1f}",
        })
    lines += [f"- {key}: {value}" for key, value in facts.items() if value is not None]
    if not lines:
        lines.append("No training recipe or run summary was recorded with this model.")
    if (readme_dir / "training_args.json").is_file():
        lines.append("- full recipe: `training_args.json` in this repository")
    figures = [f"![{title}]({name})" for name, title in FIGURES.items() if (readme_dir / name).is_file()]
    return "\n".join(lines + ([""] + figures if figures else []))


def _data_section(dataset: str | None) -> str:
    spec, notes = _dataset_spec(dataset), dataset_notes(dataset) if dataset else None
    if spec is None and notes is None:
        return "The training data is not recorded; check its licence before using the weights."
    lines = [f"Trained on {_dataset_title(dataset)}."]
    if notes is not None:
        lines.append(f"Licence of the data as published: {notes.license_statement}")
    elif spec is not None:
        lines.append(f"Licence of the data as published: {spec.license}")
    lines.append(
        "The weights were derived from this data, so its terms apply to their use as well. The card's `license` "
        "field covers the code in this repository (rs_retrieval, Apache-2.0)."
    )
    return "\n\n".join(lines)


def _citation_section(method_info: MethodInfo | None, dataset: str | None) -> str:
    lines = []
    if method_info is not None:
        lines.append(f"- Method: {method_info.paper}")
    spec = _dataset_spec(dataset)
    if spec is not None:
        lines.append(f"- Dataset: {spec.citation}")
    lines.append("- Implementation: rs_retrieval (Apache-2.0)")
    return "\n".join(lines)


def _template(name: str, template_dir: str | Path | None) -> Template:
    """A card template from `template_dir`, or the one packaged with rs_retrieval."""
    path = Path(template_dir) / name if template_dir is not None else packaged_files("rs_retrieval.card_templates") / name
    if not path.is_file():
        raise CardError(f"card template {path} not found")
    return Template(path.read_text(encoding="utf-8"))


def _front_matter(metadata: dict) -> str:
    return yaml.safe_dump({k: v for k, v in metadata.items() if v is not None}, sort_keys=False, allow_unicode=True).rstrip("\n")


def _run_records(run_dir: Path | None, metrics: dict | None, dataset_name: str | None):
    """(the run's metrics.json, `metrics` or else those, `dataset_name` or else the recipe's dataset)."""
    run_metrics = _read_json(run_dir / "metrics.json") if run_dir and (run_dir / "metrics.json").is_file() else None
    if dataset_name is None and run_dir is not None and (run_dir / "training_args.json").is_file():
        dataset_name = _read_json(run_dir / "training_args.json").get("recipe", {}).get("data", {}).get("name")
    return run_metrics, run_metrics if metrics is None else metrics, dataset_name


def _measured_splits(run_dir: Path | None, metrics: dict | None) -> dict[str, dict]:
    """The metric sections of `metrics`, plus the run's `test_metrics.json` when they lack a test split."""
    splits = metric_splits(metrics) if metrics else {}
    test_file = run_dir / TEST_METRICS_FILE if run_dir is not None else None
    if "test" not in splits and test_file is not None and test_file.is_file():
        splits = metric_splits({**splits_from_test_metrics(_read_json(test_file)), **splits})
    return splits


def _licence_metadata(license: str, license_name: str | None, license_link: str | None) -> dict:
    """The card's licence fields; the Hub refuses `other` without a `license_name`."""
    if license == "other" and not license_name:
        raise CardError("licence 'other' needs a licence name (--license-name, e.g. my-org-research-only) and ideally a link (--license-link)")
    return {"license": license, "license_name": license_name, "license_link": license_link}


def _pipeline_tag(model_type: str) -> str:
    """`zero-shot-image-classification` where transformers' pipeline runs the model (registered for it),
    else `feature-extraction` (text embeddings; the image side may need inputs pipelines cannot pass)."""
    from transformers import AutoConfig

    from .. import models  # noqa: F401  (registers the package's methods)
    from .remote_code import zero_shot_class

    try:
        config_class = type(AutoConfig.for_model(model_type))
    except ValueError:
        return "feature-extraction"
    return "zero-shot-image-classification" if zero_shot_class(config_class) is not None else "feature-extraction"


def _datasets(dataset_name: str | None, dataset: str | None) -> list[str] | None:
    """`datasets:` of a model card: the Hub id the recipe loaded, else the dataset's canonical name."""
    if dataset_name and "/" in dataset_name:
        return [dataset_name]
    return [dataset] if dataset else None


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
    config = _read_json(model_dir / "config.json")
    method = (method or config.get("model_type") or "").lower()
    if not method:
        raise CardError(f"{model_dir / 'config.json'} has no model_type; pass method=")
    if method in ("clip", "siglip"):
        return render_clip_card(model_dir, run_dir, config, metrics, dataset_name, repo_id, (license, license_name, license_link), template_dir)
    run_metrics, metrics, dataset_name = _run_records(run_dir, metrics, dataset_name)
    dataset = canonical_dataset(dataset_name)
    splits = _measured_splits(run_dir, metrics)
    info = METHODS.get(method)
    reconstruction = bool(config.get("is_reconstruction")) or method == "cmpagl"
    model_name = repo_id.rsplit("/", 1)[-1] if repo_id else (run_dir or model_dir).resolve().name
    title = f"{info.title if info else method} trained on {_dataset_title(dataset)}"
    if reconstruction:
        title += " (reconstruction)"
    model_index = _model_index(model_name, dataset, splits)
    metadata = {
        **_licence_metadata(license or "apache-2.0", license_name, license_link),
        "library_name": "transformers",
        "pipeline_tag": _pipeline_tag(method),
        "tags": [*TAGS, method, *(["reconstruction"] if reconstruction else []), "custom_code"],
        "datasets": _datasets(dataset_name, dataset),
        "metrics": ["recall"] if model_index else None,
        "model-index": model_index,
    }
    summary = f"Image-text retrieval model (`{method}`) for remote-sensing imagery, built with `rs_retrieval`."
    if info is not None:
        summary += f" {info.summary}\n\nMethod paper: {info.paper}. Official code: {info.code}."
    text = _template("model_card.md", template_dir).substitute(
        metadata=_front_matter(metadata),
        title=title,
        summary=summary,
        notice=RECONSTRUCTION_NOTICE if reconstruction else "",
        model_ref=repo_id or str(model_dir),
        measured=_measured_section(splits, dataset),
        reported=_reported_section(method, dataset),
        training=_training_section(model_dir, run_dir, run_metrics),
        data=_data_section(dataset),
        citation=_citation_section(info, dataset),
    )
    return re.sub(r"\n{3,}", "\n\n", text)


def write_model_card(path: str | Path, metrics: dict | None = None, dataset_name: str | None = None, method: str | None = None, **kwargs) -> Path:
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


# -- dataset cards ------------------------------------------------------------------------------

SPLIT_ORDER = ("train", "validation", "val", "valid", "test")
_SPLIT_FILE = re.compile(r"^(?P<split>[A-Za-z][A-Za-z0-9_]*)(?:-\d{5}-of-\d{5})?\.parquet$")


def parquet_splits(data_root: str | Path) -> dict[str, list[Path]]:
    """Parquet files per split under `data_root/data/` (`<split>-00000-of-00001.parquet` or `<split>.parquet`)."""
    data_dir = Path(data_root) / "data"
    files = sorted(data_dir.glob("*.parquet")) if data_dir.is_dir() else []
    if not files:
        raise CardError(f"no Parquet files in {data_dir} (expected data/<split>-00000-of-00001.parquet)")
    splits: dict[str, list[Path]] = {}
    for file in files:
        match = _SPLIT_FILE.match(file.name)
        if match is None:
            raise CardError(f"{file}: cannot tell the split from the name (expected <split>-NNNNN-of-NNNNN.parquet)")
        splits.setdefault(match.group("split"), []).append(file)
    order = {name: rank for rank, name in enumerate(SPLIT_ORDER)}
    return dict(sorted(splits.items(), key=lambda item: (order.get(item[0], len(order)), item[0])))


def _schema_lines(parquet_file: Path) -> list[str]:
    """Column types; `datasets` feature types (Image, ClassLabel names) where the file records them."""
    import pyarrow.parquet as pq

    schema = pq.ParquetFile(parquet_file).schema_arrow
    features = {}
    if schema.metadata and b"huggingface" in schema.metadata:
        features = json.loads(schema.metadata[b"huggingface"]).get("info", {}).get("features", {})
    lines = []
    for column in schema:
        feature = features.get(column.name) if isinstance(features, dict) else None
        kind = feature.get("_type") if isinstance(feature, dict) else None
        if kind == "ClassLabel":
            lines.append(f"- `{column.name}`: class label ({', '.join(feature.get('names', []))})")
        elif kind in ("Image", "Value"):
            lines.append(f"- `{column.name}`: `{kind if kind == 'Image' else feature.get('dtype')}`")
        else:
            lines.append(f"- `{column.name}`: `{column.type}`")
    return lines


def split_statistics(splits: dict[str, list[Path]]) -> dict[str, dict]:
    """Rows and captions per split, counted from the Parquet files (never copied from a paper)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    stats = {}
    for name, files in splits.items():
        rows = captions = 0
        for file in files:
            parquet = pq.ParquetFile(file)
            rows += parquet.metadata.num_rows
            if "captions" in parquet.schema_arrow.names:
                lengths = pc.list_value_length(parquet.read(columns=["captions"]).column("captions"))
                captions += int(pc.sum(lengths).as_py() or 0)
        stats[name] = {"rows": rows, "captions": captions}
    return stats


def _size_category(n: int) -> str:
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")]
    return next((label for bound, label in bounds if n < bound), "n>1M")


#: Hub licence ids a card's `license` may hold without `license_name` (the common subset; the
#: local test Hub accepts these).
HUB_LICENSE_IDS = (
    "apache-2.0", "mit", "bsd-3-clause", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "cc-by-nc-sa-4.0", "cc0-1.0",
    "gpl-3.0", "openrail", "other", "unknown",
)


def _stated_licence(text: str | None) -> dict:
    """Card licence fields for a licence stated in words: its Hub id when the text starts with one
    (`Apache-2.0 (generated data)`), else `other` named after the text; `unknown` when nothing is stated."""
    if not text:
        return {"license": "unknown"}
    first = text.split()[0].strip(",.;()").lower()
    if first in HUB_LICENSE_IDS:
        return {"license": first}
    return {"license": "other", "license_name": re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:64] or "stated-in-card"}


def _provenance_lines(export) -> list[str]:
    """One line per exported split: what `rs_retrieval.data` read it from."""
    lines = []
    for split, record in export.provenance.items():
        facts = ", ".join(f"{k} {v}" for k, v in record.items() if k not in ("title", "split") and v not in (None, "")) if isinstance(record, dict) else record
        lines.append(f"- {split}: {facts}")
    return lines


def render_dataset_card(data_root: str | Path, dataset_name: str | None = None, repo_id: str | None = None, template_dir: str | Path | None = None) -> str:
    """The dataset card for a Parquet export (`data/<split>-*.parquet`) of `dataset_name`.

    What the export's own README records (`rs_retrieval.data.export.read_export_card`: dataset
    name, title, licence, citation, provenance) fills what the package's dataset records do not
    know, so a card never says less than the export did; `dataset_name` defaults to the export's.
    """
    from ..data.export import read_export_card

    data_root = Path(data_root)
    export = read_export_card(data_root)
    dataset_name = dataset_name or (export.dataset if export else None) or data_root.resolve().name
    dataset = canonical_dataset(dataset_name)
    splits = parquet_splits(data_root)
    stats = split_statistics(splits)
    spec, notes = _dataset_spec(dataset), dataset_notes(dataset)
    title = spec.title if spec is not None else (export.title if export and export.title else dataset_name)
    total = sum(s["rows"] for s in stats.values())
    if notes is not None:
        licence_fields = {"license": notes.license_id, "license_name": notes.license_name}
    else:
        licence_fields = _stated_licence(spec.license if spec is not None else (export.license if export else None))
    metadata = {
        **licence_fields,
        "pretty_name": title,
        "task_categories": ["image-to-text", "text-to-image"],
        "tags": TAGS[:-1] + ["rs_retrieval"],
        "size_categories": [_size_category(total)],
        "configs": [{"config_name": "default", "data_files": [{"split": name, "path": f"data/{name}-*"} for name in splits]}],
    }
    split_rows = [[name, str(s["rows"]), str(s["captions"]) if s["captions"] else "-"] for name, s in stats.items()]
    split_text = _table(["split", "images (rows)", "captions"], split_rows)
    if notes is not None and notes.usual_splits:
        split_text += f"\n\nCounted from the files above. The split most retrieval papers use: {notes.usual_splits}."
    schema_text = "\n".join(_schema_lines(next(iter(splits.values()))[0]))
    if spec is not None:
        source = f"{spec.title}: {spec.citation}.\n\nRelease: {spec.homepage}. This copy was built with `rs_retrieval.data`."
    elif notes is not None and notes.source:
        source = notes.source
    else:
        source = "Not recorded." if export is None else "Exported with `rs_retrieval.data`."
    if export is not None:
        source += "\n\nProvenance recorded by the export:\n\n" + "\n".join(_provenance_lines(export))
    if notes is not None:
        licence = notes.license_statement + (
            "\n\nThe authors state no licence, so this card's `license` field is `unknown`; none is attached here."
            if notes.license_id == "unknown" else ""
        )
    elif spec is not None:
        licence = f"As published by the authors: {spec.license}."
    elif export is not None and export.license:
        licence = f"As recorded by the export: {export.license}."
    else:
        licence = "Not recorded: check with the data's authors."
    caveats = "\n".join(f"- {c}" for c in notes.caveats) if notes is not None else "None recorded."
    citation = spec.citation if spec is not None else (export.citation if export and export.citation else "Not recorded.")
    leakage = data_root / LEAKAGE_REPORT
    if leakage.is_file():
        report = json.loads(leakage.read_text(encoding="utf-8"))
        counts = ", ".join(f"{where}: {n}" for where, n in report.get("removed_count", {}).items()) or "none"
        caveats = (f"- Combined set ({', '.join(report.get('members', []))}): training and validation images within perceptual-hash "
                   f"distance {report.get('threshold')} of any member's test image were removed ({counts}); the list is `{LEAKAGE_REPORT}`.\n"
                   + ("" if caveats == "None recorded." else caveats))
    return _template("dataset_card.md", template_dir).substitute(
        metadata=_front_matter(metadata),
        title=title,
        summary=f"{title} image-caption pairs for cross-modal remote-sensing image-text retrieval, one row per image.",
        source=source,
        licence=licence,
        splits=split_text,
        schema=schema_text,
        caveats=caveats,
        dataset_ref=repo_id or str(data_root),
        citation=citation,
    )


def write_dataset_card(data_root: str | Path, dataset_name: str | None = None, repo_id: str | None = None, template_dir: str | Path | None = None) -> Path:
    """Write README.md (with the `configs` YAML that maps files to splits) into a Parquet export
    folder, keeping what the export's own README recorded (`render_dataset_card`)."""
    readme = Path(data_root) / "README.md"
    atomic_write_text(readme, render_dataset_card(data_root, dataset_name, repo_id=repo_id, template_dir=template_dir))
    return readme


# -- CLIP-family cards ---------------------------------------------------------------------------
# They differ from the cards of our methods: the checkpoint is plain transformers (no remote code),
# provenance comes from the converter's `conversion.json` (source file, SHA-256, activation and its
# evidence), and the reported numbers are those of the release (`convert/clip_zoo.py`).

FAMILY_NAMES = {"remoteclip": "RemoteCLIP", "georsclip": "GeoRSCLIP", "skyclip": "SkyCLIP"}
ACCEPTANCE_CHECK = (
    "Acceptance check (docs/clip-zeroshot.md#the-activation-check): not run by rs_retrieval, because the released weights were not available "
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


def _release_licence(release) -> str:
    licence = release.licence
    link = f" ({licence.link})" if licence.link else ""
    return (f"Card licence: `{licence.id}`{f' ({licence.name})' if licence.name else ''}{link}. {licence.statement} "
            "Check the terms before re-hosting or using the weights; the conversion code (rs_retrieval) is Apache-2.0.")


def render_clip_card(model_dir: Path, run_dir: Path | None, config: dict, metrics, dataset_name, repo_id, licence: tuple, template_dir) -> str:
    from ..convert.clip_zoo import CONVERSION_RECORD, RELEASES

    record = _read_json(model_dir / CONVERSION_RECORD) if (model_dir / CONVERSION_RECORD).is_file() else None
    release = RELEASES.get(record.get("release")) if record and record.get("release") else None
    run_metrics, metrics, dataset_name = _run_records(run_dir, metrics, dataset_name)
    dataset = canonical_dataset(dataset_name)
    splits = _measured_splits(run_dir, metrics)
    model_name = repo_id.rsplit("/", 1)[-1] if repo_id else (run_dir or model_dir).resolve().name
    kind = config.get("model_type", "clip")
    if release is not None:
        family = FAMILY_NAMES.get(release.family, release.family)
        title = f"{release.id}: {family} {release.arch} as a transformers CLIPModel"
        summary = f"The {family} {release.arch} checkpoint ({release.files[0]}), converted from open_clip to a plain transformers `CLIPModel` by `rs_retrieval`. Paper: {release.paper}."
    else:
        title = f"{kind.upper()} dual encoder" + (f" trained on {_dataset_title(dataset)}" if dataset else "")
        summary = f"A transformers `{'CLIPModel' if kind == 'clip' else 'SiglipModel'}` for remote-sensing image-text retrieval and zero-shot scene classification, built with `rs_retrieval`."
    license, license_name, license_link = licence
    if license is None and release is not None:  # the release's own licence unless the user names one
        license, license_name, license_link = release.licence.id, release.licence.name, release.licence.link
    model_index = _model_index(model_name, dataset, splits)
    metadata = {
        **_licence_metadata(license or "apache-2.0", license_name, license_link),
        "library_name": "transformers",
        "pipeline_tag": "zero-shot-image-classification",
        "tags": [*TAGS, kind, "zero-shot-image-classification", *([release.family] if release else [])],
        "datasets": _datasets(dataset_name, dataset),
        "metrics": ["recall"] if model_index else None,
        "model-index": model_index,
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
        data=_release_licence(release) if release else _data_section(dataset),
        citation=citation,
    )
    return re.sub(r"\n{3,}", "\n\n", text)
