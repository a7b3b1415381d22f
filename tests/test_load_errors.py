"""Where a newcomer fails, the command line says what is wrong in one line and exits 2 (docs/inputs.md,
"Errors you may see"): damaged or misnamed model folders, devices the machine lacks, a bad pixel
limit, damaged index files opened with --no-verify, and `convert` with a missing checkpoint."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from clip_helpers import tiny_clip
from PIL import Image

from rs_retrieval.cli import main
from rs_retrieval.models.model_loading import ModelFolderError, check_model_folder
from rs_retrieval.pretrained import DeviceError, resolve_device

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A good tiny CLIP folder, an image and a small index built from a folder of images."""
    root = tmp_path_factory.mktemp("load_errors")
    model, processor = tiny_clip(seed=5)
    model.save_pretrained(root / "good")
    processor.save_pretrained(root / "good")
    (root / "images").mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(root / "images" / f"{i}.png")
    assert (
        main(
            [
                "index",
                "build",
                "--images",
                str(root / "images"),
                "--model",
                str(root / "good"),
                "--out",
                str(root / "index"),
            ]
        )
        == 0
    )
    return root


def damaged_copies(root: Path) -> dict[str, tuple[Path, str]]:
    """name -> (model path to pass, text the one-line error must contain)."""
    cases = {}

    def copy(name: str) -> Path:
        shutil.copytree(root / "good", root / name)
        return root / name

    weights = copy("truncated") / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    cases["truncated"] = (root / "truncated", "model.safetensors is incomplete or damaged")
    (copy("not_json") / "config.json").write_text("{not json")
    cases["not_json"] = (root / "not_json", "config.json is not valid JSON")
    (copy("empty_config") / "config.json").write_text("")
    cases["empty_config"] = (root / "empty_config", "config.json is not valid JSON (it is empty)")
    config = json.loads((root / "good" / "config.json").read_text())
    (copy("unknown_type") / "config.json").write_text(json.dumps({**config, "model_type": "galrx"}))
    cases["unknown_type"] = (root / "unknown_type", "model_type 'galrx' is neither a retrieval method")
    (copy("no_weights") / "model.safetensors").unlink()
    cases["no_weights"] = (root / "no_weights", "has config.json but no weights")
    run = root / "runs" / "quickstart"
    shutil.copytree(root / "good", run / "model")
    (run / "metrics.json").write_text("{}")
    cases["run_folder"] = (run, f"did you mean {run / 'model'}?")
    return cases


def run_cli(*args, **env):
    environment = {**os.environ, "PYTHONPATH": str(SRC), **env}
    return subprocess.run(
        [sys.executable, "-m", "rs_retrieval.cli", *args], capture_output=True, text=True, env=environment, timeout=300
    )


def last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


def test_damaged_model_folders_are_one_line_errors(workspace, capsys):
    image = str(workspace / "images" / "0.png")
    for name, (path, expected) in damaged_copies(workspace).items():
        with pytest.raises(ModelFolderError) as error:
            check_model_folder(path)
        assert expected in str(error.value) and "\n" not in str(error.value), name
        assert main(["rank-captions", image, "--captions", "a ship", "--model", str(path)]) == 2, name
        err = capsys.readouterr().err
        assert err.startswith("error: ") and expected in err and len(err.strip().splitlines()) == 1, (name, err)
        assert "upgrade" not in err.lower()
    check_model_folder(workspace / "good")
    from rs_retrieval.models import load_retrieval_processor

    with pytest.raises(ModelFolderError, match="did you mean"):  # the library's processor loader too
        load_retrieval_processor(workspace / "runs" / "quickstart")


