"""Publishing the retrieval metric (`rs_retrieval.evaluation.hf_evaluate`) as a Hub metric.

A pushed copy loads with `evaluate.load("org/name")`. Hub metrics are Space repositories whose script is
named after the repository (`name.py`), with a Gradio `app.py` and the `requirements.txt` the
Space installs (the script needs numpy, datasets and evaluate, never rs_retrieval), which
`stage_metric` writes.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ..evaluation.hf_evaluate import METRIC_DIR
from .publish import _publish
from .space import pinned

SPACE_APP = """import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load("{script}")
launch_gradio_widget(module)
"""
#: What the metric Space installs (Gradio comes with the Space's SDK), pinned to the versions here.
SPACE_REQUIREMENTS = ("evaluate", "datasets", "numpy")


def space_requirements() -> str:
    return "".join(f"{line}\n" for line in pinned(SPACE_REQUIREMENTS))


def stage_metric(repo_name: str, staging: str | Path, source: str | Path = METRIC_DIR) -> Path:
    """Fill `staging` with a metric Space: `<repo_name>.py`, README card, `app.py` and `requirements.txt`."""
    source, staging = Path(source), Path(staging)
    script = source / f"{source.name}.py"
    if not script.is_file() or not (source / "README.md").is_file():
        raise FileNotFoundError(f"{source} is not an evaluate metric folder: expected {script.name} and README.md")
    staging.mkdir(parents=True, exist_ok=True)
    shutil.copy2(script, staging / f"{repo_name}.py")
    shutil.copy2(source / "README.md", staging / "README.md")
    (staging / "app.py").write_text(SPACE_APP.format(script=f"{repo_name}.py"), encoding="utf-8")
    (staging / "requirements.txt").write_text(space_requirements(), encoding="utf-8")
    return staging


def push_metric(
    repo_id: str,
    source: str | Path = METRIC_DIR,
    *,
    private: bool | None = None,
    token: str | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
):
    """Publish the metric folder as a Hub metric (a Gradio Space) in one commit; returns the `CommitInfo`."""
    with tempfile.TemporaryDirectory(prefix="rs_retrieval_push_") as tmp:
        staging = stage_metric(repo_id.rsplit("/", 1)[-1], Path(tmp) / "repo", source)
        return _publish(
            staging,
            repo_id,
            "space",
            private,
            token,
            revision,
            commit_message or "Upload evaluate metric",
            space_sdk="gradio",
        )
