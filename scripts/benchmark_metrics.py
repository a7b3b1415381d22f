"""Time and peak memory of `retrieval_metrics` and the re-rankers on CPU (5 captions per image).

    python scripts/benchmark_metrics.py                 # RSICD size 1093 x 5465, then 20000 x 100000
    python scripts/benchmark_metrics.py --skip-large    # only the RSICD-size matrix

Memory is the resident set size (RSS): the peak during a call minus the RSS before it. On Linux
freed heap memory is first returned to the system (glibc `malloc_trim`, else temporaries reuse
already-resident pages and stay invisible) and the peak is reset through /proc/self/clear_refs;
elsewhere the process-wide `ru_maxrss` high-water mark is used, which hides peaks below an
earlier one. The large matrix
(8 GB of float32) is filled block by block so generating it never holds a second copy.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import resource
import time
from pathlib import Path

import torch

from rs_retrieval.evaluation import apply_rerank, retrieval_metrics

CAPTIONS_PER_IMAGE = 5


def _status_kib(field: str) -> int | None:
    status = Path("/proc/self/status")
    if not status.exists():
        return None
    for line in status.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def _reset_peak() -> bool:
    libc_name = ctypes.util.find_library("c")
    if libc_name and hasattr(ctypes.CDLL(libc_name), "malloc_trim"):
        ctypes.CDLL(libc_name).malloc_trim(0)
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def measure(fn):
    """(result, seconds, extra peak RSS in MiB over the RSS before the call)."""
    exact = _reset_peak()
    before = _status_kib("VmRSS") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return result, seconds, max(0, peak - before) / 1024


def make_matrix(n_images: int, seed: int, block_rows: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian scores with the ground-truth pairs lifted by 2, filled in row blocks (no temporary copy)."""
    n_texts = n_images * CAPTIONS_PER_IMAGE
    sim = torch.empty(n_images, n_texts, dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    for start in range(0, n_images, block_rows):
        block = sim[start : start + block_rows]
        block.normal_(generator=generator)
        rows = torch.arange(len(block))
        block.view(len(block), n_images, CAPTIONS_PER_IMAGE)[rows, rows + start] += 2.0
    return sim, torch.arange(n_texts) // CAPTIONS_PER_IMAGE


def report(label: str, fn) -> dict:
    result, seconds, extra_mib = measure(fn)
    summary = f"mR {result['mR']:.2f}" if isinstance(result, dict) else ""
    print(f"{label:<48} {seconds:9.2f} s   peak +{extra_mib:8.1f} MiB   {summary}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-large", action="store_true", help="skip the 20000 x 100000 matrix")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")

    sim, text_to_image = make_matrix(1093, seed=0)
    texts = [f"caption {index % 3331}" for index in range(sim.shape[1])]  # RSICD-like duplicate count
    print(f"\n{tuple(sim.shape)} float32 ({sim.numel() * 4 / 2**20:.0f} MiB)")
    for policy in ("optimistic", "pessimistic", "numpy"):
        report(
            f"retrieval_metrics tie_policy={policy}",
            lambda policy=policy: retrieval_metrics(sim, text_to_image, tie_policy=policy),
        )
    for protocol in ("multi_positive", "dedup_text"):
        report(
            f"retrieval_metrics protocol={protocol}",
            lambda protocol=protocol: retrieval_metrics(sim, text_to_image, protocol=protocol, texts=texts),
        )
    for name, params in (("galr_mr", {}), ("smr", {}), ("smr", {"top_k": 30})):
        scores = report(
            f"apply_rerank {name} {params or ''}".rstrip(),
            lambda name=name, params=params: apply_rerank(sim, name, **params),
        )
        report(
            f"  + retrieval_metrics on {name}",
            lambda scores=scores: retrieval_metrics(scores.i2t, text_to_image, t2i_sim=scores.t2i),
        )
        del scores
    del sim

    if args.skip_large:
        return
    (sim, text_to_image), seconds, extra_mib = measure(lambda: make_matrix(20000, seed=1))
    print(
        f"\n{tuple(sim.shape)} float32 ({sim.numel() * 4 / 2**30:.1f} "
        f"GiB), generated in {seconds:.1f} s, peak +{extra_mib:.0f} MiB"
    )
    report("retrieval_metrics tie_policy=optimistic", lambda: retrieval_metrics(sim, text_to_image))
    report(
        "retrieval_metrics tie_policy=pessimistic",
        lambda: retrieval_metrics(sim, text_to_image, tie_policy="pessimistic"),
    )


if __name__ == "__main__":
    main()
