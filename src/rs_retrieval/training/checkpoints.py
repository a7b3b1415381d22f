"""Checkpoint folders: written whole or not at all, verified before use, never a way to run code.

A checkpoint is `checkpoints/step_N/`: accelerate's states (model weights in safetensors; optimizer,
scheduler and RNG states as torch pickles) plus `trainer_state.json`. It is saved as
`step_N.partial` and renamed once `checkpoint_complete.json` is written last, recording every
file's size and SHA-256. Resuming verifies those records (`--resume latest` falls back to the
newest intact checkpoint, naming the bad file) and reads every pickle with
`torch.load(weights_only=True)`, which rebuilds tensors and plain containers only: a run folder
someone else sent cannot execute code (docs/security.md).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
from pathlib import Path

from ..errors import RSRetrievalError
from ..fileio import sha256_file, write_json_atomic

CHECKPOINT_PREFIX = "step_"
#: Written last into a checkpoint folder: its presence means every file of the state is there.
COMPLETE_MARKER = "checkpoint_complete.json"
#: The trainer's progress, as JSON (accelerate's custom-state pickle would be unpickled unrestricted).
TRAINER_STATE = "trainer_state.json"
#: What runs written before TRAINER_STATE existed hold instead; read only with weights_only=True.
LEGACY_TRAINER_STATE = "custom_checkpoint_0.pkl"
logger = logging.getLogger(__name__)


class CheckpointNotFoundError(RSRetrievalError, FileNotFoundError):
    """`--resume` names no complete checkpoint."""


class CheckpointSaveError(RSRetrievalError, OSError):
    """A checkpoint could not be written (e.g. disk full); the previous one is intact."""


class CheckpointDamagedError(RSRetrievalError, ValueError):
    """A checkpoint file differs from its recorded size or hash, or cannot be read without running code."""


def step_folders(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every `checkpoints/step_N` and `step_N.partial`, complete or not, oldest first."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [
        (p.name[len(CHECKPOINT_PREFIX) :].removesuffix(".partial"), p)
        for p in folder.iterdir()
        if p.name.startswith(CHECKPOINT_PREFIX)
    ]
    return sorted((int(step), p) for step, p in found if step.isdigit())


def is_complete_checkpoint(folder: Path) -> bool:
    folder = Path(folder)
    return folder.suffix != ".partial" and (folder / COMPLETE_MARKER).is_file()


def checkpoint_steps(run_dir: Path) -> list[int]:
    """Steps of the complete checkpoints of `run_dir`, oldest first."""
    return [step for step, folder in step_folders(run_dir) if is_complete_checkpoint(folder)]


def mark_complete(folder: Path, trainer_state: dict, **marker) -> None:
    """Write the trainer state, then the marker with every file's size and SHA-256 (last)."""
    folder = Path(folder)
    write_json_atomic(folder / TRAINER_STATE, trainer_state)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != COMPLETE_MARKER)
    records = {p.relative_to(folder).as_posix(): {"size": p.stat().st_size, "sha256": sha256_file(p)} for p in files}
    write_json_atomic(folder / COMPLETE_MARKER, {**marker, "files": records})


def save_checkpoint(accelerator, run_dir: Path, trainer_state: dict, step: int, epoch: int, keep: int) -> Path:
    """`accelerator.save_state` into checkpoints/step_N.partial, mark it complete, rename it to
    step_N, then keep the newest `keep` complete checkpoints (older incomplete folders go too).
    A failed write raises `CheckpointSaveError` naming the previous checkpoint, which is intact."""
    run_dir = Path(run_dir)
    folder = run_dir / "checkpoints" / f"{CHECKPOINT_PREFIX}{step}"
    partial = folder.with_name(folder.name + ".partial")
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(partial))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            mark_complete(partial, trainer_state, step=step, epoch=epoch)
            shutil.rmtree(folder, ignore_errors=True)  # an incomplete leftover of the same step
            os.replace(partial, folder)
    except OSError as err:
        if accelerator.is_main_process:
            shutil.rmtree(partial, ignore_errors=True)
        previous = checkpoint_steps(run_dir)
        intact = (
            f"the previous checkpoint {run_dir / 'checkpoints' / f'{CHECKPOINT_PREFIX}{previous[-1]}'} is intact"
            if previous
            else "no earlier checkpoint exists"
        )
        raise CheckpointSaveError(f"could not write checkpoint {folder} ({err}); {intact}") from err
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        stale = checkpoint_steps(run_dir)[:-keep]
        for older_step, old in step_folders(run_dir):
            if older_step < step and (older_step in stale or not is_complete_checkpoint(old)):
                shutil.rmtree(old)
    return folder


