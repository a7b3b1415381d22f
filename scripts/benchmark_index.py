"""Benchmark the first-stage vector index: Flat vs IVF-PQ vs HNSW on clustered vectors.

For each kind: build time, size on disk, resident memory of a fresh process that opens the index
memory-mapped and answers queries (anonymous and file-backed RSS separately: file pages are the
page cache of the memory-mapped files), p50/p95 latency of single k=10 queries, and recall@10
against exact search. Data: `--n` x `--dim` float32 vectors drawn around `--clusters` centres
(not uniform random), L2-normalised, written once to a memory-mapped .npy.

    python scripts/benchmark_index.py --n 1000000 --dim 512 --out /tmp/index_bench
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from rs_retrieval.index.vectors import (
    VectorIndexConfig,
    build_faiss_index,
    normalize_rows,
    read_faiss_index,
    search_faiss_index,
    write_faiss_index,
)


def clustered(n: int, dim: int, clusters: int, seed: int, spread: float = 0.6, chunk: int = 100_000):
    """Rows of `n` normalised vectors around `clusters` random centres, generated in chunks."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32) / np.sqrt(dim)
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        noise = rng.standard_normal((size, dim), dtype=np.float32) * (spread / np.sqrt(dim))
        yield normalize_rows(centres[rng.integers(0, clusters, size)] + noise)


def write_data(out: Path, n: int, dim: int, clusters: int, queries: int) -> tuple[Path, Path]:
    base, query_path = out / f"base_{n}x{dim}.npy", out / f"queries_{queries}x{dim}.npy"
    if not base.is_file():
        array = np.lib.format.open_memmap(base.with_suffix(".tmp.npy"), mode="w+", dtype=np.float32, shape=(n, dim))
        start = 0
        for block in clustered(n, dim, clusters, seed=0):
            array[start : start + len(block)] = block
            start += len(block)
        array.flush()
        del array
        os.replace(base.with_suffix(".tmp.npy"), base)
    if not query_path.is_file():
        np.save(query_path, _queries(dim, clusters, queries))
    return base, query_path


def _queries(dim: int, clusters: int, count: int) -> np.ndarray:
    """Held-out points of the same distribution (same centres: same generator seed for the centres)."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32) / np.sqrt(dim)
    rng = np.random.default_rng(12345)
    noise = rng.standard_normal((count, dim), dtype=np.float32) * (0.6 / np.sqrt(dim))
    return normalize_rows(centres[rng.integers(0, clusters, count)] + noise)


def exact_neighbours(base: Path, queries: np.ndarray, k: int, cache: Path) -> np.ndarray:
    if cache.is_file():
        return np.load(cache)
    vectors = np.load(base, mmap_mode="r")
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(queries), k), dtype=np.int64)
    for start in range(0, len(vectors), 200_000):
        scores = queries @ np.asarray(vectors[start : start + 200_000]).T
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        merged_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, 1)], axis=1)
        merged_rows = np.concatenate([best_rows, top + start], axis=1)
        order = np.argsort(-merged_scores, axis=1)[:, :k]
        best_scores, best_rows = np.take_along_axis(merged_scores, order, 1), np.take_along_axis(merged_rows, order, 1)
    np.save(cache, best_rows)
    return best_rows


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The synthetic data's size (shared with benchmark_ondisk_index.py, which reuses the files)."""
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=200)


