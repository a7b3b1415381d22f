"""Atomic writes: a reader (or a crash) never sees a half-written file or folder.

A full disk (or quota) during a write becomes one `DiskFullError` naming what could not be written
and what is intact (`reporting_full_disk`); `atomic_file` and `atomic_directory` report it for
every command, and a caller that knows more (an index generation, a training run) wraps its
writes to say so.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import DiskFullError, OutputExistsError

_FULL_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


def is_full_disk(error: BaseException) -> bool:
    """ENOSPC/EDQUOT, also as libraries wrap it (pyarrow's OSError or faiss's RuntimeError carry only the text)."""
    if isinstance(error, DiskFullError) or getattr(error, "errno", None) in _FULL_DISK_ERRNOS:
        return True
    return isinstance(error, (OSError, RuntimeError)) and any(
        os.strerror(code) in str(error) for code in _FULL_DISK_ERRNOS
    )


@contextlib.contextmanager
def reporting_full_disk(what: str, intact: str) -> Iterator[None]:
    """Turn a full disk inside the block into `DiskFullError("no space left ... to write {what}; {intact}")`.

    The outermost block names the message: it knows best what the write was for.
    """
    try:
        yield
    except (OSError, RuntimeError) as err:
        if not is_full_disk(err):
            raise
        raise DiskFullError(f"no space left on the device to write {what}; {intact}") from err


def _unchanged(path: Path, kind: str) -> str:
    return f"the previous {kind} there is unchanged" if path.exists() else f"no partial {kind} was left"


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(path: Path, directory: bool = False) -> None:
    """Temporary files are created 0600 / 0700; what we publish gets the permissions of a plain
    `open()` / `mkdir()` under the user's umask."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_current_umask())


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    with reporting_full_disk(str(path), _unchanged(path, "file")):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
        os.close(fd)
        try:
            yield Path(tmp)
            apply_umask(Path(tmp))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_file(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def save_png_atomic(picture, path: str | os.PathLike) -> Path:
    """Write a PIL image or a matplotlib figure as a PNG, atomically, creating its folder."""
    buffer = io.BytesIO()
    if hasattr(picture, "savefig"):
        picture.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    else:
        picture.save(buffer, format="PNG")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, payload, **dump_kwargs) -> None:
    atomic_write_text(path, json.dumps(payload, **{"indent": 2, **dump_kwargs}) + "\n")


def atomic_directory(out_dir: str | os.PathLike, fill: Callable[[Path], None], overwrite: bool = False) -> Path:
    """Run `fill(tmp)` on a fresh folder beside `out_dir`, then rename it into place.

    `out_dir` is either absent, or (with `overwrite`) replaced only once the new folder is complete;
    if anything fails the previous folder is left as it was.
    """
    out_dir = Path(out_dir).expanduser().resolve()
    if out_dir.exists() and not overwrite:
        raise OutputExistsError(f"{out_dir} already exists (pass overwrite=True / --overwrite to replace it)")
    with reporting_full_disk(str(out_dir), _unchanged(out_dir, "folder")):
        return _fill_and_swap(out_dir, fill)


def _fill_and_swap(out_dir: Path, fill: Callable[[Path], None]) -> Path:
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    old = None
    try:
        fill(work)
        apply_umask(work, directory=True)
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            os.replace(out_dir, old / "previous")
        os.rename(work, out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        if old is not None and not out_dir.exists():
            os.replace(old / "previous", out_dir)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return out_dir
