"""Hub round-trips against the fake Hub: push a trained run and a dataset, load them in fresh processes
with and without rs_retrieval installed, and kill the server in the middle of a push.

HF client libraries read HF_ENDPOINT & co. at import, so every client runs in a subprocess.
"""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hub_server import FakeHub, client_env, import_tiny_package, make_tiny_model, run_client, write_tiny_package
from PIL import Image

MODEL_REPO, DATASET_REPO = "org/tiny-rsitmd", "org/rsitmd-mini"
TEXTS = ["two ships in a harbour", "green field", "a road"]
METRICS = {
    "selection": "best validation mR",
    "best_epoch": 2,
    "global_step": 40,
    "validation": {
        "i2t_R@1": 25.0,
        "i2t_R@5": 50.0,
        "i2t_R@10": 75.0,
        "t2i_R@1": 10.0,
        "t2i_R@5": 40.0,
        "t2i_R@10": 60.0,
        "mR": 43.333333333333336,
        "i2t_queries": 4,
        "t2i_queries": 20,
    },
}

PUSH = """
import sys
sys.path.insert(0, {tests!r})
import tinyhub  # registers the tiny model, as a user's package would
from rs_retrieval.cli import main
from rs_retrieval.hub.publish import push_model
print(push_model({run!r}, {model_repo!r}).oid)
main(["push", {dataset!r}, {dataset_repo!r}, "--dataset-name", "rsitmd"])  # the CLI detects a save_to_disk folder
"""

LOAD_MODEL = """
import torch
from PIL import Image
from transformers import AutoModel, AutoProcessor
model = AutoModel.from_pretrained({repo!r}, trust_remote_code={remote!r}).eval()
processor = AutoProcessor.from_pretrained({repo!r}, trust_remote_code={remote!r})
batch = processor(images=[Image.open(p) for p in {images!r}], text={texts!r})
with torch.no_grad():
    out = model(**batch)
torch.save({{"batch": dict(batch), "logits": out.logits_per_image, "image_embeds": out.image_embeds,
            "text_embeds": out.text_embeds, "modules": [type(model).__module__, type(processor).__module__,
            type(processor.image_processor).__module__]}}, {out!r})
"""

LOAD_DATASET = """
import hashlib, json
import numpy as np
from datasets import load_dataset
ds = load_dataset({repo!r})
rows = {{split: [[r["filename"], r["captions"], hashlib.sha1(np.asarray(r["image"].convert("RGB")).tobytes()).hexdigest()]
         for r in ds[split]] for split in ds}}
json.dump(rows, open({out!r}, "w"))
"""

#: `http_backoff` sleeps 1+2+4+8+8 s between its retries; the failure test keeps the retries but not the waits.
FAST_RETRIES = "import time\n_sleep = time.sleep\ntime.sleep = lambda s: _sleep(min(s, 0.01))\n"


def with_pythonpath(folder) -> str:
    """`folder` in front of the caller's PYTHONPATH (which may point at the rs_retrieval under test)."""
    return os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))


