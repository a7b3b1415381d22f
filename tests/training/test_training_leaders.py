"""The leaders' recipes (GeoRSCLIP-FT on RET-2, RemoteCLIP-style on RET-3) smoke-run on stand-ins: the members in
their release formats with rs_synth scenes as images and planted test duplicates, a tiny CLIP as the start point."""

from __future__ import annotations

import json

import pytest
from clip_helpers import TINY_CLIP, tiny_clip
from fixtures_data import PLANTED, make_combined_members
from helpers import fresh_accelerate_state  # noqa: F401  (autouse fixture)

from rs_retrieval.data.combined import leakage_report
from rs_retrieval.training import Trainer, load_recipe
from rs_retrieval.training.data import load_splits


def _yaml_mapping(values: dict) -> str:
    return "{" + ", ".join(f"{key}: {value}" for key, value in values.items()) + "}"


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    root = tmp_path_factory.mktemp("leaders")
    model, processor = tiny_clip()
    model.save_pretrained(root / "start")
    processor.save_pretrained(root / "start")
    return make_combined_members(root / "data", size=48), root / "start"


@pytest.mark.parametrize(
    ("recipe", "members"),
    [("georsclip_ft_ret2", ("rsicd", "rsitmd")), ("remoteclip_ret3", ("rsicd", "rsitmd", "ucm_captions"))],
)
def test_leader_recipe_smoke_runs_on_stand_ins(recipe, members, stand_ins, tmp_path):
    data, start = stand_ins
    overrides = [
        f"model.pretrained.vision={start}",
        f"model.pretrained.text={start}",
        f"processor.path={start}",
        f"data.data_dir={data}",
        f"model.projection_dim={TINY_CLIP['projection_dim']}",
        f"model.text_config={_yaml_mapping(TINY_CLIP['text_config'])}",
        f"model.vision_config={_yaml_mapping(TINY_CLIP['vision_config'])}",
        "training.max_steps=2",
        "training.batch_size=8",
        "training.eval_batch_size=8",
        "training.mixed_precision=no",
        "training.checkpoint_every_steps=null",
        "training.report_to=none",
        f"output_dir={tmp_path / 'run'}",
    ]
    loaded = load_recipe(recipe, overrides)
    assert loaded.evaluation.protocol == "remoteclip"
    train, _ = load_splits(loaded.data)
    removed = {
        (m, split, name)
        for (m, split, name), ((source, _), _) in PLANTED.items()
        if m in members and source in members
    }
    assert not removed & set(zip(train["dataset"], train["source_split"], train["filename"]))
    assert {entry["id"] for entry in leakage_report(train)["removed"]} == {f"{m}/{s}/{n}" for m, s, n in removed}
    run_dir = Trainer(loaded).train()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert (
        metrics["protocol"] == "remoteclip"
        and metrics["validation"]["tie_policy"] == "torch_topk"
        and metrics["global_step"] == 2
    )
    assert (run_dir / "model" / "model.safetensors").is_file()
