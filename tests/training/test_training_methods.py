"""The shipped recipes (configs/*.yaml) and a short training run of every registered method."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from helpers import fresh_accelerate_state  # noqa: F401  (autouse fixture)
from tiny_methods import TINY_RECIPE_OVERRIDES
from transformers import AutoModel, AutoProcessor

from rs_retrieval import get_method, list_methods
from rs_retrieval.data import load_dataset
from rs_retrieval.training import Trainer, load_recipe
from rs_retrieval.training.optim import parameter_groups
from rs_retrieval.training.recipe import resolve_model_config
from rs_retrieval.training.run_log import read_log

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
METHODS = ("amfmn", "galr", "msa", "cmpagl")

#: Reference hyperparameters of the released code (docs/methods/*.md: AMFMN, GaLR, MSA; CMPAGL: our reconstruction).
REFERENCE = {
    "amfmn_rsitmd": dict(
        optimizer="adam",
        lr=2e-4,
        weight_decay=0.0,
        epochs=70,
        batch_size=100,
        eval_batch_size=70,
        lr_scheduler="multistep",
        lr_milestones=[19, 39, 59],
        lr_gamma=0.7,
        max_grad_norm=None,
    ),
    "amfmn_rsicd": dict(
        optimizer="adam",
        lr=1e-4,
        weight_decay=0.0,
        epochs=70,
        batch_size=100,
        eval_batch_size=70,
        lr_scheduler="multistep",
        lr_milestones=[19, 39, 59],
        lr_gamma=0.7,
    ),
    "galr_rsitmd": dict(
        optimizer="adam",
        lr=2e-4,
        epochs=20,
        batch_size=100,
        eval_batch_size=70,
        lr_scheduler="multistep",
        lr_milestones=[19],
        lr_gamma=0.7,
    ),
    "galr_rsicd": dict(
        optimizer="adam",
        lr=2e-4,
        epochs=70,
        batch_size=100,
        eval_batch_size=70,
        lr_scheduler="multistep",
        lr_milestones=[19, 39, 59],
        lr_gamma=0.7,
    ),
    "msa_rsitmd": dict(
        optimizer="adamw",
        lr=1e-5,
        weight_decay=0.1,
        betas=[0.9, 0.999],
        eps=1e-8,
        epochs=60,
        batch_size=32,
        lr_scheduler="constant",
        seed=1,
        max_grad_norm=None,
    ),
    "cmpagl_rsitmd": dict(
        optimizer="adamw",
        lr=6e-5,
        weight_decay=0.01,
        epochs=50,
        batch_size=128,
        lr_scheduler="cosine",
        warmup_ratio=0.1,
    ),
}
#: Vocabulary sizes of the reference vocab.json files (words + padding id 0).
REFERENCE_VOCAB = {"rsitmd": 1350, "rsicd": 1226}


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_recipe_is_valid(path):
    recipe = load_recipe(path)
    for field, value in REFERENCE.get(path.stem, {}).items():
        assert getattr(recipe.training, field) == (pytest.approx(value) if isinstance(value, float) else value), field
    config = resolve_model_config(recipe.model)
    if recipe.model.type in ("amfmn", "galr") and recipe.data.name in REFERENCE_VOCAB:
        assert config.vocab_size == REFERENCE_VOCAB[recipe.data.name]
    with torch.device("meta"):  # full-size models without allocating their weights
        model = get_method(recipe.model.type).model_class(config)
    groups = parameter_groups(model, recipe.training)  # every prefix rule matches parameters
    assert sum(len(g["params"]) for g in groups) == sum(1 for p in model.parameters() if p.requires_grad)
    if path.stem == "msa_rsitmd":
        assert [g["name"] for g in groups] == ["text", "image_head", "image_backbone", "mscmat"]
        assert {g["lr"] for g in groups} == {1e-5} and {g["weight_decay"] for g in groups} == {0.1}
    if path.stem == "cmpagl_rsitmd":
        lrs = {g["name"]: g["lr"] for g in groups}
        assert lrs == {"towers": 6e-5, "new_modules": 1.2e-4}


@pytest.fixture(scope="module")
def synth_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("rs_synth")
    load_dataset("rs_synth", cache_dir=cache, image_size=32, train_size=8, val_size=6, test_size=0)
    return cache


@pytest.mark.parametrize("name", [f"{method}_synth" for method in METHODS] + ["amfmn_synth_dynamic_margin"])
def test_method_trains_from_its_synth_recipe(name, synth_cache, tmp_path):
    # The dynamic-margin recipe trains only if the collator hands the loss its caption prior.
    method = name.split("_")[0]
    if method not in list_methods():
        pytest.skip(f"{method} is not registered yet")
    data = [f"data.cache_dir={synth_cache}", "data.options={train_size: 8, val_size: 6, test_size: 0}"]
    training = [
        "training.batch_size=10",
        "training.max_steps=2",
        "training.eval_batch_size=6",
        "training.log_every_steps=1",
    ]
    recipe = load_recipe(CONFIGS / f"{name}.yaml", TINY_RECIPE_OVERRIDES[method] + data + training)
    run = Trainer(recipe, run_dir=tmp_path / "run").train()
    records = read_log(run / "log.jsonl")
    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2] and all(math.isfinite(r["loss"]) and r["loss"] > 0 for r in train)
    (evaluation,) = [r for r in records if r["kind"] == "eval"]
    assert 0 <= evaluation["mR"] <= 100 and evaluation["i2t_queries"] == 6
    model = AutoModel.from_pretrained(run / "model")
    processor = AutoProcessor.from_pretrained(run / "model")
    assert model.config.model_type == method and type(processor).__name__.lower().startswith(method[:3])
    assert json.loads((run / "metrics.json").read_text())["validation"]["mR"] == evaluation["mR"]
