"""Which released RS CLIP checkpoint a file is: by the release id a user names, or by the file name
the release was published under (the release tables live in `rs_retrieval.models.clip.releases`)."""

from __future__ import annotations

import re
from pathlib import Path

from ..models.clip.releases import RELEASES, Release
from .common import CheckpointConversionError


def find_release(release: str | None, path: str | Path | None = None) -> Release | None:
    """The release named `release`, or the one whose published file name `path` carries (None if unknown)."""
    if release is not None:
        if release not in RELEASES:
            raise CheckpointConversionError(f"unknown release {release!r}; known: {sorted(RELEASES)}")
        return RELEASES[release]
    if path is None:
        return None
    parts = [part for part in Path(path).parts[-2:]]
    # Longest file names first, so RS5M_ViT-B-32_RET-2.pt does not match RS5M_ViT-B-32.pt.
    candidates = sorted(((name, r) for r in RELEASES.values() for name in r.files), key=lambda item: -len(item[0]))
    for name, release_info in candidates:
        stem = re.escape(Path(name).stem)
        if any(re.fullmatch(stem + r"(\.\w+)?", part) for part in parts):
            return release_info
    return None
