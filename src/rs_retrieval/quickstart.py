"""`rs-retrieval quickstart`: the main job end to end on the built-in synthetic dataset.

Builds `rs_synth`, trains a small recipe on CPU, evaluates on the held-out test split (with and
without re-ranking), and runs one text query over the test images, writing a contact sheet.
Every step calls the same library functions as the individual sub-commands.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

#: A packaged recipe name (`rs-retrieval recipes`), so the quickstart runs from any folder.
DEFAULT_RECIPE = "amfmn_synth"
DEFAULT_QUERY = "two white planes are parked beside a grey runway"


def run_quickstart(
    config: str | Path = DEFAULT_RECIPE,
    output_dir: str | Path = "runs/quickstart",
    query: str = DEFAULT_QUERY,
    overrides: list[str] | tuple[str, ...] = (),
    resume: str | None = None,
) -> dict:
    """Train, evaluate and search; returns a summary (also written to `output_dir/summary.json`)."""
    from .app.launch import serve_command
    from .cards import write_model_card
    from .data import load_dataset
    from .data.synth import generate_rs_synth
    from .evaluation.evaluator import evaluate_retrieval
    from .evaluation.folds import format_table
    from .fileio import write_json_atomic
    from .models.common.processing import input_image_size
    from .pretrained import load_model_and_processor
    from .search.folder_search import make_contact_sheet, search_images
    from .training import load_recipe, train
    from .training.data import dataset_options
    from .training.recipe import RecipeError

    output_dir = Path(output_dir)
    timings = {}

    start = time.perf_counter()
    recipe = load_recipe(config, list(overrides))
    if recipe.data.name != "rs_synth":
        raise RecipeError(
            f"the quickstart runs on rs_synth; {config} trains on {recipe.data.name or recipe.data.path!r}"
        )
    run_dir = train(recipe, run_dir=output_dir, resume=resume, on_finish=[write_model_card])
    timings["train_s"] = time.perf_counter() - start

    start = time.perf_counter()
    model, processor = load_model_and_processor(str(run_dir / "model"))
    synth = dict(
        cache_dir=recipe.data.cache_dir,
        seed=recipe.data.seed,
        **dataset_options(recipe.data, input_image_size(model.config)),
    )
    test_split = load_dataset("rs_synth", split="test", **synth)
    test_metrics = evaluate_retrieval(
        model,
        processor,
        test_split,
        rerank=("none", "galr_mr"),
        batch_size=recipe.training.eval_batch_size,
        **recipe.evaluation.metric_kwargs(),
    )
    write_json_atomic(run_dir / "test_metrics.json", test_metrics)
    timings["evaluate_s"] = time.perf_counter() - start
    print(format_table(test_metrics, title="rs_synth test split (selected on validation)"))

    start = time.perf_counter()
    synth_root = generate_rs_synth(**synth)
    test_files = set(test_split["filename"])
    test_images = run_dir / "test_images"
    test_images.mkdir(exist_ok=True)
    for name in test_files:  # links keep the search folder to the test split without copying pixels
        link = test_images / name
        if not link.exists():
            os.symlink((synth_root / "images" / name).resolve(), link)
    results = search_images(query, test_images, model, processor, top_k=5)
    sheet = make_contact_sheet(query, results, run_dir / "search_example.png")
    timings["search_s"] = time.perf_counter() - start
    print(f'\nquery: "{query}"')
    for rank, (path, score) in enumerate(results, start=1):
        print(f"{rank:>2}. {score:.4f}  {Path(path).name}")

    summary = {
        "run_dir": str(run_dir),
        "test_metrics": test_metrics,
        "query": query,
        "top5": [(Path(p).name, float(s)) for p, s in results],
        "contact_sheet": str(sheet),
        "timings_s": timings,
    }
    summary["serve_command"] = serve_command(
        run_dir / "model", images=test_images, captions=synth_root / "dataset.json"
    )
    write_json_atomic(run_dir / "summary.json", summary)
    print(f"\nmodel, metrics and pictures: {run_dir}")
    print(f"look at it in a browser (text -> images, image -> captions):\n  {summary['serve_command']}")
    return summary
