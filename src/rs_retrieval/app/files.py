"""What the web server may hand out, and where it keeps it: one temporary folder per process.

Gradio serves a file when its path is under `allowed_paths` (folders, whole) or under its own
upload folder. The app passes no `allowed_paths`: an image folder may hold dotfiles, notes or
symlinks into other folders, and none of that is ours to publish. Instead each search hit that is
shown is copied, file by file, from its resolved path into this process's folder, which is
Gradio's upload folder too (`GRADIO_TEMP_DIR`). Uploads, hit copies and scene pictures all land
there, and the folder is removed when the process exits (see docs/security.md).
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from ..fileio import atomic_file

GRADIO_TEMP_ENV = "GRADIO_TEMP_DIR"


@functools.cache
def session_folder() -> Path:
    """This process's folder for uploads and served copies (created once, removed at exit).

    Must run before any Gradio component is built: each one reads `GRADIO_TEMP_DIR` when created.
    A folder the user chose with `GRADIO_TEMP_DIR` holds ours, so only ours is removed.
    """
    folder = Path(
        tempfile.mkdtemp(prefix="rs_retrieval_serve_", dir=os.environ.get(GRADIO_TEMP_ENV) or None)
    ).resolve()
    os.environ[GRADIO_TEMP_ENV] = str(folder)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def served_copy(path: Path) -> str:
    """A copy of the image file `path` (symlinks resolved) in the session folder, which Gradio serves as is."""
    source = Path(path).resolve()
    stat = source.stat()  # a file changed on disk gets a new copy
    key = hashlib.sha256(f"{source}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    target = session_folder() / "hits" / key / source.name
    if not target.is_file():
        with atomic_file(target) as tmp:
            shutil.copyfile(source, tmp)
    return str(target)
