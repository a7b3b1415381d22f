"""Trainer tests on the toy retrieval problem of `test_training_toy` (tiny model, generated images)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers import ACCELERATE_TWO_CPU_RANKS, fresh_accelerate_state, reset_accelerate_state  # noqa: F401  (autouse fixture)
from PIL import Image
from safetensors.torch import load_file
from test_training_toy import ToyConfig, ToyModel, brute_force_metrics, toy_dataset_dict, toy_evaluate, toy_processor
from transformers import AutoModel, AutoProcessor

from rs_retrieval.cards import write_model_card
from rs_retrieval.data import flatten_captions
from rs_retrieval.training import Trainer, load_recipe, recipe_from_dict
from rs_retrieval.training.caption_prior import PrecomputedCaptionPrior
from rs_retrieval.training.data import EpochShuffleSampler, TrainCollator, select_splits
from rs_retrieval.training.model_setup import build_model_and_processor
from rs_retrieval.training.optim import build_optimizer, lr_factor
from rs_retrieval.training.recipe import ParamGroupRule, RecipeError, TrainingSpec, dump_recipe
from rs_retrieval.training.run_log import read_log

REPO = Path(__file__).resolve().parents[2]
TESTS = Path(__file__).resolve().parents[1]


def toy_recipe(processor_dir, **training) -> dict:
    return {
        "model": {"type": "rs_toy_retrieval", "import_modules": ["test_training_toy"]},
        "processor": {"path": str(processor_dir)},
        "data": {"name": "toy"},
        "training": {
            "epochs": 2,
            "batch_size": 14,
            "lr": 1e-2,
            "log_every_steps": 1,
            "eval_batch_size": 64,
            **training,
        },
    }


def run_toy(raw: dict, run_dir: Path, data, resume=None) -> Path:
    return Trainer(
        recipe_from_dict(raw), run_dir=run_dir, datasets=data, evaluate_fn=toy_evaluate, on_finish=[write_model_card]
    ).train(resume=resume)


def losses(run_dir: Path) -> list[dict]:
    """Log records without the wall-clock throughput."""
    return [{k: v for k, v in r.items() if k not in ("pairs_per_s", "kind")} for r in read_log(run_dir / "log.jsonl")]


# ----------------------------------------------------------------------------- recipes
def test_recipe_yaml_with_typed_dotted_overrides(tmp_path, processor_dir):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(toy_recipe(processor_dir)))
    recipe = load_recipe(
        path,
        [
            "training.lr=1e-3",
            "model.embed_dim=8",
            "training.lr_milestones=[2, 4]",
            "data.options={train_size: 3}",
            "training.max_grad_norm=null",
            "training.mixed_precision=no",
        ],
    )
    assert recipe.training.lr == pytest.approx(1e-3) and isinstance(
        recipe.training.lr, float
    )  # YAML reads "1e-3" as a string
    assert recipe.training.mixed_precision == "no"  # and `no` as False
    assert recipe.training.lr_milestones == [2, 4] and recipe.data.options == {"train_size": 3}
    assert recipe.training.max_grad_norm is None and recipe.training.epochs == 2
    assert recipe.model.config == {"embed_dim": 8}
    model, _ = build_model_and_processor(recipe, [])
    assert (
        isinstance(model, ToyModel)
        and model.config.embed_dim == 8
        and model.text_encoder.weight.shape == (ToyConfig().vocab_size, 8)
    )
    # The resolved recipe written into a run directory loads back to the same recipe.
    path.write_text(dump_recipe(recipe))
    assert load_recipe(path) == recipe


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["training.lrr=1"], r"training: unknown field\(s\) \['lrr'\]"),
        (["model.embedd_dim=8"], r"unknown config field 'embedd_dim'"),
        (
            ["model.type=no_such_method"],
            r"unknown retrieval method 'no_such_method'; registered methods: \[.*'rs_toy_retrieval'",
        ),
        (["model.type=bert"], r"unknown retrieval method 'bert'"),
        (["training.epochs=two"], r"training.epochs: expected an integer, got 'two'"),
        (["training.optimizer=adagrad"], r"training.optimizer: expected one of \['adam', 'adamw', 'sgd'\]"),
        (["training.mixed_precision=yes"], r"training.mixed_precision: expected a string, got True"),
        (["training.lr_scheduler=multistep"], r"needs training.lr_milestones"),
        (["data.path=/x"], r"exactly one of data.name and data.path"),
        (["processor.vocab=train_captions"], r"exactly one of processor.path"),
        (["training.batch_size=0"], r"training.batch_size must be >= 1"),
        (["training.lr"], r"expected dotted.key=value"),
        (["training.epochs.x=1"], r"training.epochs is not a mapping"),
    ],
)
def test_recipe_errors_name_the_field(processor_dir, tmp_path, overrides, message):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(toy_recipe(processor_dir)))
    with pytest.raises(RecipeError, match=message):
        load_recipe(path, overrides)


def test_recipe_file_errors(tmp_path):
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("model: [unclosed")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(tmp_path / "bad.yaml")


# ----------------------------------------------------------------------------- optimizer and schedule
def test_param_groups_by_prefix_and_errors():
    model = ToyModel(ToyConfig())
    spec = TrainingSpec(
        lr=1e-3,
        weight_decay=0.1,
        param_groups=[ParamGroupRule(name="image", prefixes=["image_encoder."], lr=5e-4, weight_decay=0.0)],
    )
    optimizer = build_optimizer(model, spec)
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert set(groups) == {"image", "default"}
    assert {id(p) for p in groups["image"]["params"]} == {id(p) for p in model.image_encoder.parameters()}
    assert {id(p) for p in groups["default"]["params"]} == {id(p) for p in model.text_encoder.parameters()}
    assert (groups["image"]["lr"], groups["image"]["weight_decay"]) == (5e-4, 0.0)
    assert (groups["default"]["lr"], groups["default"]["weight_decay"]) == (1e-3, 0.1)
    spec.param_groups[0].prefixes = ["vision_model."]
    with pytest.raises(
        RecipeError,
        match=(
            r"no trainable parameter name starts with \['vision_model.'\]; "
            r"top-level modules are \['image_encoder', 'text_encoder'\]"
        ),
    ):
        build_optimizer(model, spec)


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_is_fused_and_steps_like_the_reference_loop(name):
    torch.manual_seed(0)
    model = ToyModel(ToyConfig())
    spec = TrainingSpec(optimizer=name, lr=1e-2, weight_decay=0.1)
    optimizer = build_optimizer(model, spec)
    assert optimizer.defaults["fused"] is True
    params = [p.detach().clone().requires_grad_() for p in model.parameters()]
    initial = [p.detach().clone() for p in params]
    reference = (torch.optim.Adam if name == "adam" else torch.optim.AdamW)(
        params, lr=1e-2, weight_decay=0.1, betas=tuple(spec.betas), eps=spec.eps, foreach=False
    )
    for _ in range(3):
        for p, q in zip(model.parameters(), params):
            p.grad = torch.randn_like(p)
            q.grad = p.grad.clone()
        optimizer.step()
        reference.step()
    for p, q in zip(model.parameters(), params):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-6, atol=1e-7)
    assert all(not torch.equal(p.detach(), start) for p, start in zip(model.parameters(), initial))


def test_lr_schedules_by_hand():
    # AMFMN/GaLR: x0.7 at the start of epochs 19, 39, 59 (docs/methods/amfmn.md#loss-and-optimiser); 3 optimizer steps per epoch.
    amfmn = lr_factor(
        TrainingSpec(lr_scheduler="multistep", lr_milestones=[19, 39, 59], lr_gamma=0.7),
        steps_per_epoch=3,
        total_steps=210,
    )
    assert [amfmn(s) for s in (0, 56, 57, 116, 117, 177, 209)] == pytest.approx([1, 1, 0.7, 0.7, 0.49, 0.343, 0.343])
    cosine = lr_factor(
        TrainingSpec(lr_scheduler="cosine", warmup_ratio=0.1, min_lr_ratio=0.1), steps_per_epoch=10, total_steps=100
    )
    assert [cosine(s) for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert cosine(10) == pytest.approx(1.0) and cosine(55) == pytest.approx(0.55) and cosine(100) == pytest.approx(0.1)
    linear = lr_factor(TrainingSpec(lr_scheduler="linear"), steps_per_epoch=10, total_steps=100)
    assert [linear(s) for s in (0, 50, 100)] == pytest.approx([1.0, 0.5, 0.0])
    assert lr_factor(TrainingSpec(), 10, 100)(77) == 1.0


# ----------------------------------------------------------------------------- data order and augmentation
def test_data_order_and_augmentation_depend_only_on_seed_and_epoch(toy_data):
    sampler = EpochShuffleSampler(50, seed=3)
    first = list(sampler)
    assert sorted(first) == list(range(50)) and list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.set_epoch(0)
    assert list(sampler) == first

    flat = flatten_captions(toy_data["train"])
    rows = [flat[i] for i in (0, 7, 12, 30)]
    collator = TrainCollator(toy_processor(), seed=0)
    a = collator(rows)
    random.random(), np.random.rand(), torch.rand(1)  # move the global RNGs: the batch must not change
    state = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state())
    b = collator(rows)
    assert torch.equal(a["pixel_values"], b["pixel_values"])
    assert (
        random.getstate() == state[0]
        and np.array_equal(np.random.get_state()[1], state[1])
        and torch.equal(torch.get_rng_state(), state[2])
    )
    assert a["image_ids"].tolist() == [r["image_index"] for r in rows] == [0, 1, 2, 6]
    assert a["input_ids"].shape[0] == 4 and set(a) == {
        "pixel_values",
        "input_ids",
        "attention_mask",
        "image_ids",
    }  # the toy declares no loss inputs
    with_scenes = TrainCollator(toy_processor(), seed=0, loss_input_names=("scene_ids",))(rows)
    assert with_scenes["scene_ids"].tolist() == [r["scene"] for r in rows] and torch.equal(
        with_scenes["pixel_values"], a["pixel_values"]
    )
    collator.epoch = 1
    assert not torch.equal(collator(rows)["pixel_values"], a["pixel_values"])  # a new random view per epoch
    eval_view = toy_processor().image_inputs({"image": [r["image"] for r in rows]}, train=False)["pixel_values"]
    assert not torch.equal(eval_view, a["pixel_values"])  # training applied augmentation, inference did not


def test_collator_adds_the_caption_prior_of_every_image_caption_pair(toy_data):
    flat = flatten_captions(toy_data["train"])
    rows = [flat[i] for i in (0, 7, 12, 30)]
    num_images = len(toy_data["train"])
    matrix = np.random.default_rng(0).random((num_images, 5 * num_images), dtype=np.float32)
    collator = TrainCollator(
        toy_processor(), seed=0, loss_input_names=("prior_similarity",), caption_prior=PrecomputedCaptionPrior(matrix)
    )
    prior = collator(rows)["prior_similarity"]
    expected = [[matrix[r["image_index"], 5 * c["image_index"] + c["caption_index"]] for c in rows] for r in rows]
    assert prior.shape == (4, 4) and prior.tolist() == expected
    assert "prior_similarity" not in TrainCollator(
        toy_processor(), seed=0, caption_prior=PrecomputedCaptionPrior(matrix)
    )(rows)


def test_validation_resplit_is_seeded_and_recorded(tmp_path):
    data = toy_dataset_dict(with_val=False)
    spec = recipe_from_dict(
        {
            "model": {"type": "rs_toy_retrieval"},
            "processor": {"path": "p"},
            "data": {"name": "toy", "val_fraction": 0.25, "seed": 5},
        }
    ).data
    train, val = select_splits(data, spec, tmp_path)
    record = json.loads((tmp_path / "val_split.json").read_text())
    assert (len(train), len(val)) == (27, 9) and record["seed"] == 5 and record["validation_images"] == 9
    assert record["validation_image_ids"] == list(val["image_id"])
    assert not set(train["image_id"]) & set(val["image_id"])
    again_train, again_val = select_splits(data, spec)
    assert list(again_val["image_id"]) == record["validation_image_ids"] and list(again_train["image_id"]) == list(
        train["image_id"]
    )
    spec.seed = 6
    assert list(select_splits(data, spec)[1]["image_id"]) != record["validation_image_ids"]


# ----------------------------------------------------------------------------- training runs
def test_training_learns_selects_on_validation_and_writes_the_run(tmp_path, toy_data, processor_dir):
    raw = toy_recipe(processor_dir, epochs=6, checkpoint_every_steps=10, keep_checkpoints=2, log_every_steps=2)
    torch.manual_seed(0)
    untrained = brute_force_metrics(ToyModel(ToyConfig()), toy_processor(), toy_data["val"])
    run = run_toy(raw, tmp_path / "run", toy_data)

    records = read_log(run / "log.jsonl")
    train_records = [r for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in train_records] == list(range(2, 61, 2))
    assert {"loss", "loss/triplet", "loss/positive_cosine", "lr/default", "pairs_per_s", "epoch"} <= set(
        train_records[0]
    )
    assert train_records[-1]["loss"] < 0.5 * train_records[0]["loss"]
    assert [r["epoch"] for r in evals] == list(range(6)) and [r["step"] for r in evals] == list(range(10, 61, 10))
    assert evals[-1]["mR"] > untrained["mR"] + 10  # unseen colour pairs are retrieved much better

    metrics = json.loads((run / "metrics.json").read_text())
    best = max(evals, key=lambda r: r["mR"])
    assert metrics["best_step"] == best["step"] and metrics["validation"]["mR"] == best["mR"]
    # The selected model on disk loads with the Auto classes and reproduces its validation metrics.
    model, processor = AutoModel.from_pretrained(run / "model"), AutoProcessor.from_pretrained(run / "model")
    assert isinstance(model, ToyModel) and type(processor).__name__ == "ToyProcessor"
    assert brute_force_metrics(model, processor, toy_data["val"]) == pytest.approx(metrics["validation"])

    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_50", "step_60"]
    assert load_recipe(run / "recipe.yaml") == recipe_from_dict(raw)
    assert json.loads((run / "training_args.json").read_text())["num_processes"] == 1
    for name, min_size in (("training_curves.png", (800, 200)), ("retrieval_examples.png", (600, 500))):
        with Image.open(run / name) as image:
            assert image.size[0] >= min_size[0] and image.size[1] >= min_size[1]
            assert np.asarray(image.convert("L")).std() > 10  # not blank
    assert "rs_toy_retrieval" in (run / "model" / "README.md").read_text()  # the Hub model card (on_finish callback)
    assert not list(run.glob(".*tmp*"))  # atomic writes leave no temporaries


@pytest.mark.parametrize("accumulation, precision", [(1, "no"), (2, "bf16")])
def test_resume_after_a_kill_reproduces_the_uninterrupted_run(
    tmp_path, toy_data, processor_dir, accumulation, precision
):
    raw = toy_recipe(
        processor_dir,
        epochs=3,
        checkpoint_every_steps=3,
        gradient_accumulation_steps=accumulation,
        mixed_precision=precision,
        max_grad_norm=1.0,
    )
    whole = run_toy(raw, tmp_path / "whole", toy_data)
    killed = {**raw, "training": {**raw["training"], "stop_after_steps": 5}}
    reset_accelerate_state()
    interrupted = run_toy(killed, tmp_path / "interrupted", toy_data)
    assert not (interrupted / "model").exists() and len(losses(interrupted)) > 3  # logged past the step-3 checkpoint
    reset_accelerate_state()
    run_toy(raw, interrupted, toy_data, resume="latest")
    reference, resumed = losses(whole), losses(interrupted)
    assert len(reference) == len(resumed) > 10
    for expected, got in zip(reference, resumed):
        assert expected.keys() == got.keys()
        assert got == pytest.approx(expected, rel=1e-6, abs=1e-7), expected["step"]
    timing = ("train_pairs_per_s", "train_seconds")
    final = [
        {k: v for k, v in json.loads((run / "metrics.json").read_text()).items() if k not in timing}
        for run in (whole, interrupted)
    ]
    assert final[0] == final[1]


def test_run_directory_guards(tmp_path, toy_data, processor_dir):
    raw = toy_recipe(processor_dir, epochs=1)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        run_toy(raw, tmp_path / "run", toy_data, resume="latest")
    run_toy(raw, tmp_path / "run", toy_data)
    with pytest.raises(FileExistsError, match="already holds a run"):
        run_toy(raw, tmp_path / "run", toy_data)
    with pytest.raises(FileNotFoundError, match="not a checkpoint folder"):
        run_toy(raw, tmp_path / "run", toy_data, resume=str(tmp_path))
    with pytest.raises(RecipeError, match=r"batch_size \(200\) is larger than the training set \(140 captions\)"):
        run_toy(toy_recipe(processor_dir, batch_size=200), tmp_path / "big", toy_data)


def test_without_validation_the_last_weights_are_the_model(tmp_path, toy_data, processor_dir):
    run = run_toy(toy_recipe(processor_dir, eval_every_epochs=0), tmp_path / "run", toy_data)
    assert not [r for r in read_log(run / "log.jsonl") if r["kind"] == "eval"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert (
        metrics["selection"] == "last step (no validation)"
        and metrics["validation"] is None
        and metrics["global_step"] == 20
    )
    saved, checkpoint = (
        load_file(run / "model" / "model.safetensors"),
        load_file(run / "checkpoints" / "step_20" / "model.safetensors"),
    )
    assert saved.keys() == checkpoint.keys() and all(torch.equal(saved[k], checkpoint[k]) for k in saved)


def test_non_finite_loss_stops_training(tmp_path, toy_data, processor_dir):
    raw = toy_recipe(processor_dir)
    raw["model"]["margin"] = float("nan")
    with pytest.raises(
        FloatingPointError, match=r"training loss is nan around step 1 \(loss terms \{'positive_cosine'"
    ):
        run_toy(raw, tmp_path / "run", toy_data)


def test_package_evaluator_matches_the_brute_force_reference(toy_data):
    from rs_retrieval.training.trainer import default_evaluate

    torch.manual_seed(0)
    model = ToyModel(ToyConfig()).eval()
    expected = brute_force_metrics(model, toy_processor(), toy_data["val"])
    got = default_evaluate(model, toy_processor(), toy_data["val"], batch_size=3)
    assert {k: got[k] for k in expected} == pytest.approx(expected)


def test_cli_trains_from_a_saved_dataset(tmp_path, toy_data, processor_dir, capsys):
    from rs_retrieval.cli import main

    toy_data.save_to_disk(tmp_path / "data")
    raw = toy_recipe(processor_dir, epochs=1)
    raw["data"] = {"path": str(tmp_path / "data")}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(raw))
    argv = [
        "train",
        "--config",
        str(tmp_path / "recipe.yaml"),
        "--output-dir",
        str(tmp_path / "run"),
        "--set",
        "training.epochs=2",
        "training.log_every_steps=5",
    ]
    assert main(argv) == 0
    assert [r["step"] for r in read_log(tmp_path / "run" / "log.jsonl") if r["kind"] == "train"] == [5, 10, 15, 20]
    assert (tmp_path / "run" / "model" / "config.json").is_file()
    assert main(["train", "--config", str(tmp_path / "recipe.yaml"), "--set", "training.epochz=2"]) == 2
    assert "unknown field(s) ['epochz']" in capsys.readouterr().err


# ----------------------------------------------------------------------------- multi-process
@pytest.mark.slow
def test_two_processes_agree_with_one(tmp_path, toy_data, processor_dir):
    """`accelerate launch --multi_gpu` with two CPU ranks (gloo) against a single process."""
    toy_data.save_to_disk(tmp_path / "data")
    raw = toy_recipe(processor_dir, epochs=8, log_every_steps=2)
    raw["data"] = {"path": str(tmp_path / "data")}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(raw))
    # the recipe's `import_modules: [test_training_toy]` (this folder) imports `toy_model` (tests/)
    paths = [str(Path(__file__).resolve().parent), str(TESTS), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    script = [str(REPO / "scripts" / "train.py"), "--config", str(tmp_path / "recipe.yaml"), "--output-dir"]
    subprocess.run([sys.executable, *script, str(tmp_path / "one")], check=True, env=env, capture_output=True)
    launch = ACCELERATE_TWO_CPU_RANKS
    subprocess.run([*launch, *script, str(tmp_path / "two")], check=True, env=env, capture_output=True)
    one, two = read_log(tmp_path / "one" / "log.jsonl"), read_log(tmp_path / "two" / "log.jsonl")
    assert json.loads((tmp_path / "two" / "training_args.json").read_text())["num_processes"] == 2
    assert [(r["kind"], r["step"]) for r in one] == [(r["kind"], r["step"]) for r in two]  # one writer, same schedule
    final_one, final_two = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("one", "two"))
    assert abs(final_one["validation"]["mR"] - final_two["validation"]["mR"]) < 8
    train_one = [r["loss"] for r in one if r["kind"] == "train"][-5:]
    train_two = [r["loss"] for r in two if r["kind"] == "train"][-5:]
    # Each rank's summed hinge loss sees half the batch: about a quarter of the single-process value.
    assert 0.1 < np.mean(train_two) / np.mean(train_one) < 0.6


def test_recipe_evaluation_protocol_drives_model_selection(tmp_path, processor_dir, toy_data):
    raw = toy_recipe(processor_dir, max_steps=2, epochs=1)
    raw["evaluation"] = {"protocol": "skyscript"}
    run_dir = Trainer(recipe_from_dict(raw), run_dir=tmp_path / "run", datasets=toy_data).train()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["protocol"] == "skyscript"
    assert metrics["validation"]["protocol"] == "skyscript" and metrics["validation"]["tie_policy"] == "torch_argsort"
    raw["evaluation"] = {"protocol": "remoteclip", "tie_policy": "numpy"}
    with pytest.raises(RecipeError, match="conflicts with protocol 'remoteclip'"):
        recipe_from_dict(raw)
    raw["evaluation"] = {"protocol": "karpathy"}
    with pytest.raises(RecipeError, match="evaluation.protocol"):
        recipe_from_dict(raw)