def pixels_sha1(path):
    return hashlib.sha1(np.asarray(Image.open(path).convert("RGB")).tobytes()).hexdigest()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A run dir, a dataset on disk, reference outputs, and a fake Hub holding both after one push each."""
    import datasets

    root = tmp_path_factory.mktemp("roundtrip")
    import_tiny_package(root / "pkg_main")
    write_tiny_package(root / "pkg")
    model, processor = make_tiny_model(seed=11)
    run = root / "run"
    model.save_pretrained(run / "model")
    processor.save_pretrained(run / "model")
    (run / "metrics.json").write_text(json.dumps(METRICS))
    (run / "training_args.json").write_text(
        json.dumps({"recipe": {"data": {"name": "rsitmd"}, "training": {"epochs": 2}}})
    )
    rng = np.random.default_rng(0)
    images = []
    for i in range(6):
        images.append(root / "images" / f"scene_{i}.png")
        images[-1].parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (36, 36, 3), dtype=np.uint8)).save(images[-1])
    Image.new("RGB", (8, 8)).save(run / "training_curves.png")
    splits = {"train": images[:4], "test": images[4:]}
    dataset = datasets.DatasetDict(
        {
            name: datasets.Dataset.from_dict(
                {
                    "image": [str(p) for p in paths],
                    "filename": [p.name for p in paths],
                    "captions": [[f"{p.stem} caption {j}" for j in range(5)] for p in paths],
                },
                features=datasets.Features(
                    {
                        "image": datasets.Image(),
                        "filename": datasets.Value("string"),
                        "captions": datasets.List(datasets.Value("string")),
                    }
                ),
            )
            for name, paths in splits.items()
        }
    )
    dataset.save_to_disk(str(root / "dataset"))
    expected_rows = {
        name: [[p.name, [f"{p.stem} caption {j}" for j in range(5)], pixels_sha1(p)] for p in paths]
        for name, paths in splits.items()
    }

    batch = processor(images=[Image.open(p) for p in images[:3]], text=TEXTS)
    with torch.no_grad():
        reference = model(**batch)

    hub = FakeHub().start()
    env = client_env(hub.endpoint, root / "hf_push")
    env["PYTHONPATH"] = with_pythonpath(root / "pkg")
    pushed = run_client(
        PUSH.format(
            tests=str(Path(__file__).parents[1]),
            run=str(run),
            model_repo=MODEL_REPO,
            dataset=str(root / "dataset"),
            dataset_repo=DATASET_REPO,
        ),
        env,
    )
    assert pushed.returncode == 0, pushed.stderr[-4000:]
    model_commit, cli_output = pushed.stdout.split("\n", 1)
    assert cli_output.startswith(f"pushed dataset {root / 'dataset'} -> {DATASET_REPO} in commit ")
    dataset_commit = cli_output.split(" in commit ")[1].split()[0]
    yield {
        "root": root,
        "hub": hub,
        "run": run,
        "images": [str(p) for p in images[:3]],
        "batch": batch,
        "reference": reference,
        "expected_rows": expected_rows,
        "commits": [model_commit, dataset_commit],
    }
    hub.stop()


def load_in_fresh_process(world, name, remote, block=()):
    out = world["root"] / f"{name}.pt"
    env = client_env(world["hub"].endpoint, world["root"] / f"hf_{name}")
    env["PYTHONPATH"] = with_pythonpath(world["root"] / "pkg")
    script = ("import tinyhub\n" if not block else "") + LOAD_MODEL.format(
        repo=MODEL_REPO, remote=remote, images=world["images"], texts=TEXTS, out=str(out)
    )
    if block:
        script += LOAD_DATASET.format(repo=DATASET_REPO, out=str(out.with_suffix(".json")))
    result = run_client(script, env, block=block)
    assert result.returncode == 0, result.stderr[-4000:]
    return torch.load(out, weights_only=True)


def assert_same_outputs(loaded, world):
    for key in ("pixel_values", "input_ids", "attention_mask"):
        assert torch.equal(loaded["batch"][key], world["batch"][key]), key
    assert torch.equal(loaded["logits"], world["reference"].logits_per_image)
    assert torch.equal(loaded["image_embeds"], world["reference"].image_embeds)
    assert torch.equal(loaded["text_embeds"], world["reference"].text_embeds)


def test_push_is_one_commit_with_model_code_card_and_run_files(world):
    hub = world["hub"]
    repo = hub.repo(MODEL_REPO)
    head = repo.resolve("main")
    assert head.oid == world["commits"][0] and len(repo.commits) == 2  # the repo's initial commit + the push
    assert len(hub.requests_to("POST", f"/api/models/{MODEL_REPO}/commit/")) == 1
    files = set(head.files)
    assert {
        "config.json",
        "model.safetensors",
        "processor_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "README.md",
        "metrics.json",
        "training_args.json",
        "training_curves.png",
        "modeling_tiny.py",
    } <= files
    assert [name for name in files if name.endswith(".py")] == ["modeling_tiny.py"]  # one remote-code file
    assert head.files["model.safetensors"].sha256 is not None  # went through LFS
    assert (
        hub.file_bytes(MODEL_REPO, "model.safetensors") == (world["run"] / "model" / "model.safetensors").read_bytes()
    )
    card = hub.file_bytes(MODEL_REPO, "README.md").decode()
    meta = yaml.safe_load(card.split("---\n")[1])
    indexed = {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert indexed["mR"] == round(METRICS["validation"]["mR"], 4) and indexed["i2t_R@1"] == 25.0
    assert (
        "![Training curves](training_curves.png)" in card
        and f'from_pretrained("{MODEL_REPO}", trust_remote_code=True)' in card
    )
    assert (
        json.loads(hub.file_bytes(MODEL_REPO, "config.json"))["auto_map"]["AutoModel"] == "modeling_tiny.TinyHubModel"
    )


def test_fresh_process_with_the_package_loads_identical_model(world):
    loaded = load_in_fresh_process(world, "with_package", remote=False)
    assert loaded["modules"][:2] == ["tinyhub.models.tiny.modeling_tiny", "tinyhub.models.tiny.processing_tiny"]
    assert_same_outputs(loaded, world)


def test_fresh_process_without_the_package_loads_remote_code_and_dataset(world):
    loaded = load_in_fresh_process(world, "no_package", remote=True, block=("rs_retrieval", "tinyhub"))
    assert all(module.startswith("transformers_modules.") for module in loaded["modules"])
    assert_same_outputs(loaded, world)
    rows = json.loads((world["root"] / "no_package.json").read_text())
    assert rows == world["expected_rows"]


def test_dataset_repo_is_one_commit_of_parquet_and_card(world):
    hub = world["hub"]
    head = hub.repo(DATASET_REPO, "dataset").resolve("main")
    assert head.oid == world["commits"][1]
    assert set(head.files) == {
        ".gitattributes",
        "README.md",
        "data/train-00000-of-00001.parquet",
        "data/test-00000-of-00001.parquet",
    }
    card = hub.file_bytes(DATASET_REPO, "README.md", repo_type="dataset").decode()
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["license"] == "unknown" and "| train | 4 | 20 |" in card and "| test | 2 | 10 |" in card
    assert "- `image`: `Image`" in card and "- `filename`: `string`" in card


def test_push_killed_during_lfs_upload_raises_and_leaves_main_unchanged(world):
    hub = world["hub"]
    before_head = hub.branch_head(MODEL_REPO)
    before = {path: hub.file_bytes(MODEL_REPO, path) for path in hub.repo(MODEL_REPO).resolve("main").files}
    model, processor = make_tiny_model(seed=12)  # new weights: a new LFS object must be uploaded
    model.save_pretrained(world["root"] / "run2" / "model")
    processor.save_pretrained(world["root"] / "run2" / "model")
    hub.fail_during_lfs_upload = True
    env = client_env(hub.endpoint, world["root"] / "hf_fail")
    env["PYTHONPATH"] = with_pythonpath(world["root"] / "pkg")
    script = (
        FAST_RETRIES
        + f"import tinyhub\nfrom rs_retrieval.hub.publish import push_model\npush_model({str(world['root'] / 'run2')!r}, {MODEL_REPO!r})\n"
    )
    try:
        result = run_client(script, env)
        assert result.returncode == 1
        assert (
            "rs_retrieval.hub.publish.HubPushError: pushing" in result.stderr
            and "keeps its previous revision" in result.stderr
        )
        assert len(hub.requests_to("POST", f"/api/models/{MODEL_REPO}/commit/")) == 1  # only the first push's
        assert hub.branch_head(MODEL_REPO) == before_head
        assert {
            path: hub.file_bytes(MODEL_REPO, path) for path in hub.repo(MODEL_REPO).resolve("main").files
        } == before
    finally:
        hub.fail_during_lfs_upload = False
        if not hub.running:
            hub.start()  # the kill closed the server; later tests may still use the hub
