"""Crash-safe checkpoints: a save interrupted by a kill or a full disk never becomes `--resume latest`."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from accelerate import Accelerator
from helpers import fresh_accelerate_state, reset_accelerate_state  # noqa: F401  (autouse fixture)
from test_training import run_toy, toy_recipe

from rs_retrieval.errors import DiskFullError, RSRetrievalError
from rs_retrieval.training.checkpoints import (
    COMPLETE_MARKER,
    LEGACY_TRAINER_STATE,
    TRAINER_STATE,
    CheckpointDamagedError,
    CheckpointNotFoundError,
    CheckpointSaveError,
    checkpoint_steps,
    save_checkpoint,
    verify_checkpoint,
)


def test_resume_latest_skips_a_half_written_checkpoint(tmp_path, toy_data, processor_dir, caplog):
    raw = toy_recipe(processor_dir, epochs=1, checkpoint_every_steps=3)
    run = run_toy({**raw, "training": {**raw["training"], "stop_after_steps": 7}}, tmp_path / "run", toy_data)
    checkpoints = run / "checkpoints"
    assert checkpoint_steps(run) == [3, 6] and not list(checkpoints.glob("*.partial"))
    # what a kill -9 in the middle of the step-9 save used to leave behind: a step folder with some files
    shutil.copytree(checkpoints / "step_6", checkpoints / "step_9")
    (checkpoints / "step_9" / COMPLETE_MARKER).unlink()
    (checkpoints / "step_9" / "optimizer.bin").write_bytes(b"\x80")
    reset_accelerate_state()
    with caplog.at_level(logging.WARNING, logger="rs_retrieval.training.checkpoints"):
        run_toy(raw, run, toy_data, resume="latest")
    assert any(
        "skipping" in r.getMessage() and "step_9" in r.getMessage() and "incomplete" in r.getMessage()
        for r in caplog.records
    )
    assert (run / "model").is_dir() and checkpoint_steps(run)[-1] == 10
    assert all(
        (folder / COMPLETE_MARKER).is_file() for folder in checkpoints.iterdir()
    )  # the stale half folder is gone
    shutil.copytree(checkpoints / "step_10", tmp_path / "copy")
    (tmp_path / "copy" / COMPLETE_MARKER).unlink()
    with pytest.raises(CheckpointNotFoundError, match="incomplete checkpoint"):
        run_toy(raw, run, toy_data, resume=str(tmp_path / "copy"))


def test_disk_full_during_a_save_keeps_the_previous_checkpoint(tmp_path, toy_data, processor_dir, monkeypatch):
    save_state = Accelerator.save_state

    def full_disk_at_step_6(self, output_dir=None, **kwargs):
        if "step_6" in str(output_dir):
            save_state(self, output_dir, **kwargs)  # some files land, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return save_state(self, output_dir, **kwargs)

    monkeypatch.setattr(Accelerator, "save_state", full_disk_at_step_6)
    raw = toy_recipe(processor_dir, epochs=1, checkpoint_every_steps=3)
    with pytest.raises(
        CheckpointSaveError,
        match=(
            r"could not write checkpoint .*step_6 \(\[Errno 28\] No space "
            r"left on device\); the previous checkpoint .*step_3 is intact"
        ),
    ) as caught:
        run_toy(raw, tmp_path / "run", toy_data)
    assert isinstance(caught.value, RSRetrievalError)
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["step_3"]
    assert checkpoint_steps(tmp_path / "run") == [3]


class OneProcess:
    """The part of `Accelerator` that `save_checkpoint` uses, for one process: `save_state` writes one
    weights file, or raises `error` (a full disk) after writing it."""

    is_main_process = True
    error: OSError | None = None

    def wait_for_everyone(self):
        pass

    def save_state(self, output_dir):
        (Path(output_dir) / "model.safetensors").parent.mkdir(parents=True, exist_ok=True)
        (Path(output_dir) / "model.safetensors").write_bytes(output_dir.encode())
        if self.error is not None:
            raise self.error


def test_save_checkpoint_marks_renames_and_keeps_the_newest_complete_ones(tmp_path):
    accelerator = OneProcess()
    (tmp_path / "checkpoints" / "step_1.partial").mkdir(parents=True)  # a kill's leftover, older than any save
    for step in (2, 4, 6):
        folder = save_checkpoint(accelerator, tmp_path, {"global_step": step}, step=step, epoch=0, keep=2)
        assert folder == tmp_path / "checkpoints" / f"step_{step}"
        verify_checkpoint(folder)
        assert json.loads((folder / TRAINER_STATE).read_text()) == {"global_step": step}
        assert json.loads((folder / COMPLETE_MARKER).read_text())["step"] == step
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_4", "step_6"]
    accelerator.error = OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(
        CheckpointSaveError,
        match=(
            r"could not write checkpoint .*step_8 \(\[Errno 28\] No space "
            r"left on device\); the previous checkpoint .*step_6 is intact"
        ),
    ):
        save_checkpoint(accelerator, tmp_path, {"global_step": 8}, step=8, epoch=1, keep=2)
    assert checkpoint_steps(tmp_path) == [4, 6] and sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "step_4",
        "step_6",
    ]


class WritesAMarker:
    """A pickle that, unpickled unrestricted, creates a file: what a tampered checkpoint could run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def reseal(folder):
    """Record the current files' sizes and hashes, as someone who edits a checkpoint can."""
    marker = json.loads((folder / COMPLETE_MARKER).read_text())
    marker["files"] = {
        p.name: {"size": p.stat().st_size, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
        for p in folder.iterdir()
        if p.name != COMPLETE_MARKER
    }
    (folder / COMPLETE_MARKER).write_text(json.dumps(marker))


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory, processor_dir, toy_data):
    """A toy run stopped after step 7, with checkpoints at steps 3 and 6."""
    raw = toy_recipe(processor_dir, epochs=1, checkpoint_every_steps=3)
    reset_accelerate_state()
    run = run_toy(
        {**raw, "training": {**raw["training"], "stop_after_steps": 7}},
        tmp_path_factory.mktemp("stopped") / "run",
        toy_data,
    )
    reset_accelerate_state()
    return raw, run


