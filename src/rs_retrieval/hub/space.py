"""A Gradio Space that serves rs_retrieval's web app: `rs-retrieval space build`, then
`rs-retrieval push SPACE_DIR org/name --type space`.

The Space folder holds the model (a copy, or a Hub id loaded at start), the images or index it
searches, this package's wheel under `wheels/`, a `requirements.txt` that installs the wheel with
every dependency pinned to the versions it was built with, `space.json` (what `app.py` serves) and
an `app.py` that is three lines around `rs_retrieval.app.launch.serve_space`.

The Hub's Space builder installs `requirements.txt` before it copies the repository, so a
requirement on a file in the repository cannot work there: `push` rewrites the wheel's line to
the wheel's `resolve` URL in the pushed repository, with its SHA-256 (a public Space; a private
one needs the wheel on an index the builder can reach). Locally the folder's own
`requirements.txt` installs from `wheels/`.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

from packaging.requirements import Requirement

from ..cards.runs import resolve_run
from ..errors import RSRetrievalError
from ..fileio import atomic_directory, sha256_file
from .publish import MODEL_EXCLUDES, _matches, _place, _publish

DIST_NAME = "rs-retrieval"
WHEEL_DIR = "wheels"
SPACE_APP = '''"""Gradio Space built by `rs-retrieval space build`: rs_retrieval's web app over this folder's
model and images (what it serves is in space.json)."""

from pathlib import Path

from rs_retrieval.app.launch import serve_space

serve_space(Path(__file__).resolve().parent)
'''


class SpaceError(RSRetrievalError, ValueError):
    """A Space cannot be built or pushed as asked (the message names the input)."""


def pinned(requirements: Iterable[str]) -> list[str]:
    """Each requirement pinned to the version installed here (local labels such as `+cpu` dropped,
    since indexes do not serve them); a requirement that is not installed keeps its specifier."""
    lines = []
    for text in requirements:
        requirement = Requirement(text)
        try:
            version = importlib.metadata.version(requirement.name).split("+")[0]
        except importlib.metadata.PackageNotFoundError:
            lines.append(str(requirement))
            continue
        extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
        lines.append(f"{requirement.name}{extras}=={version}")
    return lines


def wheel_requirements(wheel: Path, extras: Iterable[str]) -> list[str]:
    """The `Requires-Dist` of `wheel` that apply with `extras` (markers on the extra stripped)."""
    with zipfile.ZipFile(wheel) as archive:
        metadata = next((n for n in archive.namelist() if n.endswith(".dist-info/METADATA")), None)
        if metadata is None:
            raise SpaceError(f"{wheel} is not a wheel: it has no .dist-info/METADATA")
        lines = archive.read(metadata).decode("utf-8").splitlines()
    wanted, names = [], set()
    for line in lines:
        if not line.startswith("Requires-Dist: "):
            continue
        requirement = Requirement(line.removeprefix("Requires-Dist: "))
        if requirement.name == DIST_NAME or requirement.name in names:
            continue  # `all` and `dev` name the package itself
        if requirement.marker is None or any(requirement.marker.evaluate({"extra": extra}) for extra in extras):
            requirement.marker = None
            wanted.append(str(requirement))
            names.add(requirement.name)
    return wanted


def _wheel_line(wheel_name: str, extras: Iterable[str]) -> str:
    return f"./{WHEEL_DIR}/{wheel_name}[{','.join(extras)}]"


def _card(title: str, model: str, corpus: str, hub_model: bool) -> str:
    import gradio

    metadata = {
        "title": title,
        "emoji": "🛰️",
        "colorFrom": "blue",
        "colorTo": "green",
        "sdk": "gradio",
        "sdk_version": gradio.__version__,
        "app_file": "app.py",
        "pinned": False,
        "license": "apache-2.0",
        "short_description": "Remote-sensing image-text retrieval demo (rs_retrieval)",
        "tags": ["remote-sensing", "image-text-retrieval", "rs_retrieval"],
    }
    if hub_model:
        metadata["models"] = [model]
    import yaml

    front = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True)
    shown = f"`{model}`" if hub_model else "the model in `model/`"
    return (
        f"---\n{front}---\n\n# {title}\n\nText-to-image search, "
        "image-to-captions and zero-shot scene classification with "
        f"{shown} over {corpus}, served by the web app of rs_retrieval "
        "(`rs_retrieval.app`, installed from the wheel in "
        f"`{WHEEL_DIR}/`).\n\nRun it locally:\n\n```bash\npython -m "
        "venv .venv && .venv/bin/pip install -r requirements.txt\n"
        ".venv/bin/python app.py   # http://127.0.0.1:7860\n```\n"
    )


def build_space(
    model: str | Path,
    out: str | Path,
    *,
    wheel: str | Path,
    images: str | Path | None = None,
    index: str | Path | None = None,
    captions: str | Path | None = None,
    class_set: str | None = None,
    title: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a Gradio Space folder (see the module docstring) atomically to `out`.

    `model`: a saved model or run directory (copied) or a Hub id (loaded when the Space starts).
    Exactly one of `images` (a folder, its images copied) and `index` (an `rs-retrieval index build`
    folder, copied). `captions` defaults to the `dataset.json` beside `images`, if any. `wheel`: this
    package's wheel (`python -m build --wheel`), copied into the Space.
    """
    from ..app.launch import SPACE_CONFIG, default_captions_file
    from ..search.folder_search import list_images

    if (images is None) == (index is None):
        raise SpaceError("a Space serves one corpus: pass exactly one of --images DIR and --index DIR")
    wheel = Path(wheel)
    if not wheel.is_file() or not wheel.name.startswith("rs_retrieval-") or wheel.suffix != ".whl":
        raise SpaceError(f"{wheel} is not an rs_retrieval wheel (build one with `python -m build --wheel`)")
    local_model = Path(model).is_dir()
    model_dir = resolve_run(model)[0] if local_model else None
    image_files = list_images(images) if images is not None else []  # raises for an empty folder
    if index is not None and not Path(index).is_dir():
        raise SpaceError(f"{index} is not an index folder")
    captions = captions or (default_captions_file(images) if images is not None else None)
    extras = ["web"] + (["index", "geo"] if index is not None else [])

    def fill(work: Path) -> None:
        config = {"model": "model" if local_model else str(model)}
        if model_dir is not None:
            (work / "model").mkdir()
            for file in sorted(model_dir.iterdir()):
                if file.is_file() and not _matches(file.name, MODEL_EXCLUDES) and file.name != "README.md":
                    _place(file, work / "model" / file.name)
        if images is not None:
            (work / "images").mkdir()
            for file in image_files:
                _place(file, work / "images" / file.name)
            config["images"] = "images"
        else:
            shutil.copytree(index, work / "index")
            config["index"] = "index"
        if captions:
            shutil.copy2(captions, work / f"captions{Path(captions).suffix}")
            config["captions"] = f"captions{Path(captions).suffix}"
        if class_set:
            config["class_set"] = class_set
        (work / WHEEL_DIR).mkdir()
        shutil.copy2(wheel, work / WHEEL_DIR / wheel.name)
        requirements = [_wheel_line(wheel.name, extras), *pinned(wheel_requirements(wheel, extras))]
        (work / "requirements.txt").write_text("\n".join(requirements) + "\n", encoding="utf-8")
        (work / SPACE_CONFIG).write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
        (work / "app.py").write_text(SPACE_APP, encoding="utf-8")
        corpus = f"{len(image_files)} images" if images is not None else "an image index"
        shown = (
            model_dir.parent
            if model_dir is not None and model_dir.name == "model"
            else (model_dir or Path(str(model)))
        )
        name = title or f"rs_retrieval demo: {shown.name}"
        (work / "README.md").write_text(_card(name, str(model), corpus, not local_model), encoding="utf-8")

    return atomic_directory(out, fill, overwrite)


