"""`evaluate --dataset rs_synth` evaluates the data the model's run used, says so, and the metrics
file names the data (name, split, size, fingerprint)."""

import json

import pytest
from app_fixtures import save_tiny_amfmn

from rs_retrieval.cli import main
from rs_retrieval.data import load_dataset
from rs_retrieval.data.report import describe_data
from rs_retrieval.training.recipe import dump_recipe, load_recipe

SIZES = {"train_size": 4, "val_size": 2, "test_size": 6}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run folder as the trainer leaves it: model/ (64 px input) and the recipe with rs_synth's sizes and seed."""
    run = tmp_path_factory.mktemp("eval_run") / "run"
    save_tiny_amfmn(run / "model")
    recipe = load_recipe("amfmn_synth", [f"data.options={json.dumps(SIZES)}", "data.seed=3"])
    (run / "recipe.yaml").write_text(dump_recipe(recipe))
    return run


def evaluate(run, tmp_path, capsys, *extra) -> tuple[dict, str]:
    out = tmp_path / "metrics.json"
    argv = [
        "evaluate",
        "--model",
        str(run / "model"),
        "--dataset",
        "rs_synth",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--rerank",
        "none",
        "--no-progress",
        "--device",
        "cpu",
        "--output",
        str(out),
        *extra,
    ]
    assert main(argv) == 0
    return json.loads(out.read_text()), capsys.readouterr().err


def test_rs_synth_is_evaluated_as_the_run_generated_it(run, tmp_path, capsys):
    written, err = evaluate(run, tmp_path, capsys)
    used = load_dataset("rs_synth", split="test", cache_dir=tmp_path / "cache", seed=3, image_size=64, **SIZES)
    assert written["data"] == describe_data(used, "rs_synth", "test", 64)
    assert written["data"]["images"] == 6 and len(written["data"]["fingerprint"]) == 16
    assert f"rs_synth: images generated at 64 px as the model's run generated it ({run / 'recipe.yaml'})" in err

    other, err = evaluate(run, tmp_path, capsys, "--image-size", "96")
    assert "rs_synth: images generated at 96 px (--image-size)" in err
    assert other["data"]["image_size"] == 96 and other["data"]["fingerprint"] != written["data"]["fingerprint"]


def test_a_bare_model_folder_gets_rs_synth_at_its_input_size(run, tmp_path, capsys):
    import argparse
    import shutil

    from rs_retrieval.cli.evaluate import generated_dataset_options

    shutil.copytree(run / "model", tmp_path / "bare" / "model")
    args = argparse.Namespace(
        model=str(tmp_path / "bare" / "model"),
        dataset="rs_synth",
        data_dir=None,
        image_size=None,
        trust_remote_code=False,
    )
    assert generated_dataset_options(args) == {"seed": 0, "image_size": 64}
    assert (
        "rs_synth: images generated at 64 px at the model's input size, as training generates it"
        in capsys.readouterr().err
    )
    assert main(["evaluate", "--model", str(run / "model"), "--dataset", "rsitmd", "--image-size", "64"]) == 2
    assert "--image-size applies to generated datasets (rs_synth), not to rsitmd" in capsys.readouterr().err
