"""Benchmark the out-of-core IVF-PQ index (`ivf-ondisk`) built from embedding parts.

Clustered vectors (the generator of `benchmark_index.py`) are written as parts; a child process
builds the index with `build_from_parts` (peak RSS: the kernel's VmHWM, which counts the memory-mapped
file pages too, and the peak anonymous RSS sampled every 50 ms); a fresh process then times single
k = 10 queries over a grid of nprobe x refine, re-scoring with the index's float16 vectors and with
float32 ones (the source vectors, same rows), one faiss thread, recall@10 against exact search on
held-out queries. `--filtered` then times place/time filtered queries on the built index (recall@10
against brute force over the rows each filter allows).

    python scripts/benchmark_ondisk_index.py --n 1000000 --dim 512 --out /tmp/ondisk_bench
    python scripts/benchmark_ondisk_index.py --n 1000000 --dim 512 --out /tmp/ondisk_bench --filtered
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_index import add_data_arguments, exact_neighbours, rss_mb, write_data
from synthetic_parts import write_parts

from rs_retrieval.index.vectors import VectorIndexConfig, read_faiss_index, search_faiss_index


def build_worker(args) -> None:
    """Build in this (fresh) process and print time and peak memory as JSON."""
    import faiss

    from rs_retrieval.index.ondisk import build_from_parts

    faiss.omp_set_num_threads(args.threads)
    peak, stage = {"anon": 0.0}, {"now": "copy", "peaks": {}}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            anon = rss_mb().get("RssAnon", 0.0)
            peak["anon"] = max(peak["anon"], anon)
            stage["peaks"][stage["now"]] = max(stage["peaks"].get(stage["now"], 0.0), anon)

    def progress(name: str, rows: int) -> None:  # copy -> train (no calls) -> add -> merge and checksums
        stage["now"] = (
            "train"
            if name == "copy" and rows == total
            else ("merge, checksums" if name == "add" and rows == total else name)
        )

    from rs_retrieval.index.ondisk import read_parts

    total = read_parts(args.parts).count
    threading.Thread(target=sample, daemon=True).start()
    config = VectorIndexConfig(**json.loads(args.config))
    start, cpu_start = time.perf_counter(), time.process_time()
    build_from_parts(args.parts, args.index, config, overwrite=True, progress=progress)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    done.set()
    print(json.dumps({"peak_anon_mb_by_stage": stage["peaks"]}), file=sys.stderr)
    hwm = next(
        int(line.split()[1]) / 1024
        for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith("VmHWM")
    )
    print(
        json.dumps(
            {
                "build_s": seconds,
                "build_cpu_s": cpu,
                "peak_rss_mb": hwm,
                "peak_anon_mb": peak["anon"],
                "peak_anon_mb_by_stage": stage["peaks"],
            }
        )
    )


def query_worker(args) -> None:
    """Open the index in this fresh process and time single queries for each setting of the grid."""
    import faiss

    faiss.omp_set_num_threads(args.threads)
    gen = current_generation(Path(args.index))
    before = rss_mb()
    index = read_faiss_index(gen / "vectors.faiss")
    refine_vectors = {
        "float16": np.load(gen / "vectors.npy", mmap_mode="r"),
        "float32": np.load(args.base, mmap_mode="r"),
    }
    queries, truth = np.load(args.query_file), np.load(args.truth)
    config = json.loads(args.config)
    rows = []
    for nprobe in map(int, args.nprobe.split(",")):
        for refine in map(int, args.refine.split(",")):
            for dtype, vectors in refine_vectors.items():
                setting = VectorIndexConfig(**{**config, "nprobe": nprobe, "refine": refine})
                search_faiss_index(index, vectors, queries[:5], args.k, setting)  # warm the code paths
                latencies, cpu_times, found = [], [], []
                for query in queries:
                    start, cpu_start = time.perf_counter(), time.process_time()
                    _, hits = search_faiss_index(index, vectors, query[None], args.k, setting)
                    latencies.append(time.perf_counter() - start)
                    cpu_times.append(time.process_time() - cpu_start)
                    found.append(hits[0])
                recall = np.mean([len(set(f) & set(t)) / args.k for f, t in zip(found, truth[:, : args.k])])
                rows.append(
                    {
                        "nprobe": nprobe,
                        "refine": refine,
                        "refine_dtype": dtype,
                        "recall@10": float(recall),
                        **{
                            f"{name}_{q}_ms": 1000 * float(np.percentile(values, q))
                            for name, values in (("wall", latencies), ("cpu", cpu_times))
                            for q in (50, 99)
                        },
                    }
                )
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"rss_before_mb": before, "rss_after_mb": rss_mb(), "grid": rows}))


#: (name, bbox, datetime) of the filtered benchmark; the synthetic parts cover 10 W-30 E, 35-60 N, 2024.
FILTERS = [
    ("bbox 0.5% of the area", "0,45,2,47.5", None),
    ("bbox 1%", "0,45,4,47.5", None),
    ("one month", None, "2024-03-01/2024-03-31"),
    ("bbox 4% and half a year", "0,45,8,50", "2024-01-01/2024-06-30"),
    ("half a year", None, "2024-01-01/2024-06-30"),
]


def filtered_worker(args) -> None:
    """Time filtered single queries on the built index; recall@10 against brute force over the allowed rows."""
    import faiss

    from rs_retrieval.index.filters import FilterColumns, SearchFilter, filtered_search
    from rs_retrieval.index.retrieval import RetrievalIndex

    faiss.omp_set_num_threads(args.threads)
    index = RetrievalIndex.open(args.index, verify=False)
    config = VectorIndexConfig(
        **{**index.manifest["vector_index"], "nprobe": args.filter_nprobe, "refine": args.filter_refine}
    )
    queries, base = np.load(args.query_file), np.load(args.base, mmap_mode="r")
    start = time.process_time()
    columns = FilterColumns.from_table(index.metadata)
    rows = [{"filter": "reading the filter columns", "cpu_ms": 1000 * (time.process_time() - start)}]
    for name, bbox, when in FILTERS:
        allowed = columns.mask(SearchFilter.parse(bbox, when), len(index))
        start = time.process_time()
        columns.mask(SearchFilter.parse(bbox, when), len(index))
        mask_ms = 1000 * (time.process_time() - start)
        allowed_rows = np.flatnonzero(allowed)
        scores = np.concatenate(
            [
                queries @ np.asarray(base[allowed_rows[s : s + 100_000]]).T
                for s in range(0, len(allowed_rows), 100_000)
            ],
            axis=1,
        )
        truth = allowed_rows[np.argsort(-scores, axis=1)[:, : args.k]]
        del scores
        cpu_times, found = [], []
        for query in queries:
            cpu_start = time.process_time()
            _, hits = filtered_search(index.faiss_index, index.vectors, query[None], args.k, config, allowed)
            cpu_times.append(time.process_time() - cpu_start)
            found.append(hits[0])
        recall = np.mean([len(set(f) & set(t)) / args.k for f, t in zip(found, truth)])
        rows.append(
            {
                "filter": name,
                "allowed": int(allowed.sum()),
                "mask_cpu_ms": mask_ms,
                "recall@10": float(recall),
                "all_hits_inside": bool(all(allowed[f].all() and len(f) == args.k for f in found)),
                "cpu_50_ms": 1000 * float(np.percentile(cpu_times, 50)),
                "cpu_99_ms": 1000 * float(np.percentile(cpu_times, 99)),
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"filtered": rows, "nprobe": args.filter_nprobe, "refine": args.filter_refine}))


def current_generation(index: Path) -> Path:
    from rs_retrieval.index import store

    return index / store.generation_name(store.read_manifest(index)["generation"])


def child(mode: str, args, **extra) -> dict:
    command = [sys.executable, __file__, "--worker", mode, "--threads", str(args.threads), "--k", str(args.k)]
    for name, value in extra.items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode:
        raise SystemExit(f"{mode} worker failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(parser)
    parser.add_argument("--rows-per-part", type=int, default=100_000)
    parser.add_argument("--nlist", type=int, default=2048)
    parser.add_argument("--pq-m", type=int, default=64)
    parser.add_argument("--train-size", type=int, default=100_000)
    parser.add_argument("--block-rows", type=int, default=262_144)
    parser.add_argument("--nprobe", default="8,16,32", help="comma-separated grid")
    parser.add_argument("--refine", default="10,20,50", help="comma-separated grid (candidates = refine x k)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="faiss/OpenMP threads of the build and the queries")
    parser.add_argument("--out", default="/tmp/ondisk_bench")
    parser.add_argument(
        "--filtered", action="store_true", help="time filtered queries on the index built by an earlier run"
    )
    parser.add_argument("--build-only", action="store_true", help="build and report memory, no queries")
    parser.add_argument("--query-only", action="store_true", help="time queries on the index built by an earlier run")
    parser.add_argument("--filter-nprobe", type=int, default=16)
    parser.add_argument("--filter-refine", type=int, default=20)
    parser.add_argument("--worker", choices=["build", "query", "filtered"], help=argparse.SUPPRESS)
    for hidden in ("parts", "index", "config", "base", "truth", "query-file"):
        parser.add_argument(f"--{hidden}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "build":
        return build_worker(args)
    if args.worker == "query":
        return query_worker(args)
    if args.worker == "filtered":
        return filtered_worker(args)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    base, query_path = write_data(out, args.n, args.dim, args.clusters, args.queries)
    truth = out / f"truth_{args.n}x{args.dim}_{args.queries}.npy"
    exact_neighbours(base, np.load(query_path), args.k, truth)
    parts = out / f"parts_{args.n}x{args.dim}"
    if not (parts / "complete").is_file():
        vectors = np.load(base, mmap_mode="r")
        write_parts(
            parts, (np.asarray(vectors[s : s + args.rows_per_part]) for s in range(0, args.n, args.rows_per_part))
        )
        (parts / "complete").write_text("")
        del vectors
    print(f"data, exact neighbours, parts: {time.perf_counter() - started:.0f} s", flush=True)
    index = out / f"index_{args.n}x{args.dim}"
    if args.filtered:
        filtered = child(
            "filtered",
            args,
            index=index,
            base=base,
            query_file=query_path,
            filter_nprobe=args.filter_nprobe,
            filter_refine=args.filter_refine,
        )
        (out / f"results_filtered_{args.n}.json").write_text(json.dumps(filtered, indent=2))
        print(
            "| filter | rows allowed | mask ms CPU | recall@10 vs "
            "brute force | every hit inside, k hits | p50 / p99 ms CPU |"
        )
        print("|---|---|---|---|---|---|")
        for row in filtered["filtered"][1:]:
            print(
                f"| {row['filter']} | {row['allowed']:,} | {row['mask_cpu_ms']:.1f} "
                f"| {row['recall@10']:.3f} | {row['all_hits_inside']} | "
                f"{row['cpu_50_ms']:.2f} / {row['cpu_99_ms']:.2f} |"
            )
        print(f"(reading the filter columns once: {filtered['filtered'][0]['cpu_ms']:.0f} ms CPU)")
        return
    config = VectorIndexConfig(
        kind="ivf-ondisk", nlist=args.nlist, pq_m=args.pq_m, train_size=args.train_size, block_rows=args.block_rows
    )
    results_path = out / f"results_ondisk_{args.n}.json"
    if args.query_only:  # the build numbers of the run that built the index
        build = {
            key: value
            for key, value in json.loads(results_path.read_text()).items()
            if key.startswith(("build", "peak"))
        }
        results_path = results_path.with_name(f"results_ondisk_{args.n}_queries_{args.refine.replace(',', '-')}.json")
    else:
        build = child("build", args, parts=parts, index=index, config=json.dumps(config.to_dict()))
        print(f"build: {json.dumps(build)}", flush=True)
    if args.build_only:
        return
    gen = current_generation(index)
    sizes = {path.name: path.stat().st_size / 2**20 for path in gen.iterdir() if path.is_file()}
    query = child(
        "query",
        args,
        index=index,
        base=base,
        truth=truth,
        query_file=query_path,
        config=json.dumps(config.to_dict()),
        nprobe=args.nprobe,
        refine=args.refine,
    )
    results = {
        "n": args.n,
        "dim": args.dim,
        "config": config.to_dict(),
        "threads": args.threads,
        **build,
        "files_mb": sizes,
        **query,
    }
    results_path.write_text(json.dumps(results, indent=2))
    print_table(results)


def print_table(results: dict) -> None:
    sizes = results["files_mb"]
    print(
        f"N {results['n']:,} x {results['dim']}: build "
        f"{results['build_s']:.0f} s wall / {results['build_cpu_s']:.0f} s CPU, "
        f"peak RSS {results['peak_rss_mb']:.0f} MB (anonymous {results['peak_anon_mb']:.0f} MB); files MB "
        + ", ".join(f"{name} {size:.0f}" for name, size in sorted(sizes.items()))
    )
    print("| nprobe | refine (x k) | refine vectors | recall@10 | p50 / p99 ms CPU | p50 / p99 ms wall |")
    print("|---|---|---|---|---|---|")
    for row in results["grid"]:
        print(
            f"| {row['nprobe']} | {row['refine']} | {row['refine_dtype']} | {row['recall@10']:.3f} | "
            f"{row['cpu_50_ms']:.2f} / {row['cpu_99_ms']:.2f} | {row['wall_50_ms']:.2f} / {row['wall_99_ms']:.2f} |"
        )


if __name__ == "__main__":
    main()
