"""Pieces every card shares: Markdown tables, YAML front matter, licence fields, the dataset and
training sections, and the `string.Template` files in the repository's `hub_cards/` (shipped in the
package as `rs_retrieval.card_templates`, `rs_retrieval.packaged`)."""

from __future__ import annotations

from pathlib import Path
from string import Template

import yaml

from ..packaged import packaged_files
from .dataset_notes import dataset_notes
from .runs import RECALL_KEYS, SPLIT_LABELS, CardError, read_json

FIGURES = {"training_curves.png": "Training curves", "retrieval_examples.png": "Retrieval examples (validation)"}
TAGS = ["remote-sensing", "image-text-retrieval", "cross-modal-retrieval", "rs_retrieval"]


def dataset_spec(name: str | None):
    if name is None:
        return None
    from ..data.dataset_loading import DATASETS

    return DATASETS.get(name)


def dataset_title(name: str | None) -> str:
    spec = dataset_spec(name)
    return spec.title if spec is not None else (name or "an unspecified dataset")


def model_index_metadata(model_name: str, dataset: str | None, splits: dict[str, dict]) -> list[dict] | None:
    indexed = {name: values for name, values in splits.items() if name in ("test", "validation")}
    if dataset is None or not indexed:
        return None
    results = []
    for split, values in indexed.items():
        metrics = [
            {"type": key, "name": key.replace("_", " "), "value": round(float(values[key]), 4)}
            for key in (*RECALL_KEYS, "mR")
        ]
        results.append(
            {
                "task": {"type": "image-text-retrieval", "name": "Image-text retrieval"},
                "dataset": {"type": dataset, "name": dataset_title(dataset), "split": split},
                "metrics": metrics,
            }
        )
    return [{"name": model_name, "results": results}]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def measured_section(splits: dict[str, dict], dataset: str | None) -> str:
    if not splits:
        return "No retrieval metrics were recorded for this checkpoint."
    rows = []
    for name, values in splits.items():
        queries = (
            f"{values['i2t_queries']} / {values['t2i_queries']}"
            if "i2t_queries" in values and "t2i_queries" in values
            else "-"
        )
        rows.append([SPLIT_LABELS.get(name, name), queries, *(f"{values[k]:.2f}" for k in (*RECALL_KEYS, "mR"))])
    header = ["split", "images / captions", "i2t R@1", "i2t R@5", "i2t R@10", "t2i R@1", "t2i R@5", "t2i R@10", "mR"]
    first = next(iter(splits.values()))
    protocol = (
        f" (protocol `{first['protocol']}`, ties `{first.get('tie_policy', '?')}`)" if "protocol" in first else ""
    )
    return (
        f"Dataset: {dataset_title(dataset)}. Recall in percent (i2t: best of the image's captions; t2i: per caption), "
        f"computed by `rs_retrieval.evaluation`{protocol} from this checkpoint; these are the values in the card's "
        "`model-index`.\n\n" + markdown_table(header, rows)
    )


def training_section(readme_dir: Path, run_dir: Path | None, metrics: dict | None) -> str:
    lines = []
    args = read_json(run_dir / "training_args.json") if run_dir and (run_dir / "training_args.json").is_file() else {}
    recipe = args.get("recipe", {})
    data, training = recipe.get("data", {}), recipe.get("training", {})
    facts = {
        "dataset": data.get("name") or data.get("path"),
        "epochs": training.get("epochs"),
        "max steps": training.get("max_steps"),
        "batch size (pairs)": training.get("batch_size"),
        "optimizer": training.get("optimizer"),
        "learning rate": training.get("lr"),
        "lr schedule": training.get("lr_scheduler"),
        "mixed precision": args.get("mixed_precision"),
        "processes": args.get("num_processes"),
        "seed": training.get("seed"),
    }
    if metrics:
        facts.update(
            {
                "checkpoint selection": metrics.get("selection"),
                "evaluation protocol": metrics.get("protocol"),
                "best epoch": metrics.get("best_epoch"),
                "optimizer steps": metrics.get("global_step"),
                "throughput (pairs/s)": None
                if metrics.get("train_pairs_per_s") is None
                else f"{metrics['train_pairs_per_s']:.1f}",
            }
        )
    lines += [f"- {key}: {value}" for key, value in facts.items() if value is not None]
    if not lines:
        lines.append("No training recipe or run summary was recorded with this model.")
    if (readme_dir / "training_args.json").is_file():
        lines.append("- full recipe: `training_args.json` in this repository")
    figures = [f"![{title}]({name})" for name, title in FIGURES.items() if (readme_dir / name).is_file()]
    return "\n".join(lines + ([""] + figures if figures else []))


def data_section(dataset: str | None) -> str:
    spec, notes = dataset_spec(dataset), dataset_notes(dataset) if dataset else None
    if spec is None and notes is None:
        return "The training data is not recorded; check its licence before using the weights."
    lines = [f"Trained on {dataset_title(dataset)}."]
    if notes is not None:
        lines.append(f"Licence of the data as published: {notes.license_statement}")
    elif spec is not None:
        lines.append(f"Licence of the data as published: {spec.license}")
    lines.append(
        "The weights were derived from this data, so its terms apply to their use as well. The card's `license` "
        "field covers the code in this repository (rs_retrieval, Apache-2.0)."
    )
    return "\n\n".join(lines)


def card_template(name: str, template_dir: str | Path | None) -> Template:
    """A card template from `template_dir`, or the one packaged with rs_retrieval."""
    path = (
        Path(template_dir) / name if template_dir is not None else packaged_files("rs_retrieval.card_templates") / name
    )
    if not path.is_file():
        raise CardError(f"card template {path} not found")
    return Template(path.read_text(encoding="utf-8"))


def front_matter(metadata: dict) -> str:
    return yaml.safe_dump(
        {k: v for k, v in metadata.items() if v is not None}, sort_keys=False, allow_unicode=True
    ).rstrip("\n")


def licence_metadata(license: str, license_name: str | None, license_link: str | None) -> dict:
    """The card's licence fields; the Hub refuses `other` without a `license_name`."""
    if license == "other" and not license_name:
        raise CardError(
            "licence 'other' needs a licence name (--license-name, e.g. "
            "my-org-research-only) and ideally a link (--license-link)"
        )
    return {"license": license, "license_name": license_name, "license_link": license_link}


def datasets_metadata(dataset_name: str | None, dataset: str | None) -> list[str] | None:
    """`datasets:` of a model card: the Hub id the recipe loaded, else the dataset's canonical name."""
    if dataset_name and "/" in dataset_name:
        return [dataset_name]
    return [dataset] if dataset else None


#: Hub licence ids a card's `license` may hold without `license_name` (the common subset; the
#: local test Hub accepts these).
HUB_LICENSE_IDS = (
    "apache-2.0",
    "mit",
    "bsd-3-clause",
    "cc-by-4.0",
    "cc-by-sa-4.0",
    "cc-by-nc-4.0",
    "cc-by-nc-sa-4.0",
    "cc0-1.0",
    "gpl-3.0",
    "openrail",
    "other",
    "unknown",
)
