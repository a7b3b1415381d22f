"""One entry point for whatever a folder holds: a training run or model, a dataset, the metric or a Space.

`rs-retrieval push PATH REPO_ID` calls `push_folder`; library users can too, or call the publisher of one kind
(`publish.push_model`, `publish.push_dataset`, `metric.push_metric`, `space.push_space`) directly.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputNotFoundError

KINDS = ("model", "dataset", "metric", "space")


def detect_kind(path: Path) -> str:
    """`model` for a run or model directory, `dataset` for a Parquet export or `save_to_disk` folder,
    `metric` for an evaluate metric folder (`<folder>/<folder>.py`), `space` for a Space folder
    (`app.py` + `requirements.txt`, as `rs-retrieval space build` writes)."""
    if (path / f"{path.name}.py").is_file():
        return "metric"
    if (path / "app.py").is_file() and (path / "requirements.txt").is_file():
        return "space"
    if (path / "config.json").is_file() or (path / "model" / "config.json").is_file():
        return "model"
    if (path / "data").is_dir() or (path / "dataset_dict.json").is_file() or (path / "dataset_info.json").is_file():
        return "dataset"
    raise InputNotFoundError(
        f"{path}: no config.json or model/config.json (a model) "
        "and no data/*.parquet or save_to_disk files (a dataset)"
    )


def push_folder(
    path: str | Path,
    repo_id: str,
    kind: str = "auto",
    *,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    card: bool = True,
    dataset_name: str | None = None,
    method: str | None = None,
    license: str | None = None,
    license_name: str | None = None,
    license_link: str | None = None,
):
    """Publish `path` as `kind` (`auto`: `detect_kind`) in one commit; returns `(kind, CommitInfo)`."""
    path = Path(path)
    kind = detect_kind(path) if kind == "auto" else kind
    common = dict(private=private, revision=revision, commit_message=commit_message)
    if kind == "metric":
        from .metric import push_metric

        return kind, push_metric(repo_id, path, **common)
    if kind == "space":
        from .space import push_space

        return kind, push_space(path, repo_id, **common)
    from .publish import push_dataset, push_model

    if kind == "model":
        return kind, push_model(
            path,
            repo_id,
            card=card,
            dataset_name=dataset_name,
            method=method,
            license=license,
            license_name=license_name,
            license_link=license_link,
            **common,
        )
    from ..models.records import canonical_dataset

    return kind, push_dataset(path, repo_id, dataset_name and canonical_dataset(dataset_name), card=card, **common)
