"""Publish a trained model or a dataset to the Hugging Face Hub in one atomic commit.

Everything that goes into a repository is first staged in a temporary folder (model files, the
run's metrics and figures, the remote-code bundle, the card; or the Parquet files and the dataset
card), then sent with `HfApi.upload_folder`: binaries are uploaded as LFS objects first and the
commit that makes them visible is created last, in one request that the Hub applies atomically.
A push that fails part-way therefore leaves the repository at its previous revision.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import tempfile
from pathlib import Path

from ..cards.dataset import write_dataset_card
from ..cards.model import write_model_card
from ..cards.runs import resolve_run
from ..errors import RSRetrievalError
from .remote_code import bundle

#: Files of a model directory that are not published: stale remote code (re-bundled), training
#: state, temporary and hidden files.
MODEL_EXCLUDES = ("*.py", ".*", "*.tmp", "optimizer*", "scheduler*", "rng_state*", "trainer_state*")
#: Files of a training run published next to the model (the card links to them).
RUN_ARTEFACTS = ("metrics.json", "test_metrics.json", "training_args.json", "recipe.yaml", "log.jsonl", "*.png")


class HubPushError(RSRetrievalError, RuntimeError):
    """A push did not complete; the message says what failed and what state the repository is in."""


def _place(source: Path, target: Path) -> None:
    """Hard-link when possible (weights can be large), copy otherwise."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _matches(name: str, patterns) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in patterns)


def load_for_bundle(model_dir: str | Path, model=None, processor=None):
    """The model and processor of a saved directory (loaded through the Auto classes unless given);
    the processor is None when the directory has no processor_config.json."""
    from transformers import AutoModel, AutoProcessor

    from .. import models  # noqa: F401  (registers the package's methods)
    from ..pretrained import check_processor

    model_dir = Path(model_dir)
    if model is None:
        model = AutoModel.from_pretrained(model_dir)
    if processor is None and (model_dir / "processor_config.json").is_file():
        processor = AutoProcessor.from_pretrained(model_dir)
    if processor is not None:
        check_processor(model, processor, source=str(model_dir))
    return model, processor


def is_plain_transformers(model_dir: str | Path) -> bool:
    """True for CLIP-family folders: transformers itself loads them, so no remote code is bundled."""
    import json

    from ..models.clip.modeling_clip import DUAL_ENCODER_CLASSES

    config = Path(model_dir) / "config.json"
    return (
        config.is_file() and json.loads(config.read_text(encoding="utf-8")).get("model_type") in DUAL_ENCODER_CLASSES
    )


def stage_model(
    path: str | Path, staging: str | Path, model=None, processor=None, card: bool = True, **card_kwargs
) -> Path:
    """Fill `staging` with what a model repository holds: model + processor files, run artefacts,
    flat remote code (`bundle`; not for CLIP-family folders, which plain transformers loads) and,
    with `card`, a README model card (`write_model_card` kwargs)."""
    model_dir, run_dir = resolve_run(path)
    staging = Path(staging)
    staging.mkdir(parents=True, exist_ok=True)
    for file in sorted(model_dir.iterdir()):
        if file.is_file() and not _matches(file.name, MODEL_EXCLUDES) and not (card and file.name == "README.md"):
            _place(file, staging / file.name)
    if run_dir is not None:
        for file in sorted(run_dir.iterdir()):
            if file.is_file() and _matches(file.name, RUN_ARTEFACTS) and not (staging / file.name).exists():
                _place(file, staging / file.name)
    if not is_plain_transformers(staging):
        bundle(staging, *load_for_bundle(staging, model, processor))
    if card:
        write_model_card(staging, **card_kwargs)
    return staging


def _stage_dataset(source, staging: Path) -> Path:
    """Parquet layout (`data/<split>-*.parquet`) of a DatasetDict, a `save_to_disk` folder or an export folder."""
    if isinstance(source, (str, os.PathLike)):
        source = Path(source)
        if (source / "data").is_dir():
            (staging / "data").mkdir(parents=True)
            for file in sorted((source / "data").glob("*.parquet")):
                _place(file, staging / "data" / file.name)
            if (source / "README.md").is_file():
                shutil.copy2(source / "README.md", staging / "README.md")
            return staging
        if (source / "dataset_dict.json").is_file() or (source / "dataset_info.json").is_file():
            import datasets

            source = datasets.load_from_disk(str(source))
        else:
            raise FileNotFoundError(f"{source} is neither a Parquet export (data/*.parquet) nor a save_to_disk folder")
    from ..data import export_parquet

    return export_parquet(source, staging, overwrite=True)


