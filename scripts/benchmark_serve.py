"""Time `rs-retrieval serve` as a user meets it: first page, encoding, and queries in a real browser.

Starts the CLI in a subprocess twice over the same image folder, first with an empty embedding
cache (cold) and then with the cache it filled (warm), and drives Chromium through Playwright:

    python scripts/benchmark_serve.py --model runs/quickstart/model --images runs/quickstart/test_images

Reported per start: seconds from launching the command to the first page in the browser (status
line visible), to "Ready" (every image encoded), and the median / max seconds from clicking
Search to the gallery showing the hits, over `--queries` queries. Writes the numbers as JSON
with `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

#: Flags for Debian's Chromium in containers and offline machines.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
QUERIES = [
    "two white planes are parked beside a grey runway",
    "three red ships are moored in the harbour",
    "many cars in a parking lot",
    "green trees around a pond",
    "a beach with umbrellas",
    "storage tanks near a road",
    "buildings in a residential area",
    "farmland with fields",
]


def find_chromium() -> str | None:
    """A Chromium binary: $RS_RETRIEVAL_CHROMIUM, Debian's package, or one on PATH."""
    candidates = [os.environ.get("RS_RETRIEVAL_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"]
    candidates += [shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")]
    return next((c for c in candidates if c and Path(c).is_file()), None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_http(url: str, server: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer in {timeout} s")


def time_one_start(browser, args, cache_dir: Path, queries: list[str]) -> dict:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "rs_retrieval.cli",
        "serve",
        "--model",
        args.model,
        "--images",
        args.images,
        "--port",
        str(port),
        "--cache-dir",
        str(cache_dir),
    ]
    start = time.perf_counter()
    server = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"},
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_for_http(url, server, args.timeout)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(url)
        status = page.locator("#corpus-status p")
        status.wait_for(timeout=args.timeout * 1000)
        first_page = time.perf_counter() - start
        first_status = status.inner_text()
        page.locator("#corpus-status .rs-ready").wait_for(timeout=args.timeout * 1000)
        ready = time.perf_counter() - start
        seconds = []
        for query in queries:
            page.locator("#query textarea").fill(query)
            clicked = time.perf_counter()
            page.locator("#search-button").click()
            page.locator("#search-message").get_by_text(f"for “{query}”").wait_for(timeout=args.timeout * 1000)
            page.locator("#gallery button.thumbnail-item").first.wait_for()
            seconds.append(time.perf_counter() - clicked)
        page.close()
    finally:
        server.terminate()
        server.wait(30)
    return {
        "first_page_s": round(first_page, 2),
        "status_on_first_page": first_status,
        "ready_s": round(ready, 2),
        "query_median_s": round(statistics.median(seconds), 3),
        "query_max_s": round(max(seconds), 3),
        "queries": len(seconds),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--images", required=True)
    parser.add_argument("--queries", type=int, default=len(QUERIES))
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--out", help="write the numbers here as JSON")
    args = parser.parse_args(argv)
    chromium = find_chromium()
    if chromium is None:
        raise SystemExit("no Chromium found: apt-get install -y chromium (or set RS_RETRIEVAL_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    queries = (QUERIES * (1 + args.queries // len(QUERIES)))[: args.queries]
    results = {}
    with tempfile.TemporaryDirectory(prefix="rs_retrieval_serve_bench_") as cache, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        for name in ("cold_cache", "warm_cache"):
            results[name] = time_one_start(browser, args, Path(cache), queries)
            print(name, json.dumps(results[name]), flush=True)
        browser.close()
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1), encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