@pytest.mark.parametrize("name", ["optimizer.bin", "random_states_0.pkl", LEGACY_TRAINER_STATE])
def test_a_tampered_pickle_in_a_checkpoint_is_refused_and_never_runs(stopped_run, toy_data, tmp_path, name):
    raw, stopped = stopped_run
    run = tmp_path / "run"
    shutil.copytree(stopped, run)
    folder = run / "checkpoints" / "step_6"
    if name == LEGACY_TRAINER_STATE:  # a run written before trainer_state.json: its pickle is read, but only safely
        (folder / TRAINER_STATE).unlink()
    marker = tmp_path / "code_ran"
    torch.save(WritesAMarker(marker), folder / name)
    reseal(folder)
    with pytest.raises(CheckpointDamagedError) as caught:
        run_toy(raw, run, toy_data, resume="step_6")
    message = str(caught.value)
    assert not marker.exists()
    assert f"{folder / name} was refused: it is not plain tensors and values readable without running code" in message
    assert "\n" not in message


def test_a_damaged_newest_checkpoint_falls_back_with_a_warning_or_is_refused_by_name(
    stopped_run, toy_data, tmp_path, caplog
):
    raw, stopped = stopped_run
    run = tmp_path / "run"
    shutil.copytree(stopped, run)
    weights = run / "checkpoints" / "step_6" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    with pytest.raises(CheckpointDamagedError) as caught:
        run_toy(raw, run, toy_data, resume="step_6")
    assert str(caught.value) == (
        f"--resume 'step_6': {weights} is 100 bytes, "
        f"{len((stopped / 'checkpoints' / 'step_6' / 'model.safetensors').read_bytes())} "
        "were written (truncated or damaged); resume from another "
        "checkpoint (--resume latest picks the newest intact one)"
    )
    reset_accelerate_state()
    with caplog.at_level(logging.WARNING, logger="rs_retrieval.training.checkpoints"):
        run_toy(raw, run, toy_data, resume="latest")
    skipped = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert len(skipped) == 1 and str(weights) in skipped[0] and "truncated" in skipped[0]
    assert "resumed from" in caplog.text or (run / "model").is_dir()
    assert checkpoint_steps(run)[-1] == 10  # went on from step 3 to the end


def test_ctrl_c_during_train_says_how_to_resume_and_exits_130(tmp_path, toy_data, processor_dir, capsys, monkeypatch):
    from rs_retrieval.cli import main
    from rs_retrieval.training.trainer import _Loop

    toy_data.save_to_disk(tmp_path / "data")
    raw = toy_recipe(processor_dir, epochs=1, checkpoint_every_steps=3)
    raw["data"] = {"path": str(tmp_path / "data")}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(raw))
    step = _Loop.step

    def ctrl_c_at_step_5(self, batch, progress):
        if self.state.global_step == 5:
            raise KeyboardInterrupt
        return step(self, batch, progress)

    monkeypatch.setattr(_Loop, "step", ctrl_c_at_step_5)
    argv = ["train", "--config", str(tmp_path / "recipe.yaml"), "--output-dir", str(tmp_path / "run")]
    assert main(argv) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "interrupted; resume with --resume latest"
    monkeypatch.setattr(_Loop, "step", step)
    reset_accelerate_state()
    assert main([*argv, "--resume", "latest"]) == 0


def test_a_full_disk_at_the_final_model_save_keeps_the_checkpoints_and_resume_finishes(
    tmp_path, toy_data, processor_dir, monkeypatch
):
    from test_training_toy import ToyModel

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    raw = toy_recipe(processor_dir, epochs=1, eval_every_epochs=0)
    save = ToyModel.save_pretrained
    monkeypatch.setattr(ToyModel, "save_pretrained", disk_full)
    run = tmp_path / "run"
    with pytest.raises(DiskFullError) as caught:
        run_toy(raw, run, toy_data)
    assert str(caught.value) == (
        f"no space left on the device to write the model {run / 'model'}; no partial model was left; "
        "the run's checkpoints are intact: free space, then --resume latest"
    )
    assert not (run / "model").exists() and not list(run.glob(".model*")) and checkpoint_steps(run) == [10]
    monkeypatch.setattr(ToyModel, "save_pretrained", save)
    reset_accelerate_state()
    run_toy(raw, run, toy_data, resume="latest")
    assert (run / "model" / "config.json").is_file()
