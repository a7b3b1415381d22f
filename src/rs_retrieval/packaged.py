"""Files that ship inside the package: training recipes and Hub card templates.

The repository keeps them in top-level folders where a reader finds them (`configs/`,
`hub_cards/`). The build maps each folder into the package (`setup.py` reads `DATA_PACKAGES`), so
the wheel carries them as `rs_retrieval.recipes` and `rs_retrieval.card_templates` with no second
copy in the repository. An installed package reads them with `importlib.resources`; a source tree
(`PYTHONPATH=src` or an editable install) reads its own folders, so edits show up without a
reinstall and a worktree never picks up another checkout's files.

Standard library only: `setup.py` executes this file to read `DATA_PACKAGES`.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

#: Data subpackage -> the repository folder it is built from.
DATA_PACKAGES = {"rs_retrieval.recipes": "configs", "rs_retrieval.card_templates": "hub_cards"}


def _source_root() -> Path | None:
    """`<root>` when this module runs from a checkout's `<root>/src/rs_retrieval/`, else None."""
    src = Path(__file__).resolve().parents[1]
    return src.parent if src.name == "src" and (src.parent / "pyproject.toml").is_file() else None


_SOURCE_ROOT = _source_root()


def packaged_files(package: str) -> Traversable:
    """The folder of one data subpackage (a key of `DATA_PACKAGES`), from a checkout or an install."""
    if package not in DATA_PACKAGES:
        raise KeyError(f"{package!r} is not a data subpackage; expected one of {sorted(DATA_PACKAGES)}")
    if _SOURCE_ROOT is not None:
        return _SOURCE_ROOT / DATA_PACKAGES[package]
    return resources.files(package)
