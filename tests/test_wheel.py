"""The release artefacts work outside the checkout.

Builds the sdist and the wheel with `python -m build` (the wheel from the sdist, as a release
does), checks them with `twine check`, then installs the wheel with its dependencies into a fresh
venv (CPU torch first, pip's cache reused) and runs the CLI in an empty folder with caches there
too: a shortened `rs-retrieval quickstart`, a few steps of `rs-retrieval train --config
amfmn_synth`, then the packaged recipe listing and `AutoModel.from_pretrained` on the result. A few minutes;
`-m "not slow and not wheel"` leaves it out while iterating.
"""

from __future__ import annotations

import json
import os
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest
from dists import ROOT
from dists import run_checked as _run

import rs_retrieval

pytestmark = pytest.mark.wheel

#: The quickstart shortened as the README documents (5 steps instead of the recipe's 480); every
#: other stage (rs_synth, validation, test evaluation, search, figures, card) runs as by default.
QUICKSTART_SET = ["training.max_steps=5"]
TRAIN_SET = ["training.max_steps=3", "training.eval_every_epochs=0", "output_dir=amfmn_run"]


def test_dists_carry_recipes_templates_and_data(dists):
    version = rs_retrieval.__version__
    assert dists["wheel"].name == f"rs_retrieval-{version}-py3-none-any.whl"
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        names = set(wheel.namelist())
        metadata = wheel.read(f"rs_retrieval-{version}.dist-info/METADATA").decode()
    recipes = {f"rs_retrieval/recipes/{p.name}" for p in (ROOT / "configs").iterdir() if p.is_file()}
    templates = {f"rs_retrieval/card_templates/{p.name}" for p in (ROOT / "hub_cards").iterdir() if p.is_file()}
    # every non-Python file under src/rs_retrieval/ that git tracks, i.e. the package's data files
    tracked = _run(["git", "ls-files", "src/rs_retrieval"], cwd=ROOT).split() if (ROOT / ".git").exists() else []
    data_files = {name.removeprefix("src/") for name in tracked if not name.endswith(".py")}
    modules = {name.removeprefix("src/") for name in tracked if name.endswith(".py")}
    assert recipes and templates and "rs_retrieval/resources/english_stopwords.txt" in names
    assert recipes | templates | data_files | modules <= names, sorted(
        (recipes | templates | data_files | modules) - names
    )
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert f"rs_retrieval-{version}.dist-info/licenses/LICENSE" in names
    assert f"Version: {version}\n" in metadata and "License-Expression: Apache-2.0\n" in metadata
    assert "Project-URL: Source," in metadata and "Classifier: " in metadata and "Keywords: " in metadata
    for extra in ("index", "geo", "web", "onnx", "tracking", "metrics", "all", "dev"):
        assert f"Provides-Extra: {extra}\n" in metadata
    with tarfile.open(dists["sdist"]) as sdist:
        members = {Path(*Path(m).parts[1:]).as_posix() for m in sdist.getnames()}
    assert {
        "setup.py",
        "pyproject.toml",
        "README.md",
        "LICENSE",
        "configs/amfmn_synth.yaml",
        "hub_cards/model_card.md",
        "src/rs_retrieval/packaged.py",
    } <= members


def test_installed_wheel_trains_and_loads_outside_the_checkout(dists, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python, cli = env_dir / "bin" / "python", env_dir / "bin" / "rs-retrieval"
    pip_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # torch pinned in the same resolve, so pip takes the CPU build; --no-compile skips byte-compiling
    # torch's thousands of modules (most of the install time)
    _run(
        [str(python), "-m", "pip", "install", "-q", "--no-compile", "torch==2.13.0", str(dists["wheel"])],
        cwd=tmp_path,
        env=pip_env,
    )

    work = tmp_path / "empty"
    work.mkdir()
    # the package's own caches (rs_synth images) start empty too; pip above kept its cache
    env = {
        "OMP_NUM_THREADS": "1",
        **pip_env,
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_OFFLINE": "1",
    }
    _run([str(cli), "quickstart", "--set", *QUICKSTART_SET], cwd=work, env=env)
    summary = json.loads((work / "runs" / "quickstart" / "summary.json").read_text())
    assert summary["test_metrics"] and len(summary["top5"]) == 5
    assert (work / "runs" / "quickstart" / "search_example.png").stat().st_size > 0

    _run([str(cli), "train", "--config", "amfmn_synth", "--set", *TRAIN_SET], cwd=work, env=env)
    model_dir = work / "amfmn_run" / "model"
    card = (model_dir / "README.md").read_text()  # filled from the packaged template
    assert card.startswith("---\n") and "## How to use" in card and "$model_ref" not in card
    # one process for the rest (each start imports torch and transformers)
    check = f"""
import contextlib, importlib.metadata, io, json
import torch
import rs_retrieval, rs_retrieval.packaged
from rs_retrieval.cli import main
from transformers import AutoModel, AutoProcessor
listing = io.StringIO()
with contextlib.redirect_stdout(listing):
    main(["recipes"])
model, processor = AutoModel.from_pretrained({str(model_dir)!r}), AutoProcessor.from_pretrained({str(model_dir)!r})
with torch.no_grad():
    embeds = model.get_text_features(**processor(text=["two white planes beside a grey runway"]))
print(json.dumps({{
    "module": rs_retrieval.__file__, "version": rs_retrieval.__version__,
    "dist_version": importlib.metadata.version("rs-retrieval"),
    "reads_installed_data": rs_retrieval.packaged._SOURCE_ROOT is None,
    "recipes": [line.split()[0] for line in listing.getvalue().splitlines()],
    "class": type(model).__name__, "embeds_shape": list(embeds.shape), "embeds_finite": bool(torch.isfinite(embeds).all()),
}}))
"""
    loaded = json.loads(_run([str(python), "-c", check], cwd=work, env=env).splitlines()[-1])
    assert Path(loaded["module"]).is_relative_to(env_dir) and loaded["reads_installed_data"]
    assert loaded["version"] == loaded["dist_version"] == rs_retrieval.__version__
    assert loaded["recipes"] == sorted(p.stem for p in (ROOT / "configs").glob("*.yaml"))
    assert loaded["class"] == "AMFMNModel" and loaded["embeds_shape"] == [1, 64] and loaded["embeds_finite"]
