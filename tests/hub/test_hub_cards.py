"""Model and dataset cards: measured numbers in model-index, labelled paper numbers, licences as published."""

import json
import math
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hub_server import import_tiny_package, make_tiny_model, validate_card_yaml

from rs_retrieval.cards import (
    CardError,
    metric_splits,
    parquet_splits,
    render_model_card,
    write_dataset_card,
    write_model_card,
)
from rs_retrieval.models import get_method, list_methods
from rs_retrieval.models.records import canonical_dataset

VALIDATION = {
    "i2t_R@1": 12.5,
    "i2t_R@5": 37.5,
    "i2t_R@10": 50.0,
    "t2i_R@1": 7.5,
    "t2i_R@5": 30.0,
    "t2i_R@10": 45.0,
    "mR": 30.416666666666668,
    "rsum": 182.5,
    "i2t_queries": 8,
    "t2i_queries": 40,
    "protocol": "amfmn",
    "tie_policy": "optimistic",
}


def front_matter(text):
    match = re.match(r"^---\n(.*?)\n---\n", text, flags=re.DOTALL)
    assert match, "card has no YAML block"
    return yaml.safe_load(match.group(1))


def section(text, title):
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    import_tiny_package(tmp_path_factory.mktemp("pkg"))
    run = tmp_path_factory.mktemp("run")
    model, processor = make_tiny_model()
    model.save_pretrained(run / "model")
    processor.save_pretrained(run / "model")
    metrics = {
        "selection": "best validation mR",
        "best_epoch": 3,
        "best_step": 120,
        "validation": VALIDATION,
        "last_validation": {**VALIDATION, "i2t_R@1": 10.0, "mR": 30.0},
        "global_step": 160,
        "train_pairs_per_s": 321.5,
    }
    (run / "metrics.json").write_text(json.dumps(metrics))
    recipe = {
        "data": {"name": "rsitmd"},
        "training": {"epochs": 4, "batch_size": 32, "lr": 0.0002, "optimizer": "adam", "seed": 7},
    }
    (run / "training_args.json").write_text(
        json.dumps({"recipe": recipe, "num_processes": 1, "mixed_precision": "no"})
    )
    return run


def test_model_card_indexes_the_measured_metrics_only(run_dir):
    readme = write_model_card(run_dir, method="amfmn")
    assert readme == run_dir / "model" / "README.md"
    text = readme.read_text()
    meta = front_matter(text)
    assert validate_card_yaml(text) == []
    assert meta["license"] == "apache-2.0" and {"amfmn", "custom_code", "remote-sensing"} <= set(meta["tags"])
    (result,) = meta["model-index"][0]["results"]  # validation only: last_validation is not indexed
    assert result["dataset"] == {"type": "rsitmd", "name": "RSITMD", "split": "validation"}
    indexed = {m["type"]: m["value"] for m in result["metrics"]}
    assert indexed == {
        k: round(VALIDATION[k], 4) for k in ("i2t_R@1", "i2t_R@5", "i2t_R@10", "t2i_R@1", "t2i_R@5", "t2i_R@10", "mR")
    }
    measured = section(text, "Results measured on this checkpoint")
    assert "(protocol `amfmn`, ties `optimistic`)" in measured
    assert (
        "| validation (selected checkpoint) | 8 / 40 | 12.50 | 37.50 | 50.00 | 7.50 | 30.00 | 45.00 | 30.42 |"
        in measured
    )
    assert "| validation (last evaluation) | 8 / 40 | 10.00 |" in measured
    training = section(text, "Training")
    assert "- epochs: 4" in training and "- best epoch: 3" in training and "- throughput (pairs/s): 321.5" in training


def test_paper_numbers_are_labelled_and_kept_out_of_model_index(run_dir):
    text = render_model_card(run_dir, method="amfmn")
    reported = section(text, "Reported in the paper")
    assert "copied, not reproduced by this checkpoint" in reported
    assert "| AMFMN-sim | RSITMD | 10.63 | 24.78 | 41.81 | 11.51 | 34.69 | 54.87 | 29.72 |" in reported
    assert "RSICD" not in reported  # only the run's dataset
    assert (
        "Source (RSITMD): AMFMN paper (Yuan et al., TGRS 2021/22), Table II; fold averages (k-fold verify protocol)."
        in reported
    )
    synth = section(render_model_card(run_dir, method="amfmn", dataset_name="rs_synth"), "Reported in the paper")
    assert synth.strip().startswith("No published numbers exist for rs_synth") and synth.count("| AMFMN-") == 12
    values = {m["value"] for r in front_matter(text)["model-index"][0]["results"] for m in r["metrics"]}
    assert not values & {29.72, 10.63, 24.78}


def test_printed_mean_recall_conflict_is_the_only_one_in_the_table():
    rows = [r for name in list_methods() for r in get_method(name).reported_results]
    conflicts = [(r.variant, r.dataset) for r in rows if abs(r.mean_recall - r.printed_mr) > 0.011]
    assert conflicts == [("AMFMN-soft", "rsicd")]  # AMFMN Table II prints 16.02; its six recalls average 16.16
    assert len(get_method("amfmn").reported()) == 12 and len(get_method("galr").reported("RSITMD")) == 2
    assert get_method("cmpagl").reported() == []
    assert [canonical_dataset(n) for n in ("RSITMD", "org/rsicd", "UCM-Captions", "Sydney_Captions", "mine")] == [
        "rsitmd",
        "rsicd",
        "ucm_captions",
        "sydney_captions",
        "mine",
    ]


