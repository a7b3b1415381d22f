#!/usr/bin/env python
"""Run a benchmark script against two source trees, alternating, and report per-tree medians.

Timings on a shared machine drift; alternating the trees in one run (before, after, before,
after, ...) lets both see the same load. Each run is a fresh process whose `PYTHONPATH` is the
tree's `src`, with this checkout's benchmark script, so both trees are measured the same way.

    python scripts/benchmark_before_after.py --before ../base/src --after src --repeats 3 \\
        --out runs/bench -- benchmark_training.py --methods amfmn --batch-size 16 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent


def run_once(source: Path, script_args: list[str], output: Path) -> dict | list:
    env = {**os.environ, "PYTHONPATH": str(source.resolve())}
    flag = "--output" if script_args[0] == "benchmark_training.py" else "--json"
    command = [sys.executable, str(SCRIPTS / script_args[0]), *script_args[1:], flag, str(output)]
    subprocess.run(command, env=env, check=True)
    return json.loads(output.read_text())


def rows(result) -> dict[str, dict]:
    """Results keyed by method (and batch size for training runs)."""
    if isinstance(result, list):  # benchmark_models
        return {f"{r['method']} {r['dtype']}": r for r in result}
    return {f"{r['method']} b{r['batch_size']}": r for r in result["runs"] if "skipped" not in r}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="src folder of the baseline tree")
    parser.add_argument("--after", type=Path, required=True, help="src folder of the changed tree")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True, help="folder for the raw JSON of every run and the summary")
    parser.add_argument("script", nargs=argparse.REMAINDER, help="-- benchmark script name and its arguments")
    args = parser.parse_args(argv)
    script_args = [a for a in args.script if a != "--"]
    args.out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list] = {"before": [], "after": []}
    for repeat in range(args.repeats):
        for name, source in (("before", args.before), ("after", args.after)):
            runs[name].append(rows(run_once(source, script_args, args.out / f"{name}_{repeat}.json")))
    summary = {}
    for name, results in runs.items():
        for key in results[0]:
            numeric = [
                k for k, v in results[0][key].items() if isinstance(v, (int, float)) and not isinstance(v, bool)
            ]
            summary.setdefault(key, {})[name] = {k: statistics.median(r[key][k] for r in results) for k in numeric}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
