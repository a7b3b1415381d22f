"""Write datasets to disk atomically: Parquet in the Hub layout, or `save_to_disk` Arrow.

The Parquet layout is the one `DatasetDict.push_to_hub` writes (`data/<split>-00000-of-00001.parquet`
plus a README whose YAML maps the files to splits), so `datasets.load_dataset(out_dir)` reads it
back and the folder can be uploaded to the Hub unchanged. Images are embedded as bytes.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..fileio import atomic_directory
from .combined import LEAKAGE_REPORT, leakage_report
from .schema import split_info

if TYPE_CHECKING:
    import datasets


def _as_dict(dataset: datasets.Dataset | datasets.DatasetDict) -> dict[str, datasets.Dataset]:
    return dict(dataset) if hasattr(dataset, "keys") else {str(dataset.split or "train"): dataset}


#: What `_card` writes for a missing licence or citation.
NOT_STATED = "not stated"


def _card(splits: dict[str, datasets.Dataset]) -> str:
    """A README with the YAML `configs` block that maps Parquet files to splits, plus provenance
    (read back by `read_export_card`)."""
    yaml = ["---", "configs:", "- config_name: default", "  data_files:"]
    for name in splits:
        yaml += [f"  - split: {name}", f"    path: data/{name}-*"]
    yaml.append("---")
    first = next(iter(splits.values())).info
    body = ["", f"# {split_info(next(iter(splits.values()))).get('title', 'rs_retrieval dataset')}", ""]
    body += [f"- {name}: {len(ds)} rows" for name, ds in splits.items()]
    body += ["", f"Licence: {first.license or NOT_STATED}", "", f"Citation: {first.citation or NOT_STATED}", ""]
    report = leakage_report(splits)
    if report is not None:
        counts = ", ".join(f"{where}: {n}" for where, n in report["removed_count"].items()) or "none"
        body += [
            (
                "Leakage removed: training and validation images within "
                f"perceptual-hash distance {report['threshold']} of any "
                f"member's test image were dropped ({counts}); the full list is `{LEAKAGE_REPORT}`."
            ),
            "",
        ]
    provenance = {
        name: {key: value for key, value in split_info(ds).items() if key != "leakage"} for name, ds in splits.items()
    }
    body += ["Provenance (rs_retrieval `split_info`):", "", "```json", json.dumps(provenance, indent=1), "```", ""]
    return "\n".join(yaml + body)


@dataclass(frozen=True)
class ExportCard:
    """What an export's own README records (None where it says nothing)."""

    dataset: str | None
    title: str | None
    license: str | None
    citation: str | None
    provenance: dict


def read_export_card(folder: str | os.PathLike) -> ExportCard | None:
    """The record `export_parquet` wrote into `folder/README.md`; None when the README is absent or
    was not written by it (no provenance block)."""
    readme = Path(folder) / "README.md"
    text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    block = re.search(
        r"^Provenance \(rs_retrieval `split_info`\):\n\n```json\n(.*?)\n```", text, flags=re.MULTILINE | re.DOTALL
    )
    if block is None:
        return None
    try:
        provenance = json.loads(block.group(1))
    except json.JSONDecodeError:
        return None
    first = next(iter(provenance.values()), {}) if isinstance(provenance, dict) and provenance else {}
    stated = {}
    for key in ("Licence", "Citation"):
        match = re.search(rf"^{key}: (.+)$", text, flags=re.MULTILINE)
        stated[key] = match.group(1).strip() if match and match.group(1).strip() != NOT_STATED else None
    title = re.search(r"^# (.+)$", text, flags=re.MULTILINE)
    first = first if isinstance(first, dict) else {}
    return ExportCard(
        first.get("dataset"),
        title.group(1).strip() if title else first.get("title"),
        stated["Licence"],
        stated["Citation"],
        provenance,
    )


def _write_leakage_report(splits: dict[str, datasets.Dataset], folder: Path) -> None:
    report = leakage_report(splits)
    if report is not None:
        (folder / LEAKAGE_REPORT).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


def export_parquet(
    dataset: datasets.Dataset | datasets.DatasetDict,
    out_dir: str | os.PathLike,
    overwrite: bool = False,
    rows_per_group: int = 100,
) -> Path:
    """One Parquet file per split under `out_dir/data/`, images embedded, written atomically."""
    from datasets.table import embed_table_storage

    splits = _as_dict(dataset)

    def fill(work: Path) -> None:
        (work / "data").mkdir()
        for name, ds in splits.items():
            embedded = ds.with_format("arrow").map(
                embed_table_storage, batched=True, batch_size=rows_per_group, keep_in_memory=True, desc=f"embed {name}"
            )
            embedded.to_parquet(str(work / "data" / f"{name}-00000-of-00001.parquet"), batch_size=rows_per_group)
        (work / "README.md").write_text(_card(splits), encoding="utf-8")
        _write_leakage_report(splits, work)

    return atomic_directory(out_dir, fill, overwrite)


def save_arrow(
    dataset: datasets.Dataset | datasets.DatasetDict, out_dir: str | os.PathLike, overwrite: bool = False
) -> Path:
    """`save_to_disk` (images embedded by `datasets`), written atomically; reload with `load_from_disk`."""

    def fill(work: Path) -> None:
        dataset.save_to_disk(str(work))
        _write_leakage_report(_as_dict(dataset), work)

    return atomic_directory(out_dir, fill, overwrite)
