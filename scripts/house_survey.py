#!/usr/bin/env python
"""The shape of the package: rooms (files and lines per package), package-level import cycles, the largest files
and lines over 120 characters; the numbers the remodel's closing note compares.

    python scripts/house_survey.py [--graph]

The import graph is the layering test's (`tests/test_layering.py`): function-level imports included, a package is
`rs_retrieval.<first component>` and each top-level module is its own node.
"""

import argparse
import collections
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_layering import PACKAGE_ROOT, cycles, import_graph, package_graph  # noqa: E402


def room(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT).parts
    if len(parts) == 1:
        return "(top-level modules)"
    return "/".join(parts[:2]) if parts[0] == "models" and len(parts) > 2 else parts[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--graph", action="store_true", help="also print each package's imports")
    args = parser.parse_args()
    packages, _ = package_graph(import_graph())
    print("package-level import cycles:", cycles(packages) or "none")
    files, lines = collections.Counter(), collections.Counter()
    sizes = []
    for path in PACKAGE_ROOT.rglob("*.py"):
        count = len(path.read_text(encoding="utf-8").splitlines())
        files[room(path)] += 1
        lines[room(path)] += count
        sizes.append((count, path.relative_to(ROOT)))
    print("\nrooms (files, lines):")
    for name in sorted(files):
        print(f"  {name:24s} {files[name]:3d} {lines[name]:6d}")
    print("\nlargest files:")
    for count, path in sorted(sizes, reverse=True)[:8]:
        print(f"  {count:5d} {path}")
    print("\nlines over 120 characters:")
    for folder in ("src", "tests", "scripts"):
        long = sum(len(line) > 120 for p in (ROOT / folder).rglob("*.py") for line in p.read_text().splitlines())
        print(f"  {folder:8s} {long}")
    if args.graph:
        print("\npackage imports:")
        for name in sorted(packages):
            print(f"  {name} -> {sorted(packages[name])}")


if __name__ == "__main__":
    main()
