"""Card metadata per card kind: the four method cards and a CLIP run card carry `pipeline_tag`,
`datasets`, top-level `metrics` and the test split in `model-index`; each passes the test Hub's
validation and round-trips through huggingface_hub's `ModelCard` / `ModelCardData`. (Release,
dataset, metric and Space cards are validated by the Hub when they are pushed: see
test_clip_conversion.py, test_hub_dataset_export.py, test_evaluate_metric.py, test_hub_space.py.)"""

import json

import pytest
import yaml
from hub_server import validate_card_yaml
from huggingface_hub import ModelCard, ModelCardData

from rs_retrieval.cards import render_model_card


def recalls(base):
    values = {
        key: base + i for i, key in enumerate(("i2t_R@1", "i2t_R@5", "i2t_R@10", "t2i_R@1", "t2i_R@5", "t2i_R@10"))
    }
    return {**values, "mR": sum(values.values()) / 6, "i2t_queries": 4, "t2i_queries": 20}


def run_folder(root, model_type):
    """A run as the trainer leaves it: model/config.json, validation metrics, test metrics beside them."""
    (root / "model").mkdir(parents=True)
    (root / "model" / "config.json").write_text(json.dumps({"model_type": model_type}))
    (root / "metrics.json").write_text(json.dumps({"validation": recalls(10.0)}))
    (root / "test_metrics.json").write_text(json.dumps({"none": recalls(30.0)}))
    (root / "training_args.json").write_text(json.dumps({"recipe": {"data": {"name": "rsitmd"}}}))
    return root


def check_card(text):
    """The test Hub's validation, and huggingface_hub's parse of the metadata (model-index into
    EvalResults and back) giving the same YAML."""
    meta = yaml.safe_load(text.split("---\n")[1])
    assert validate_card_yaml(text) == []
    data = ModelCard(text).data
    assert isinstance(data, ModelCardData) and len(data.eval_results) == 14  # 2 splits x 7 metrics
    assert yaml.safe_load(data.to_yaml())["model-index"] == meta["model-index"]
    return meta


@pytest.mark.parametrize(
    "method, pipeline_tag",
    [
        ("amfmn", "zero-shot-image-classification"),
        ("galr", "feature-extraction"),
        ("msa", "zero-shot-image-classification"),
        ("cmpagl", "zero-shot-image-classification"),
    ],
)
def test_method_cards_carry_pipeline_tag_datasets_and_metrics(tmp_path, method, pipeline_tag):
    meta = check_card(render_model_card(run_folder(tmp_path, method), repo_id=f"org/{method}-rsitmd"))
    assert meta["pipeline_tag"] == pipeline_tag and meta["datasets"] == ["rsitmd"] and meta["metrics"] == ["recall"]
    assert meta["license"] == "apache-2.0" and meta["library_name"] == "transformers"
    splits = {result["dataset"]["split"]: result for result in meta["model-index"][0]["results"]}
    assert set(splits) == {"test", "validation"}
    assert {m["type"]: m["value"] for m in splits["test"]["metrics"]}["i2t_R@1"] == 30.0


def test_clip_run_card_indexes_the_published_test_metrics(tmp_path):
    meta = check_card(render_model_card(run_folder(tmp_path, "clip"), repo_id="org/clip-rsitmd", license="mit"))
    assert (
        meta["pipeline_tag"] == "zero-shot-image-classification"
        and meta["datasets"] == ["rsitmd"]
        and meta["metrics"] == ["recall"]
    )
    assert meta["license"] == "mit"
    test = next(r for r in meta["model-index"][0]["results"] if r["dataset"]["split"] == "test")
    assert {m["type"]: m["value"] for m in test["metrics"]}["t2i_R@10"] == 35.0


def test_hub_dataset_ids_are_kept_as_given(tmp_path):
    meta = check_card(render_model_card(run_folder(tmp_path, "amfmn"), dataset_name="my-org/rsitmd-clean"))
    assert meta["datasets"] == ["my-org/rsitmd-clean"]