def _publish(
    folder: Path,
    repo_id: str,
    repo_type: str,
    private: bool | None,
    token: str | None,
    revision: str | None,
    commit_message: str,
    replace: bool = True,
    space_sdk: str | None = None,
):
    """Upload `folder` as one commit; `replace` deletes the repository's other files in that commit
    (`space_sdk` for a new Space repository)."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    staged = {
        str(p.relative_to(folder)).replace(os.sep, "/"): p.stat().st_size for p in folder.rglob("*") if p.is_file()
    }
    try:
        api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, space_sdk=space_sdk)
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            repo_type=repo_type,
            revision=revision,
            commit_message=commit_message,
            delete_patterns="*" if replace else None,
        )
        published = {
            entry.path: entry.size
            for entry in api.list_repo_tree(repo_id, recursive=True, revision=commit.oid, repo_type=repo_type)
            if hasattr(entry, "size") and entry.path != ".gitattributes"
        }
    except Exception as err:
        raise HubPushError(
            f"pushing {len(staged)} files to {repo_type} repo {repo_id!r} failed: {type(err).__name__}: {err}\n"
            "All files go into one commit that the Hub creates only after every upload succeeded, so the repository "
            "keeps its previous revision (or the complete new one if the failure hit the commit's reply). Run the "
            "push again to retry."
        ) from err
    if (published if replace else {path: published.get(path) for path in staged}) != staged:
        raise HubPushError(
            f"{repo_type} repo {repo_id!r} at {commit.oid} does not hold "
            f"the staged files: published {published}, staged {staged}"
        )
    return commit


def push_model(
    path: str | Path,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    model=None,
    processor=None,
    card: bool = True,
    dataset_name: str | None = None,
    method: str | None = None,
    license: str | None = None,
    license_name: str | None = None,
    license_link: str | None = None,
):
    """Publish a training run (`run/model/` + metrics, recipe, figures) or a model directory.

    The repository receives the model and processor files, the run artefacts, the flat remote code
    (loads with `trust_remote_code=True` without rs_retrieval) and a model card. `model`/`processor`
    default to loading the directory through the Auto classes (import the module that registers a
    custom model first). `license` defaults to apache-2.0 for a trained model and to the
    release's own licence for a converted CLIP release; `other` needs `license_name`.
    Returns the `CommitInfo` of the single commit.
    """
    with tempfile.TemporaryDirectory(prefix="rs_retrieval_push_") as tmp:
        staging = stage_model(
            path,
            Path(tmp) / "repo",
            model=model,
            processor=processor,
            card=card,
            dataset_name=dataset_name,
            method=method,
            repo_id=repo_id,
            license=license,
            license_name=license_name,
            license_link=license_link,
        )
        return _publish(
            staging,
            repo_id,
            "model",
            private,
            token,
            revision,
            commit_message or f"Upload model from {Path(path).name}",
        )


def push_dataset(
    source,
    repo_id: str,
    dataset_name: str | None = None,
    *,
    private: bool | None = None,
    token: str | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    card: bool = True,
):
    """Publish a dataset as Parquet plus a dataset card, so `datasets.load_dataset(repo_id)` reads it.

    `source`: a `DatasetDict`/`Dataset`, a `save_to_disk` folder, or a Parquet export folder
    (`rs_retrieval.data.export_parquet` layout). `dataset_name` defaults to the one the export
    recorded (its `split_info`), else the folder's name; the card keeps the export's licence and
    citation. Returns the `CommitInfo` of the single commit.
    """
    with tempfile.TemporaryDirectory(prefix="rs_retrieval_push_") as tmp:
        staging = _stage_dataset(source, Path(tmp) / "repo")
        if card:
            write_dataset_card(staging, dataset_name, repo_id=repo_id)
        elif not (staging / "README.md").is_file():
            raise HubPushError(f"{source} has no README.md with the split `configs`; push it with card=True")
        return _publish(
            staging,
            repo_id,
            "dataset",
            private,
            token,
            revision,
            commit_message or f"Upload {dataset_name or 'dataset'} as Parquet",
        )


def push_processor(
    processor,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
):
    """Add a processor (its files and one-file remote code with `auto_map`) to a repository in one
    commit, keeping the repository's other files (the model pushed before it)."""
    with tempfile.TemporaryDirectory(prefix="rs_retrieval_push_") as tmp:
        staging = Path(tmp) / "repo"
        processor.save_pretrained(staging)
        bundle(staging, processor=processor)
        return _publish(
            staging,
            repo_id,
            "model",
            private,
            token,
            revision,
            commit_message or f"Upload {type(processor).__name__}",
            replace=False,
        )