def test_cmpagl_card_says_it_is_a_reconstruction(run_dir):
    text = render_model_card(run_dir, method="cmpagl", dataset_name="rsicd")
    assert "reconstruction" in front_matter(text)["tags"]
    assert (
        "\n# CMPAGL (Cross-Modal Pre-Aligned method with Global "
        "and Local information) trained on RSICD (reconstruction)\n" in text
    )
    assert "**This model is a reconstruction, not the authors' model.**" in text
    assert "No per-dataset numbers are known" in section(text, "Reported in the paper")
    assert "promise not to use it commercially" in section(text, "Data and licence")


def test_card_without_metrics_or_dataset_has_no_model_index(tmp_path, run_dir):
    model, processor = make_tiny_model()
    model.save_pretrained(tmp_path)
    text = render_model_card(tmp_path)
    assert "model-index" not in front_matter(text)
    assert "No retrieval metrics were recorded" in text and "tiny_hub_test" in text


def test_figures_beside_the_readme_are_linked(tmp_path):
    model, _ = make_tiny_model()
    model.save_pretrained(tmp_path)
    (tmp_path / "training_curves.png").write_bytes(b"png")
    assert "![Training curves](training_curves.png)" in render_model_card(tmp_path)


def test_bad_metrics_raise_naming_the_section():
    with pytest.raises(CardError, match="'test' lacks finite numeric values for \\['mR'\\]"):
        metric_splits({"test": {k: 1.0 for k in ("i2t_R@1", "i2t_R@5", "i2t_R@10", "t2i_R@1", "t2i_R@5", "t2i_R@10")}})
    with pytest.raises(CardError, match="t2i_R@1"):
        metric_splits({"validation": {**VALIDATION, "t2i_R@1": math.nan}})
    assert list(metric_splits(VALIDATION, flat_split="test")) == ["test"]
    with pytest.raises(CardError, match="holds no saved model"):
        write_model_card("/nonexistent/run")


def write_export(root, splits):
    (root / "data").mkdir(parents=True)
    for name, (rows, captions_per_row) in splits.items():
        table = pa.table(
            {
                "filename": [f"{name}_{i}.tif" for i in range(rows)],
                "captions": [[f"caption {j}" for j in range(captions_per_row)] for _ in range(rows)],
                "scene": [i % 2 for i in range(rows)],
            }
        )
        features = {"scene": {"_type": "ClassLabel", "names": ["harbour", "forest"]}}  # as `datasets` records them
        table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
        pq.write_table(table, root / "data" / f"{name}-00000-of-00001.parquet")
    return root


def test_dataset_card_counts_splits_and_states_the_published_licence(tmp_path):
    root = write_export(tmp_path / "rsitmd", {"train": (6, 5), "test": (3, 5)})
    text = write_dataset_card(root, "RSITMD", repo_id="org/rsitmd").read_text()
    meta = front_matter(text)
    assert validate_card_yaml(text) == []
    assert meta["license"] == "unknown" and "license_name" not in meta
    assert meta["configs"] == [
        {
            "config_name": "default",
            "data_files": [{"split": "train", "path": "data/train-*"}, {"split": "test", "path": "data/test-*"}],
        }
    ]
    assert "| train | 6 | 30 |" in section(text, "Splits in this repository") and "| test | 3 | 15 |" in text
    assert "no LICENSE file" in section(text, "Licence") and "none is attached here" in section(text, "Licence")
    assert "20 blank captions" in section(text, "Caveats")
    assert "- `captions`: `list<element: string>`" in section(text, "Schema")
    assert "- `scene`: class label (harbour, forest)" in section(text, "Schema")
    assert 'load_dataset("org/rsitmd")' in text
    assert sorted(p.name for p in root.iterdir()) == ["README.md", "data"]  # atomic write left no temp file


def test_rsicd_card_uses_other_with_a_named_licence(tmp_path):
    text = write_dataset_card(write_export(tmp_path / "x", {"test": (2, 5)}), "rsicd").read_text()
    meta = front_matter(text)
    assert (meta["license"], meta["license_name"]) == ("other", "rsicd-research-non-commercial")
    assert validate_card_yaml(text) == [] and "promise not to use it commercially" in text


def test_unknown_dataset_and_badly_named_files(tmp_path):
    text = write_dataset_card(write_export(tmp_path / "mine", {"train": (1, 5)}), "my_data").read_text()
    assert front_matter(text)["license"] == "unknown" and "Not recorded" in section(text, "Source")
    (tmp_path / "mine" / "data" / "oops-part.parquet").write_bytes(b"")
    with pytest.raises(CardError, match="oops-part.parquet: cannot tell the split"):
        parquet_splits(tmp_path / "mine")
    with pytest.raises(CardError, match="no Parquet files"):
        parquet_splits(tmp_path / "empty")
