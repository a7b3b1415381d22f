"""Crash-safe checkpoints: a save interrupted by a kill or a full disk never becomes `--resume latest`."""

from __future__ import annotations

import errno
import logging
import shutil

import pytest
from accelerate import Accelerator
from test_training import run_toy, toy_recipe
from test_training_toy import toy_dataset_dict, toy_processor

from helpers import fresh_accelerate_state, reset_accelerate_state  # noqa: F401  (autouse fixture)
from rs_retrieval.errors import RSRetrievalError
from rs_retrieval.training.trainer import COMPLETE_MARKER, CheckpointNotFoundError, CheckpointSaveError, checkpoint_steps


@pytest.fixture(scope="module")
def toy_data():
    return toy_dataset_dict()


@pytest.fixture(scope="module")
def processor_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("toy") / "processor"
    toy_processor().save_pretrained(path)
    return path


def test_resume_latest_skips_a_half_written_checkpoint(tmp_path, toy_data, processor_dir, caplog):
    raw = toy_recipe(processor_dir, epochs=1, checkpoint_every_steps=3)
    run = run_toy({**raw, "training": {**raw["training"], "stop_after_steps": 7}}, tmp_path / "run", toy_data)
    checkpoints = run / "checkpoints"
    assert checkpoint_steps(run) == [3, 6] and not list(checkpoints.glob("*.partial"))
    # what a kill -9 in the middle of the step-9 save used to leave behind: a step folder with some files
    shutil.copytree(checkpoints / "step_6", checkpoints / "step_9")
    (checkpoints / "step_9" / COMPLETE_MARKER).unlink()
    (checkpoints / "step_9" / "custom_checkpoint_0.pkl").write_bytes(b"\x80")
    reset_accelerate_state()
    with caplog.at_level(logging.WARNING, logger="rs_retrieval.training.trainer"):
        run_toy(raw, run, toy_data, resume="latest")
    assert any("skipping" in r.getMessage() and "step_9" in r.getMessage() and "incomplete" in r.getMessage() for r in caplog.records)
    assert (run / "model").is_dir() and checkpoint_steps(run)[-1] == 10
    assert all((folder / COMPLETE_MARKER).is_file() for folder in checkpoints.iterdir())  # the stale half folder is gone
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
    with pytest.raises(CheckpointSaveError, match=r"could not write checkpoint .*step_6 \(\[Errno 28\] No space left on device\); the previous checkpoint .*step_3 is intact") as caught:
        run_toy(raw, tmp_path / "run", toy_data)
    assert isinstance(caught.value, RSRetrievalError)
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["step_3"]
    assert checkpoint_steps(tmp_path / "run") == [3]
