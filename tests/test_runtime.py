"""Process settings for long jobs: glibc allocator thresholds and the cgroup CPU quota."""

import os
import subprocess
import sys
import textwrap

import pytest

from rs_retrieval import runtime

# Allocate and free a 64 MiB buffer five times, touching every page, and count the page faults.
# glibc's default hands a block this size back to the kernel on free (it is above the mmap
# threshold and above the 32 MiB its dynamic threshold stops at), so each round faults all its
# pages in again; tuned, the heap keeps and reuses it.
FAULT_PROBE = textwrap.dedent(
    """
    import importlib.util, resource, sys
    spec = importlib.util.spec_from_file_location("runtime", sys.argv[1])  # alone: the package import
    runtime = importlib.util.module_from_spec(spec)  # (torch, transformers) would add its own faults
    spec.loader.exec_module(runtime)
    applied = runtime.tune_malloc()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        data = b"\\1" * (64 << 20)
        del data
    print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


def _probe(**env) -> tuple[str, int]:
    result = subprocess.run(
        [sys.executable, "-c", FAULT_PROBE, runtime.__file__],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    )
    applied, faults = result.stdout.split()
    return applied, int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_tuned_allocator_reuses_large_blocks_instead_of_faulting_them_in_again():
    applied, tuned = _probe()
    skipped, default = _probe(**{runtime.MALLOC_TUNING_ENV: "0"})
    assert (applied, skipped) == ("True", "False")
    pages = (64 << 20) // 4096
    assert default > 4 * pages, default  # every round faults the whole block in
    assert tuned < 2 * pages, tuned  # the first round only (plus noise)


def test_user_malloc_variables_win(monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert runtime.tune_malloc() is False


@pytest.mark.parametrize(
    ("files", "quota"),
    [
        ({"cpu.max": "150000 100000\n"}, 2),
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "400000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 4),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),
    ],
)
def test_cgroup_cpu_quota_reads_v2_and_v1_files(tmp_path, files, quota):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert runtime.cgroup_cpu_quota(tmp_path) == quota


# The library path: import the package, create a retrieval model (no call to `runtime`), then probe.
API_FAULT_PROBE = textwrap.dedent(
    """
    import resource, sys
    sys.path.insert(0, sys.argv[1])
    from tiny_methods import tiny_case
    tiny_case("amfmn").model()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        data = b"\\1" * (64 << 20)
        del data
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_python_api_gets_the_allocator_tuning_without_calling_anything():
    env = {k: v for k, v in os.environ.items() if k != runtime.MALLOC_TUNING_ENV}
    result = subprocess.run(
        [sys.executable, "-c", API_FAULT_PROBE, os.path.dirname(__file__)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    assert int(result.stdout) < 2 * (64 << 20) // 4096, result.stdout  # (the opt-out: the test above)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("flags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni", True),
        ("flags\t\t: fpu amx_bf16 amx_tile", True),
        ("Features\t: fp asimd bf16 i8mm", True),
        ("flags\t\t: fpu avx2 avx512f avx512_vnni", False),
    ],
)
def test_bf16_hardware_is_read_from_the_cpu_flags(tmp_path, flags, expected):
    (tmp_path / "cpuinfo").write_text(f"processor\t: 0\n{flags}\n")
    assert runtime.bf16_supported("cpu", tmp_path / "cpuinfo") is expected
    assert runtime.bf16_supported("cpu", tmp_path / "missing") is False


@pytest.mark.parametrize(
    ("hardware", "setting", "runs"),
    [(True, "auto", "bf16"), (False, "auto", "no"), (True, "no", "no"), (False, "bf16", "bf16")],
)
def test_mixed_precision_auto_is_bf16_only_on_bf16_hardware(monkeypatch, hardware, setting, runs):
    from rs_retrieval.training.recipe import load_recipe, resolve_mixed_precision

    monkeypatch.setattr(runtime, "bf16_supported", lambda device="cpu", cpuinfo=None: hardware)
    assert resolve_mixed_precision(setting) == runs
    assert load_recipe("amfmn_synth").training.mixed_precision == "auto"  # the packaged recipes
    assert load_recipe("amfmn_synth", ["training.mixed_precision=no"]).training.mixed_precision == "no"
