"""Run logging: `log.jsonl` (one JSON record per line, also handed to the Accelerate trackers that
`experiment_trackers` chose) and throughput.

Every process keeps the same record count (values are reduced or broadcast before logging), so
the count stored in a checkpoint says exactly how many lines to keep when resuming; only the main
process writes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..fileio import atomic_write_text


class JsonlLog:
    """Append-only JSONL log; `truncate(n)` drops lines written after a checkpoint."""

    def __init__(self, path: Path, write: bool, tracker=None):
        self.path = Path(path)
        self.write = write
        self.tracker = tracker
        self.count = 0

    def truncate(self, count: int) -> None:
        """Keep the first `count` records (atomically), e.g. when resuming from a checkpoint."""
        self.count = count
        if not self.write or not self.path.exists():
            return
        atomic_write_text(self.path, "".join(self.path.read_text().splitlines(keepends=True)[:count]))

    def log(self, record: dict) -> None:
        self.count += 1
        if not self.write:
            return
        with self.path.open("a") as handle:
            handle.write(json.dumps(record, allow_nan=True) + "\n")
        if self.tracker is not None:
            scalars = {
                f"{record['kind']}/{key}": value
                for key, value in record.items()
                if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in ("step", "epoch")
            }
            self.tracker.log(scalars, step=record["step"])


def read_log(path: Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Throughput:
    """(image, caption) pairs and training seconds since the last `window()` or `restart()`."""

    def __init__(self):
        self.restart()

    def restart(self) -> None:
        """Start a new window now (after evaluation or checkpointing, which are not training time)."""
        self.start, self.pairs = time.perf_counter(), 0

    def add(self, pairs: int) -> None:
        self.pairs += pairs

    def window(self) -> tuple[int, float]:
        """(pairs, seconds) of the current window; starts the next one."""
        pairs, seconds = self.pairs, time.perf_counter() - self.start
        self.restart()
        return pairs, seconds
