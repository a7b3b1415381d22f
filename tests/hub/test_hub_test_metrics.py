"""A published run carries its test metrics: `test_metrics.json` in the repository and the test
split (un-reranked) in the card's model-index next to validation."""

import json

import pytest
import yaml
from tiny_methods import tiny_methods

from rs_retrieval.hub.publish import stage_model


def recalls(base: float) -> dict:
    values = {
        key: base + i for i, key in enumerate(("i2t_R@1", "i2t_R@5", "i2t_R@10", "t2i_R@1", "t2i_R@5", "t2i_R@10"))
    }
    return {**values, "mR": sum(values.values()) / 6, "i2t_queries": 4, "t2i_queries": 20}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    model, processor, _, _ = tiny_methods()["amfmn"]
    run = tmp_path_factory.mktemp("run")
    model.save_pretrained(run / "model")
    processor.save_pretrained(run / "model")
    (run / "metrics.json").write_text(json.dumps({"validation": recalls(10.0)}))
    return run


def model_index(staging) -> dict:
    meta = yaml.safe_load((staging / "README.md").read_text().split("---\n")[1])
    return {
        r["dataset"]["split"]: {m["type"]: m["value"] for m in r["metrics"]} for r in meta["model-index"][0]["results"]
    }


@pytest.mark.parametrize("layout", ["evaluate_retrieval", "cli_output", "flat"])
def test_test_metrics_are_published_and_indexed(tmp_path, run, layout):
    test, reranked = recalls(30.0), recalls(40.0)
    payload = {
        "evaluate_retrieval": {"none": test, "galr_mr": reranked},  # what the quickstart writes
        "cli_output": {
            "model": "m",
            "dataset": "rsitmd",
            "split": "test",
            "results": {"none": test, "galr_mr": reranked},
        },
        "flat": test,
    }[layout]
    (run / "test_metrics.json").write_text(json.dumps(payload))
    staging = stage_model(run, tmp_path / "staging", dataset_name="rsitmd", repo_id="org/amfmn-rsitmd")
    assert json.loads((staging / "test_metrics.json").read_text()) == payload
    indexed = model_index(staging)
    assert indexed["test"]["i2t_R@1"] == 30.0 and indexed["test"]["mR"] == round(test["mR"], 4)
    assert indexed["validation"]["i2t_R@1"] == 10.0 and set(indexed) == {"test", "validation"}
    card = (staging / "README.md").read_text()
    assert "| test | 4 / 20 | 30.00 |" in card
    assert ("| test, galr_mr re-rank | 4 / 20 | 40.00 |" in card) == (layout != "flat")
