"""The quickstart scores validation (model selection) and the test split under the recipe's
`evaluation:` protocol and tie policy, not the package defaults."""

import json

from helpers import fresh_accelerate_state  # noqa: F401  (autouse fixture: accelerate state is per process)
from tiny_methods import TINY_RECIPE_OVERRIDES

from rs_retrieval.evaluation.protocols import DEFAULT_PROTOCOL
from rs_retrieval.quickstart import run_quickstart


def test_quickstart_evaluates_under_the_recipes_protocol(tmp_path, one_thread, capsys):
    data = [
        f"data.cache_dir={tmp_path / 'synth'}",
        "data.options={image_size: 32, train_size: 20, val_size: 6, test_size: 12}",
    ]
    training = [
        "training.batch_size=10",
        "training.max_steps=2",
        "training.eval_batch_size=20",
        "training.mixed_precision=no",
        "training.checkpoint_every_steps=null",
        "training.report_to=none",
    ]
    evaluation = ["evaluation.protocol=dedup_image", "evaluation.tie_policy=pessimistic"]
    assert DEFAULT_PROTOCOL != "dedup_image"
    summary = run_quickstart(
        "amfmn_synth", tmp_path / "run", overrides=TINY_RECIPE_OVERRIDES["amfmn"] + data + training + evaluation
    )
    used = lambda metrics: (metrics["protocol"], metrics["tie_policy"])
    assert {name: used(metrics) for name, metrics in summary["test_metrics"].items()} == dict.fromkeys(
        ("none", "galr_mr"), ("dedup_image", "pessimistic")
    )
    assert json.loads((tmp_path / "run" / "test_metrics.json").read_text()) == summary["test_metrics"]
    run_metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert run_metrics["protocol"] == "dedup_image" and used(run_metrics["validation"]) == (
        "dedup_image",
        "pessimistic",
    )
