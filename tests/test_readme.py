"""The README is a short front page whose snippets run as pasted.

Its Python snippets use the quickstart's output folder, so a module fixture runs the real quickstart cut
to two training steps in a temporary folder (rs_synth and the search cache go to a temporary user
cache), then each snippet runs there in a fresh interpreter, as a user would paste it.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def code_blocks(markdown: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", markdown, flags=re.S | re.M)


def test_readme_is_a_short_front_page():
    assert len(README.splitlines()) <= 200
    assert len(code_blocks(README, "python")) >= 1


def test_the_setup_commands_are_the_ones_ci_runs():
    """The install line names the steps `.ci/run` executes; the torch note comes before it."""
    install, tests = code_blocks(README, "bash")[:2]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "pip install torch==2.13.0" in install and "pip install -q torch==2.13.0" in ci
    assert "pip install -e '.[dev]'" in install and "pip install -q -e '.[dev]'" in ci
    assert install.strip().endswith("rs-retrieval quickstart")
    assert tests.strip() == ". .venv/bin/activate && python -m pytest -q" and "python -m pytest -q" in ci
    assert README.index("download.pytorch.org/whl/cpu") < README.index(install)


def test_the_cli_table_lists_every_command():
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    usage = subprocess.run(
        [sys.executable, "-m", "rs_retrieval.cli", "--help"], env=env, capture_output=True, text=True, timeout=120
    ).stdout
    commands = set(re.search(r"\{([a-z,-]+)\}", usage).group(1).split(","))
    listed = set(re.findall(r"^\| `([a-z-]+)[ `]", README, flags=re.M))
    assert commands == listed, (commands - listed, listed - commands)


@pytest.fixture(scope="module")
def quickstart_folder(tmp_path_factory):
    """A folder holding `runs/quickstart/` as `rs-retrieval quickstart` writes it (2 training steps)."""
    folder = tmp_path_factory.mktemp("readme")
    env = {
        **os.environ,
        "RS_RETRIEVAL_CACHE": str(folder / "cache"),
        "PYTHONPATH": str(ROOT / "src"),
        "OMP_NUM_THREADS": "1",
    }
    command = [sys.executable, "-m", "rs_retrieval.cli", "quickstart", "--set", "training.max_steps=2"]
    result = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder, env


@pytest.mark.parametrize("number", range(len(code_blocks(README, "python"))))
def test_python_snippet_runs_as_pasted(quickstart_folder, number):
    folder, env = quickstart_folder
    snippet = code_blocks(README, "python")[number]
    result = subprocess.run(
        [sys.executable, "-c", snippet], cwd=folder, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    if "search_images" in snippet:
        lines = result.stdout.splitlines()
        assert lines[0].startswith("['amfmn',") and lines[1] == "torch.Size([4, 2])"
        assert len(lines) == 5 and all(line.endswith(".png") for line in lines[2:])


def test_the_serve_line_serves_captions(quickstart_folder):
    """The README's `serve` line (the quickstart's own) passes a captions file that exists."""
    import json
    import shlex

    folder, _ = quickstart_folder
    assert 'json.load(open("runs/quickstart/summary.json"))["serve_command"]' in README
    line = json.loads((folder / "runs" / "quickstart" / "summary.json").read_text())["serve_command"]
    arguments = shlex.split(line)
    captions = Path(arguments[arguments.index("--captions") + 1])
    assert captions.is_file() and json.loads(captions.read_text())["images"]
    assert all(
        os.path.islink(p) for p in (folder / "runs" / "quickstart" / "test_images").iterdir()
    )  # as the README says
