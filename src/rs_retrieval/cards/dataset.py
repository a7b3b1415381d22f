"""Dataset cards for Parquet exports: the source, the licence as the authors published it, split
sizes counted from the Parquet files being published, the schema and known caveats."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..data.combined import LEAKAGE_REPORT
from ..fileio import atomic_write_text
from ..models.records import canonical_dataset
from .dataset_notes import dataset_notes
from .runs import CardError
from .sections import HUB_LICENSE_IDS, TAGS, card_template, dataset_spec, front_matter, markdown_table

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


def _stated_licence(text: str | None) -> dict:
    """Card licence fields for a licence stated in words: its Hub id when the text starts with one
    (`Apache-2.0 (generated data)`), else `other` named after the text; `unknown` when nothing is stated."""
    if not text:
        return {"license": "unknown"}
    first = text.split()[0].strip(",.;()").lower()
    if first in HUB_LICENSE_IDS:
        return {"license": first}
    return {
        "license": "other",
        "license_name": re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:64] or "stated-in-card",
    }


def _provenance_lines(export) -> list[str]:
    """One line per exported split: what `rs_retrieval.data` read it from."""
    lines = []
    for split, record in export.provenance.items():
        facts = (
            ", ".join(f"{k} {v}" for k, v in record.items() if k not in ("title", "split") and v not in (None, ""))
            if isinstance(record, dict)
            else record
        )
        lines.append(f"- {split}: {facts}")
    return lines


def render_dataset_card(
    data_root: str | Path,
    dataset_name: str | None = None,
    repo_id: str | None = None,
    template_dir: str | Path | None = None,
) -> str:
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
    spec, notes = dataset_spec(dataset), dataset_notes(dataset)
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
        "configs": [
            {"config_name": "default", "data_files": [{"split": name, "path": f"data/{name}-*"} for name in splits]}
        ],
    }
    split_rows = [[name, str(s["rows"]), str(s["captions"]) if s["captions"] else "-"] for name, s in stats.items()]
    split_text = markdown_table(["split", "images (rows)", "captions"], split_rows)
    if notes is not None and notes.usual_splits:
        split_text += f"\n\nCounted from the files above. The split most retrieval papers use: {notes.usual_splits}."
    schema_text = "\n".join(_schema_lines(next(iter(splits.values()))[0]))
    if spec is not None:
        source = (
            f"{spec.title}: {spec.citation}.\n\nRelease: {spec.homepage}. "
            "This copy was built with `rs_retrieval.data`."
        )
    elif notes is not None and notes.source:
        source = notes.source
    else:
        source = "Not recorded." if export is None else "Exported with `rs_retrieval.data`."
    if export is not None:
        source += "\n\nProvenance recorded by the export:\n\n" + "\n".join(_provenance_lines(export))
    if notes is not None:
        licence = notes.license_statement + (
            "\n\nThe authors state no licence, so this card's `license` field is `unknown`; none is attached here."
            if notes.license_id == "unknown"
            else ""
        )
    elif spec is not None:
        licence = f"As published by the authors: {spec.license}."
    elif export is not None and export.license:
        licence = f"As recorded by the export: {export.license}."
    else:
        licence = "Not recorded: check with the data's authors."
    caveats = "\n".join(f"- {c}" for c in notes.caveats) if notes is not None else "None recorded."
    citation = (
        spec.citation if spec is not None else (export.citation if export and export.citation else "Not recorded.")
    )
    leakage = data_root / LEAKAGE_REPORT
    if leakage.is_file():
        report = json.loads(leakage.read_text(encoding="utf-8"))
        counts = ", ".join(f"{where}: {n}" for where, n in report.get("removed_count", {}).items()) or "none"
        caveats = (
            f"- Combined set ({', '.join(report.get('members', []))}): "
            "training and validation images within perceptual-hash "
            f"distance {report.get('threshold')} of any member's test image "
            f"were removed ({counts}); the list is `{LEAKAGE_REPORT}`.\n"
            + ("" if caveats == "None recorded." else caveats)
        )
    return card_template("dataset_card.md", template_dir).substitute(
        metadata=front_matter(metadata),
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


def write_dataset_card(
    data_root: str | Path,
    dataset_name: str | None = None,
    repo_id: str | None = None,
    template_dir: str | Path | None = None,
) -> Path:
    """Write README.md (with the `configs` YAML that maps files to splits) into a Parquet export
    folder, keeping what the export's own README recorded (`render_dataset_card`)."""
    readme = Path(data_root) / "README.md"
    atomic_write_text(readme, render_dataset_card(data_root, dataset_name, repo_id=repo_id, template_dir=template_dir))
    return readme