def verify_checkpoint(folder: Path) -> None:
    """Raise `CheckpointDamagedError` naming the first file that is missing or differs from its record."""
    folder = Path(folder)
    try:
        records = json.loads((folder / COMPLETE_MARKER).read_text(encoding="utf-8")).get("files")
    except (OSError, ValueError, AttributeError) as err:
        raise CheckpointDamagedError(f"{folder / COMPLETE_MARKER} is unreadable ({err})") from None
    if records is None:  # written before files were recorded: nothing to verify against
        logger.warning("%s records no file hashes (written by an older version): not verified", folder)
        return
    for name, record in records.items():
        path = folder / name
        if not path.is_file():
            raise CheckpointDamagedError(f"{path} is missing")
        if path.stat().st_size != record["size"]:
            raise CheckpointDamagedError(
                f"{path} is {path.stat().st_size} bytes, {record['size']} were written (truncated or damaged)"
            )
        if sha256_file(path) != record["sha256"]:
            raise CheckpointDamagedError(f"{path} differs from the file that was written (SHA-256 mismatch)")


def resolve_resume(run_dir: Path, resume: str) -> Path:
    """`latest` -> the newest complete, intact checkpoint of `run_dir` (warning about each one
    skipped and why); `step_N` or a folder path -> that checkpoint, which must be complete and intact."""
    if resume == "latest":
        for _, folder in reversed(step_folders(run_dir)):
            if not is_complete_checkpoint(folder):
                logger.warning(
                    "--resume latest: skipping %s: incomplete (no %s; the save was interrupted)",
                    folder,
                    COMPLETE_MARKER,
                )
                continue
            try:
                verify_checkpoint(folder)
            except CheckpointDamagedError as err:
                logger.warning("--resume latest: skipping %s: %s", folder, err)
                continue
            return folder
        skipped = " intact" if step_folders(run_dir) else ""
        raise CheckpointNotFoundError(f"--resume latest: no{skipped} checkpoint under {Path(run_dir) / 'checkpoints'}")
    path = Path(resume)
    if not path.is_dir() and resume.startswith(CHECKPOINT_PREFIX):
        path = Path(run_dir) / "checkpoints" / resume
    if not any((path / name).is_file() for name in (TRAINER_STATE, LEGACY_TRAINER_STATE, COMPLETE_MARKER)):
        raise CheckpointNotFoundError(f"--resume {resume!r}: not a checkpoint folder written by this trainer")
    if not is_complete_checkpoint(path):
        raise CheckpointNotFoundError(
            f"--resume {resume!r}: incomplete checkpoint (no {COMPLETE_MARKER}; the save was interrupted)"
        )
    try:
        verify_checkpoint(path)
    except CheckpointDamagedError as err:
        raise CheckpointDamagedError(
            f"--resume {resume!r}: {err}; resume from another checkpoint (--resume latest picks the newest intact one)"
        ) from None
    return path


def load_pickle_safely(path: Path):
    """`torch.load(weights_only=True)` with accelerate's allow-list (numpy RNG arrays): tensors and
    plain containers only; anything else is a `CheckpointDamagedError` naming the file."""
    from accelerate.utils.other import load

    try:
        return load(path, map_location="cpu")
    except (pickle.UnpicklingError, EOFError, RuntimeError, ValueError, AttributeError) as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        # torch's text opens with advice to unpickle anyway; the line that names the refused global says why
        reason = next(
            (
                line.removeprefix("WeightsUnpickler error: ").split(". Please")[0]
                for line in lines
                if "Unsupported" in line
            ),
            None,
        )
        reason = reason or (lines[0] if lines else type(err).__name__)
        raise CheckpointDamagedError(
            f"{path} was refused: it is not plain tensors and values readable without running code ({reason})"
        ) from None


def read_trainer_state(folder: Path) -> dict:
    """The trainer state of a checkpoint: trainer_state.json, or an older run's pickle read safely."""
    folder = Path(folder)
    if (folder / TRAINER_STATE).is_file():
        try:
            return json.loads((folder / TRAINER_STATE).read_text(encoding="utf-8"))
        except ValueError as err:
            raise CheckpointDamagedError(f"{folder / TRAINER_STATE} is not valid JSON ({err})") from None
    state = load_pickle_safely(folder / LEGACY_TRAINER_STATE)
    if not isinstance(state, dict):
        raise CheckpointDamagedError(
            f"{folder / LEGACY_TRAINER_STATE} holds a {type(state).__name__}, not the trainer state"
        )
    return state


def load_checkpoint(accelerator, folder: Path) -> dict:
    """Restore accelerate's states from `folder` and return the trainer state; every pickle is read
    with weights_only=True, and one that cannot be is named in a `CheckpointDamagedError`."""
    folder = Path(folder)
    trainer_state = read_trainer_state(folder)
    # accelerate skips an unreadable RNG file with a log line only; resuming then drifts silently.
    load_pickle_safely(folder / f"random_states_{accelerator.process_index}.pkl")
    try:
        accelerator.load_state(str(folder))
    except (pickle.UnpicklingError, EOFError, RuntimeError) as err:
        for path in sorted(folder.glob("*.bin")):  # say which file it was
            load_pickle_safely(path)
        raise CheckpointDamagedError(f"{folder}: cannot be restored ({str(err).strip().splitlines()[0]})") from None
    return trainer_state
