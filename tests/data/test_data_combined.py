"""Combined training sets (RET-2, RET-3) from release-format fixtures with planted cross-set test duplicates."""

from __future__ import annotations

import json

import datasets
import pytest
from fixtures_data import PLANTED, STYLES, make_combined_members

from rs_retrieval.cards import render_dataset_card
from rs_retrieval.data import load_dataset, save_arrow
from rs_retrieval.data.combined import LEAKAGE_REPORT, leakage_report
from rs_retrieval.data.errors import DatasetNotFoundError
from rs_retrieval.data.export import export_parquet


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    return make_combined_members(tmp_path_factory.mktemp("members"))


def _names(ds) -> set[tuple[str, str, str]]:
    return set(zip(ds["dataset"], ds["source_split"], ds["filename"]))


def test_ret3_drops_every_planted_test_duplicate_and_keeps_the_rest(members):
    combined = load_dataset("ret-3", data_dir=members)
    assert list(combined) == ["train", "val", "test_rsicd", "test_rsitmd", "test_ucm_captions"]
    expected = {
        (m, split, n)
        for m in ("rsicd", "rsitmd", "ucm_captions")
        for split in ("train", "val")
        for n in STYLES[m][1].get(split, [])
    }
    kept = _names(combined["train"]) | _names(combined["val"])
    assert kept == expected - set(PLANTED)
    for member in ("rsicd", "rsitmd", "ucm_captions"):  # test splits untouched
        assert combined[f"test_{member}"]["filename"] == STYLES[member][1]["test"]
    row = combined["train"][0]
    assert len(row["captions"]) == 5 and row["captions"][0] == f"caption 0 of {row['filename']} ’"
    assert combined["train"].features["scene"].names == sorted(set(combined["train"].features["scene"].names))
    report = leakage_report(combined)
    removed = {(e["dataset"], e["split"], e["id"].split("/")[-1]): e["duplicate_of"] for e in report["removed"]}
    assert removed == {key: f"{m}/test/{n}" for key, ((m, n), _) in PLANTED.items()}
    assert report["removed_count"] == {"rsicd/train": 1, "rsicd/val": 1, "rsitmd/train": 1, "ucm_captions/train": 1}


def test_ret2_from_name_equals_dir_pairs_and_reaches_exports_and_cards(members, tmp_path):
    spec = f"rsicd={members / 'rsicd'},rsitmd={members / 'rsitmd'}"
    combined = load_dataset("rsicd+rsitmd", data_dir=spec)
    assert list(combined) == ["train", "val", "test_rsicd", "test_rsitmd"]
    assert ("rsitmd", "train", "boat_1.tif") not in _names(combined["train"]) and (
        "rsicd",
        "train",
        "beach_7.jpg",
    ) not in _names(combined["train"])
    assert ("rsicd", "val", "00002.jpg") in _names(combined["val"])  # its UCM original is not a member of RET-2
    out = export_parquet(combined, tmp_path / "ret2")
    report = json.loads((out / LEAKAGE_REPORT).read_text())
    assert report["members"] == ["rsicd", "rsitmd"] and len(report["removed"]) == 2
    assert LEAKAGE_REPORT in (out / "README.md").read_text()
    assert f"the list is `{LEAKAGE_REPORT}`" in render_dataset_card(out, "ret-2")
    reloaded = datasets.load_from_disk(str(save_arrow(combined, tmp_path / "arrow")))
    assert leakage_report(reloaded) == leakage_report(combined) and (tmp_path / "arrow" / LEAKAGE_REPORT).is_file()


def test_combination_errors_name_the_problem(members):
    with pytest.raises(DatasetNotFoundError, match=r"no folder for member\(s\) \['ucm_captions'\]"):
        load_dataset("ret-3", data_dir={"rsicd": members / "rsicd", "rsitmd": members / "rsitmd"})
    with pytest.raises(DatasetNotFoundError, match="joins two or more different datasets"):
        load_dataset("rsicd+rsicd", data_dir=members)
