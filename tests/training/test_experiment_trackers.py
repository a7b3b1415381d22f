"""`training.report_to`: Accelerate trackers chosen by the recipe (TensorBoard events written,
missing trackers named with the install line, bad names rejected when the recipe is read)."""

import importlib.util

import pytest
from helpers import fresh_accelerate_state  # noqa: F401  (autouse fixture)
from test_training import run_toy, toy_recipe

from rs_retrieval.errors import MissingExtraError
from rs_retrieval.training import recipe_from_dict
from rs_retrieval.training.experiment_trackers import resolve_trackers
from rs_retrieval.training.recipe import RecipeError
from rs_retrieval.training.run_log import read_log


def tensorboard_scalars(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir / "tensorboard" / "rs_retrieval"))  # the hparams sub-run is a subfolder
    accumulator.Reload()
    return {
        tag: [(event.step, event.value) for event in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]
    }


def test_tensorboard_receives_the_logged_records(tmp_path, toy_data, processor_dir):
    pytest.importorskip("tensorboard")
    run = run_toy(toy_recipe(processor_dir, epochs=1, report_to="tensorboard,jsonl"), tmp_path / "run", toy_data)
    scalars = tensorboard_scalars(run)
    records = [r for r in read_log(run / "log.jsonl") if r["kind"] == "train"]
    assert [step for step, _ in scalars["train/loss"]] == [r["step"] for r in records]
    assert [value for _, value in scalars["train/loss"]] == pytest.approx([r["loss"] for r in records], rel=1e-6)
    assert "eval/mR" in scalars
    (hparams,) = (run / "tensorboard").rglob("hparams.yml")
    assert "training.report_to: tensorboard,jsonl" in hparams.read_text()  # the recipe went in as the run config


def test_none_writes_only_the_jsonl_log(tmp_path, toy_data, processor_dir):
    run = run_toy(toy_recipe(processor_dir, epochs=1, report_to="none"), tmp_path / "run", toy_data)
    assert read_log(run / "log.jsonl") and not (run / "tensorboard").exists()


def test_tracker_names_resolve_and_missing_ones_name_the_install():
    assert resolve_trackers("jsonl") == [] and resolve_trackers("none") == []
    installed = [name for name in ("tensorboard", "wandb") if importlib.util.find_spec(name) is not None]
    assert resolve_trackers("all") == installed
    if "wandb" not in installed:
        with pytest.raises(
            MissingExtraError,
            match=r"'wandb' is needed for training.report_to=wandb .*pip install 'rs-retrieval\[wandb\]'",
        ):
            resolve_trackers("wandb,jsonl")


@pytest.mark.parametrize(
    "value, message",
    [
        ("tensorbord", "unknown tracker"),
        ("none,wandb", "'none', 'all' and 'auto' stand alone"),
        ("", "unknown tracker"),
    ],
)
def test_bad_report_to_is_a_recipe_error(processor_dir, value, message):
    with pytest.raises(RecipeError, match=f"training.report_to: {message}"):
        recipe_from_dict(toy_recipe(processor_dir, report_to=value))
