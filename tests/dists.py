"""Build the release artefacts once per test session (the `dists` fixture in conftest.py): the
wheel test installs them, the Space test ships the wheel in a Space."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_checked(command: list[str], cwd: Path, env: dict | None = None, timeout: float = 900) -> str:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (
        f"{' '.join(map(str, command))} failed "
        f"({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    print(
        f"{time.perf_counter() - start:6.1f} s  {Path(command[0]).name} {' '.join(map(str, command[1:4]))[:100]}"
    )  # pytest -rP shows these
    return result.stdout


def build_dists(out: Path) -> dict[str, Path]:
    """sdist and wheel (the wheel built from the sdist, as a release does), checked by `twine check`."""
    run_checked([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], cwd=out)
    found = {"wheel": list(out.glob("*.whl")), "sdist": list(out.glob("*.tar.gz"))}
    assert all(len(files) == 1 for files in found.values()), found
    run_checked([sys.executable, "-m", "twine", "check", "--strict", *map(str, out.iterdir())], cwd=out)
    return {kind: files[0] for kind, files in found.items()}
