"""Process-wide CPU settings for long jobs (training, evaluation, indexing, serving).

glibc gives a freed block back to the kernel at once when it is above the mmap threshold (or sits
at the top of the heap above the trim threshold). A training step frees and re-allocates the
same activation-sized blocks every time, so with the defaults every step page-faults them in
again. Raising the thresholds keeps the blocks in the process, as jemalloc or tcmalloc would:
AMFMN and MSA training steps 15-23 % faster on 2 cores, peak memory +0-12 % (`README.md`, "Speed").

The command line and `scripts/train.py` call `prepare_process()`. A program that uses the package
as a library gets `tune_malloc()` without calling anything, when it creates or loads its first
retrieval model (`RetrievalPreTrainedModel.__init__`): the encoders and training steps are where
the faults cost. What that changes in the host process, and the opt-out, are in
`docs/precision.md`. Nothing here runs on `import rs_retrieval`.
"""

from __future__ import annotations

import ctypes
import functools
import math
import os
import sys
from pathlib import Path

#: Set to 0 to keep the C library's allocator settings.
MALLOC_TUNING_ENV = "RS_RETRIEVAL_MALLOC_TUNING"
#: glibc's own variables: when the user set any of them, theirs win.
GLIBC_MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")
MIB = 1 << 20
#: mallopt parameters (malloc.h) and the values measured best (`scripts/benchmark_training.py`).
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
MALLOC_SETTINGS = {M_MMAP_THRESHOLD: 256 * MIB, M_TRIM_THRESHOLD: 2048 * MIB, M_TOP_PAD: 64 * MIB}


def tune_malloc() -> bool:
    """Raise glibc's mmap/trim thresholds (see the module docstring). True when applied; False on
    other C libraries or platforms, when `RS_RETRIEVAL_MALLOC_TUNING=0`, or when the user set
    glibc's MALLOC_* variables."""
    if not sys.platform.startswith("linux") or os.environ.get(MALLOC_TUNING_ENV, "1") == "0":
        return False
    if any(name in os.environ for name in GLIBC_MALLOC_ENV):
        return False
    try:
        libc = ctypes.CDLL(None)  # the symbols this process already has, libc's among them
    except OSError:
        return False
    if not hasattr(libc, "gnu_get_libc_version"):  # musl and others: mallopt is a no-op or absent
        return False
    return all(
        libc.mallopt(ctypes.c_int(option), ctypes.c_int(value)) == 1 for option, value in MALLOC_SETTINGS.items()
    )


@functools.cache
def tune_malloc_once() -> bool:
    """`tune_malloc()`, once per process (every retrieval model's construction calls this)."""
    return tune_malloc()


def cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """ceil(quota / period) of cgroup v2 `cpu.max` or v1 `cpu.cfs_quota_us`; None when unlimited."""
    try:
        fields = (root / "cpu.max").read_text().split()
        if fields and fields[0] != "max":
            return math.ceil(int(fields[0]) / int(fields[1]))
        return None
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return math.ceil(quota / period) if quota > 0 and period > 0 else None


@functools.cache
def prepare_process() -> None:
    """Once per process, before torch is imported: `tune_malloc()`, and in a container whose
    cgroup CPU quota is below the machine's CPU count, OMP_NUM_THREADS set to the quota unless
    the user set it (OpenMP sees the affinity mask, not the quota; more threads than CPUs slows
    every op down)."""
    tune_malloc_once()
    quota = cgroup_cpu_quota()
    if (
        quota
        and quota < (os.cpu_count() or quota)
        and "OMP_NUM_THREADS" not in os.environ
        and "torch" not in sys.modules
    ):
        os.environ["OMP_NUM_THREADS"] = str(quota)


#: /proc/cpuinfo flags of CPUs with bf16 arithmetic (x86 AVX512-BF16 / AMX, Arm's BF16 extension).
BF16_CPU_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}


def bf16_supported(device: str = "cpu", cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True where bf16 matrix products run in hardware: a CUDA GPU that reports it, or a CPU whose
    flags name a bf16 instruction set (elsewhere torch emulates bf16, slower than fp32)."""
    import torch

    if str(device).startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    try:
        text = cpuinfo.read_text()
    except OSError:  # not Linux: no cheap way to ask, so no
        return False
    flags = {
        word
        for line in text.splitlines()
        if line.startswith(("flags", "Features"))
        for word in line.split(":", 1)[-1].split()
    }
    return bool(flags & BF16_CPU_FLAGS)