def test_a_fresh_process_shows_no_traceback(workspace):
    """The run-folder mistake as a user meets it: the subprocess prints one line and exits 2."""
    damaged_copies_root = workspace / "fresh"
    shutil.copytree(workspace / "good", damaged_copies_root / "model")
    result = run_cli("search", "ships", "--images", str(workspace / "images"), "--model", str(damaged_copies_root))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        last_line(result.stderr)
        == f"error: {damaged_copies_root} is a training run folder, not a model folder: did you mean {damaged_copies_root / 'model'}?"
    )


def test_devices_the_machine_lacks_are_refused_before_loading(workspace, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    image = str(workspace / "images" / "0.png")
    for device, expected in (
        ("cuda", "error: device 'cuda': this machine has no usable CUDA GPU (or torch"),
        ("cuda:1", "error: device 'cuda:1': this machine has no usable CUDA GPU"),
        ("foo", "error: device 'foo' is not a torch device name (cpu, cuda, cuda:1, mps, ...)"),
    ):
        with pytest.raises(DeviceError):
            resolve_device(device)
        assert (
            main(
                [
                    "rank-captions",
                    image,
                    "--captions",
                    "a ship",
                    "--model",
                    str(workspace / "good"),
                    "--device",
                    device,
                ]
            )
            == 2
        )
        err = capsys.readouterr().err
        assert err.startswith(expected) and len(err.splitlines()) == 1  # one line, before any weight loading
    assert resolve_device("cpu") == "cpu" and resolve_device(None) == "cpu"


def test_a_non_numeric_pixel_limit_is_one_line(workspace, capsys, monkeypatch):
    search = ["search", "ships", "--images", str(workspace / "images"), "--model", str(workspace / "good")]
    search += ["--cache-dir", str(workspace / "cache")]
    monkeypatch.setenv("RS_RETRIEVAL_MAX_PIXELS", "lots")
    assert main(search) == 2
    assert (
        last_line(capsys.readouterr().err)
        == "error: RS_RETRIEVAL_MAX_PIXELS='lots' is not a whole number of pixels (e.g. RS_RETRIEVAL_MAX_PIXELS=200000000; 0 = no limit)"
    )
    monkeypatch.setenv("RS_RETRIEVAL_MAX_PIXELS", "200_000_000")
    assert main(search) == 0


@pytest.mark.parametrize("damaged", ["vectors.faiss", "vectors.npy", "metadata.parquet"])
def test_index_search_no_verify_names_the_damaged_file(workspace, tmp_path, capsys, damaged):
    index = tmp_path / "index"
    shutil.copytree(workspace / "index", index)
    path = next(index.glob(f"g*/{damaged}"))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert main(["index", "search", str(index), "a ship", "--no-verify", "--model", str(workspace / "good")]) == 2
    line = last_line(capsys.readouterr().err)
    assert line.startswith(f"error: index file {path} cannot be read (") and line.endswith(
        "rebuild the index to repair it"
    )
    assert (
        main(["index", "search", str(index), "a ship", "--model", str(workspace / "good")]) == 2
    )  # verified: the checksum names it
    assert f"index file {path} is corrupt" in capsys.readouterr().err


def test_convert_names_the_missing_checkpoint_first(tmp_path, capsys):
    checkpoint, vocab = tmp_path / "GaLR_best.pth.tar", tmp_path / "vocab.json"
    assert main(["convert", "--method", "galr", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"error: checkpoint {checkpoint} does not exist\n"  # before the missing --vocab
    checkpoint.write_bytes(b"x")
    assert (
        main(
            [
                "convert",
                "--method",
                "galr",
                "--checkpoint",
                str(checkpoint),
                "--vocab",
                str(vocab),
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 2
    )
    assert capsys.readouterr().err == f"error: vocabulary {vocab} does not exist\n"
    release = tmp_path / "RemoteCLIP-ViT-B-32.pt"
    assert (
        main(
            [
                "convert",
                "--method",
                "openclip",
                "--checkpoint",
                str(release),
                "--arch",
                "ViT-B-32",
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 2
    )
    assert capsys.readouterr().err == f"error: checkpoint {release} does not exist\n"