def rss_mb() -> dict:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def query_worker(args) -> None:
    """Runs in a fresh process: open memory-mapped, time single queries, report RSS and recall."""
    import faiss

    faiss.omp_set_num_threads(args.threads)
    config = VectorIndexConfig(**json.loads(args.config))
    before = rss_mb()
    index = read_faiss_index(args.index, mmap=True)
    vectors = np.load(args.base, mmap_mode="r")
    queries = np.load(args.query_file)
    truth = np.load(args.truth)
    latencies, cpu_times, found = [], [], []
    for query in queries:
        start, cpu_start = time.perf_counter(), time.process_time()
        _, rows = search_faiss_index(index, vectors, query[None], args.k, config)
        latencies.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)  # what a quiet core would take, about
        found.append(rows[0])
    found = np.stack(found)
    recall = np.mean([len(set(f) & set(t)) / args.k for f, t in zip(found, truth[:, : args.k])])
    print(
        json.dumps(
            {
                "p50_ms": 1000 * float(np.percentile(latencies, 50)),
                "p95_ms": 1000 * float(np.percentile(latencies, 95)),
                "cpu_p50_ms": 1000 * float(np.percentile(cpu_times, 50)),
                "cpu_p95_ms": 1000 * float(np.percentile(cpu_times, 95)),
                "recall@10": float(recall),
                "rss_before_mb": before,
                "rss_after_mb": rss_mb(),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(parser)
    parser.add_argument("--kinds", default="flat,ivfpq,hnsw")
    parser.add_argument("--nlist", type=int, default=1024)
    parser.add_argument("--pq-m", type=int, default=64)
    parser.add_argument("--train-size", type=int, default=50_000)
    parser.add_argument("--nprobe", type=int, default=32)
    parser.add_argument("--refine", type=int, default=50)
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=40)
    parser.add_argument("--ef-search", type=int, default=128)
    parser.add_argument("--out", default="/tmp/index_bench")
    parser.add_argument("--results", default=None, help="JSON results file (default: OUT/results_N.json)")
    parser.add_argument("--table", help="only print the table of a results JSON")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--index", help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--truth", help=argparse.SUPPRESS)
    parser.add_argument("--query-file", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument(
        "--threads", type=int, default=1, help="faiss/OpenMP threads (1 avoids spin-waiting on a shared CPU)"
    )
    args = parser.parse_args()
    if args.worker:
        return query_worker(args)
    if args.table:
        return print_table(json.loads(Path(args.table).read_text()))

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    base, query_path = write_data(out, args.n, args.dim, args.clusters, args.queries)
    print(f"data: {args.n} x {args.dim} ({time.perf_counter() - start:.0f} s)", flush=True)
    start = time.perf_counter()
    truth_path = out / f"truth_{args.n}x{args.dim}_{args.queries}.npy"
    exact_neighbours(base, np.load(query_path), args.k, truth_path)
    print(f"exact neighbours ({time.perf_counter() - start:.0f} s)", flush=True)
    results_path = Path(args.results or out / f"results_{args.n}.json")
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    import faiss

    faiss.omp_set_num_threads(args.threads)
    vectors = np.load(base, mmap_mode="r")
    for kind in args.kinds.split(","):
        config = VectorIndexConfig(
            kind=kind,
            nlist=args.nlist,
            pq_m=args.pq_m,
            train_size=args.train_size,
            hnsw_m=args.hnsw_m,
            ef_construction=args.ef_construction,
            nprobe=args.nprobe,
            ef_search=args.ef_search,
            refine=args.refine,
        )
        index_path = out / f"{kind}_{args.n}.faiss"
        start = time.perf_counter()
        index = build_faiss_index(
            vectors, config, progress=lambda done, kind=kind: print(f"  {kind}: {done}/{args.n}", end="\r", flush=True)
        )
        write_faiss_index(index, index_path)
        build_s = time.perf_counter() - start
        del index
        worker = subprocess.run(
            [
                sys.executable,
                __file__,
                "--worker",
                "--index",
                str(index_path),
                "--base",
                str(base),
                "--truth",
                str(truth_path),
                "--config",
                json.dumps(config.to_dict()),
                "--k",
                str(args.k),
                "--query-file",
                str(query_path),
                "--threads",
                str(args.threads),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        measured = json.loads(worker.stdout.strip().splitlines()[-1])
        # IVF-PQ re-scores candidates from the float vectors, so they are part of what a query needs on disk.
        disk = index_path.stat().st_size + (base.stat().st_size if kind == "ivfpq" else 0)
        results[kind] = {
            "n": args.n,
            "dim": args.dim,
            "threads": args.threads,
            "build_s": build_s,
            "index_mb": index_path.stat().st_size / 2**20,
            "disk_mb_incl_refine_vectors": disk / 2**20,
            "config": config.to_dict(),
            **measured,
        }
        results_path.write_text(json.dumps(results, indent=2))
        print(f"\n{kind}: {json.dumps(results[kind])}", flush=True)
    print_table(results)


def print_table(results: dict) -> None:
    print(
        "| kind | N | build s | index MB | RSS anon / file MB (before opening -> "
        "after queries) | p50 / p95 ms (wall) | p50 / p95 ms (CPU) | recall@10 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for kind, r in results.items():
        before, after = r["rss_before_mb"], r["rss_after_mb"]
        cpu = f"{r['cpu_p50_ms']:.1f} / {r['cpu_p95_ms']:.1f}" if "cpu_p50_ms" in r else "-"
        print(
            f"| {kind} | {r['n']:,} | {r['build_s']:.0f} | {r['index_mb']:.0f} "
            f"| {before['RssAnon']:.0f} / {before['RssFile']:.0f} -> "
            f"{after['RssAnon']:.0f} / {after['RssFile']:.0f} | {r['p50_ms']:.1f} "
            f"/ {r['p95_ms']:.1f} | {cpu} | {r['recall@10']:.3f} |"
        )


if __name__ == "__main__":
    main()
