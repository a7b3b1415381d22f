"""Regenerate the pictures of the documentation (`docs/images/*.png`) from the built-in rs_synth data.

    PYTHONPATH=src python scripts/make_doc_figures.py [--steps 120] [--out docs/images]

1. a short quickstart run (the packaged `amfmn_synth` recipe, `training.max_steps=--steps`):
   its training curves and the contact sheet of its text query;
2. a vector index over a georeferenced scene mosaic of rs_synth test images, and the hits of a
   query outlined on the scene;
3. screenshots of the web app (`rs-retrieval serve` over the run's test images) in Chromium, driven
   by Playwright (skipped with a message when no Chromium is found).

Every picture is palette-quantised and at most `--max-width` pixels wide, to keep the repository small.
Nothing is drawn by hand; rerun this script after a change that alters a picture.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_serve import CHROMIUM_ARGS, find_chromium, free_port

ROOT = Path(__file__).resolve().parents[1]
QUERY = "two white planes are parked beside a grey runway"
SCENE_QUERY = "three red ships are moored in the harbour"
SCENE_GRID = 4  # tiles per side of the scene mosaic


def save_small(source: Path | Image.Image, target: Path, max_width: int) -> Path:
    """Write `source` as a palette PNG no wider than `max_width`."""
    picture = Image.open(source) if isinstance(source, Path) else source
    picture = picture.convert("RGB")
    if picture.width > max_width:
        picture = picture.resize((max_width, round(picture.height * max_width / picture.width)), Image.LANCZOS)
    picture.quantize(colors=192, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)
    print(f"wrote {target} ({target.stat().st_size // 1024} KiB)")
    return target


def train_run(work: Path, steps: int) -> dict:
    """The quickstart, cut to `steps` optimizer steps (every stage runs: train, evaluate, search)."""
    from rs_retrieval.quickstart import run_quickstart

    overrides = [f"training.max_steps={steps}", f"training.log_every_steps={max(1, steps // 12)}"]
    return run_quickstart(output_dir=work / "run", query=QUERY, overrides=overrides)


def write_scene_mosaic(images: list[Path], path: Path) -> Path:
    """A 3-band GeoTIFF of SCENE_GRID x SCENE_GRID rs_synth images, 10 m pixels in UTM 33N."""
    import rasterio
    from rasterio.transform import from_origin

    tiles = [np.asarray(Image.open(p).convert("RGB")) for p in images[: SCENE_GRID**2]]
    rows = [np.concatenate(tiles[r * SCENE_GRID : (r + 1) * SCENE_GRID], axis=1) for r in range(SCENE_GRID)]
    pixels = np.concatenate(rows, axis=0)
    profile = dict(
        driver="GTiff",
        width=pixels.shape[1],
        height=pixels.shape[0],
        count=3,
        dtype="uint8",
        crs="EPSG:32633",
        transform=from_origin(500_000.0, 4_000_000.0, 10.0, 10.0),
    )
    with rasterio.open(path, "w", **profile) as out:
        out.write(np.moveaxis(pixels, -1, 0))
    return path


def scene_map(model_dir: Path, test_images: Path, work: Path, out: Path, max_width: int) -> Path:
    """Index the scene's tiles and draw the top hits of SCENE_QUERY on it."""
    from rs_retrieval.index import RetrievalIndex
    from rs_retrieval.pretrained import load_model_and_processor

    model, processor = load_model_and_processor(str(model_dir))
    tile = Image.open(next(test_images.iterdir())).width
    scene = write_scene_mosaic(sorted(test_images.iterdir()), work / "scene.tif")
    index = RetrievalIndex.build(model, processor, work / "scene.index", scene=scene, tile_size=tile, progress=False)
    hits = index.search(SCENE_QUERY, k=3)
    picture = index.draw(hits, work / "scene_map.png", query=SCENE_QUERY)
    return save_small(Path(picture), out / "scene_map.png", max_width)


def app_screenshots(summary: dict, work: Path, out: Path, max_width: int) -> list[Path]:
    """Serve the run's test images with the quickstart's own `serve` line and photograph two tabs."""
    chromium = find_chromium()
    if chromium is None:
        print("no Chromium found (apt-get install chromium, or set RS_RETRIEVAL_CHROMIUM): app screenshots skipped")
        return []
    import shlex

    from playwright.sync_api import expect, sync_playwright

    from rs_retrieval.app.launch import build_service
    from rs_retrieval.app.ui import launch
    from rs_retrieval.cli.serve import register, service_options

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    port = free_port()
    serve_args = shlex.split(summary["serve_command"])[1:]  # drop the program name
    args = parser.parse_args(serve_args + ["--port", str(port), "--cache-dir", str(work / "cache")])
    service = build_service(args.model, **service_options(args))
    service.corpus.start()
    demo = launch(service, port=port, block=False, quiet=True)
    shots = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            expect.set_options(timeout=120_000)
            page.goto(f"http://127.0.0.1:{port}/")
            expect(page.locator("#corpus-status")).to_contain_text("Ready")
            page.locator("#k input[type=number]").fill("6")
            page.locator("#k input[type=number]").press("Enter")
            page.locator("#query textarea").fill(QUERY)
            page.locator("#search-button").click()
            expect(page.locator("#search-message")).to_contain_text("hits for")
            time.sleep(1.0)  # let the gallery thumbnails finish loading
            page.screenshot(path=work / "app_text.png", full_page=True)
            shots.append(save_small(work / "app_text.png", out / "app_text_to_images.png", max_width))

            page.get_by_role("tab", name="Image → captions").click()
            image = sorted(Path(args.images).iterdir())[0]
            page.locator("#caption-upload input[type=file]").set_input_files(str(image.resolve()))
            expect(page.locator("#caption-results tbody tr").first).to_be_visible()
            time.sleep(1.0)
            page.screenshot(path=work / "app_captions.png", full_page=True)
            shots.append(save_small(work / "app_captions.png", out / "app_image_to_captions.png", max_width))
            browser.close()
    finally:
        demo.close()
    return shots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps", type=int, default=120, help="training steps of the figure run (default 120: three rs_synth epochs)"
    )
    parser.add_argument("--out", default=str(ROOT / "docs" / "images"), help="folder of the pictures")
    parser.add_argument("--max-width", type=int, default=900, help="width limit of every picture, in pixels")
    parser.add_argument("--work-dir", help="keep the run here instead of a temporary folder")
    args = parser.parse_args(argv)

    from rs_retrieval.runtime import prepare_process

    prepare_process()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rs_retrieval_figures_") as temporary:
        work = Path(args.work_dir or temporary)
        work.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        summary = train_run(work, args.steps)
        run_dir = Path(summary["run_dir"])
        save_small(run_dir / "training_curves.png", out / "training_curves.png", args.max_width)
        save_small(run_dir / "search_example.png", out / "contact_sheet.png", args.max_width)
        scene_map(run_dir / "model", run_dir / "test_images", work, out, args.max_width)
        app_screenshots(summary, work, out, args.max_width)
        record = {
            "steps": args.steps,
            "seconds": round(time.perf_counter() - start, 1),
            "query": QUERY,
            "scene_query": SCENE_QUERY,
        }
        print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