def stage_space(
    folder: str | Path, staging: str | Path, repo_id: str, endpoint: str, revision: str | None = None
) -> Path:
    """Copy a Space folder into `staging`, its wheel requirement pointing at the pushed wheel's URL."""
    folder, staging = Path(folder), Path(staging)
    requirements = folder / "requirements.txt"
    if not (folder / "app.py").is_file() or not requirements.is_file():
        raise SpaceError(
            f"{folder} is not a Space folder: expected app.py and "
            "requirements.txt (build one with `rs-retrieval space build`)"
        )
    shutil.copytree(folder, staging, copy_function=lambda src, dst: _place(Path(src), Path(dst)))
    lines = []
    for line in requirements.read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(rf"\./{WHEEL_DIR}/(?P<name>[^\[\s]+\.whl)(?P<extras>\[[^\]]*\])?", line.strip())
        if match:
            wheel = folder / WHEEL_DIR / match["name"]
            if not wheel.is_file():
                raise SpaceError(f"{requirements} names {wheel}, which is missing")
            digest = sha256_file(wheel)
            url = f"{endpoint.rstrip('/')}/spaces/{repo_id}/resolve/{revision or 'main'}/{WHEEL_DIR}/{match['name']}#sha256={digest}"
            line = f"{DIST_NAME}{match['extras'] or ''} @ {url}"
        lines.append(line)
    (staging / "requirements.txt").unlink()
    (staging / "requirements.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return staging


def push_space(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
):
    """Publish a Space folder (`build_space`) as a Gradio Space in one commit; returns the `CommitInfo`."""
    from huggingface_hub import constants

    with tempfile.TemporaryDirectory(prefix="rs_retrieval_push_") as tmp:
        staging = stage_space(folder, Path(tmp) / "repo", repo_id, constants.ENDPOINT, revision)
        return _publish(
            staging,
            repo_id,
            "space",
            private,
            token,
            revision,
            commit_message or "Upload rs_retrieval Space",
            space_sdk="gradio",
        )
