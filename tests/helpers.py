"""Helpers shared by several test modules."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate.state import AcceleratorState, GradientState
from PIL import Image

from rs_retrieval.data import flatten_captions
from rs_retrieval.evaluation.evaluator import evaluate_retrieval

#: `accelerate launch` with two CPU ranks (gloo), as the multi-process tests run a script.
ACCELERATE_TWO_CPU_RANKS = [
    sys.executable,
    *"-m accelerate.commands.launch --multi_gpu --num_processes 2 --num_machines 1".split(),
    *"--mixed_precision no --dynamo_backend no".split(),
]


def reset_accelerate_state() -> None:
    """accelerate keeps one global configuration per process; each training run sets its own."""
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    reset_accelerate_state()
    yield
    reset_accelerate_state()


SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(filename: str, monkeypatch=None):
    """Import `scripts/<filename>` as a module (registered in sys.modules when `monkeypatch` is
    given, which dataclasses defined in the script need)."""
    spec = importlib.util.spec_from_file_location(Path(filename).stem, SCRIPTS / filename)
    module = importlib.util.module_from_spec(spec)
    if monkeypatch is not None:
        monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def train_and_evaluate(
    model, processor, train_split, test_split, optimizer, steps: int, batch_size: int, seed: int = 0
) -> dict:
    """Train on random caption batches of `train_split` (inputs encoded once), then return the
    package evaluator's un-reranked metrics on `test_split`."""
    rows = flatten_captions(train_split)[:]
    inputs = dict(processor.image_inputs(rows, train=False))
    inputs.update(processor.text_inputs(rows["caption"]))
    image_ids = torch.tensor(rows["image_index"])
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        batch = torch.randperm(len(image_ids), generator=generator)[:batch_size]
        loss = model(**{k: v[batch] for k, v in inputs.items()}, image_ids=image_ids[batch], return_loss=True).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return evaluate_retrieval(model.eval(), processor, test_split, progress=False)["none"]


def report_vs_chance(name: str, metrics: dict, n_img: int, captions_per_image: int = 5) -> dict:
    """Print R@1/R@10 against chance for an `n_img`-image test split; returns the chance levels."""
    n_txt = captions_per_image * n_img
    chance = {
        "i2t_R@1": 100 * captions_per_image / n_txt,
        "t2i_R@1": 100 / n_img,
        "i2t_R@10": 100 * min(1, 10 * captions_per_image / n_txt),
        "t2i_R@10": 100 * 10 / n_img,
    }
    print(
        f"\n{name} on rs_synth test ({n_img} images): "
        + ", ".join(f"{k} {metrics[k]:.1f} (chance {v:.1f})" for k, v in chance.items())
        + f", mR {metrics['mR']:.1f}"
    )
    return chance


def write_random_images(folder: Path, n: int, seed: int = 0, size: int = 40) -> Path:
    """`n` random-noise RGB PNGs img_00.png ... in `folder` (created); returns the folder."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"img_{i:02d}.png")
    return folder
