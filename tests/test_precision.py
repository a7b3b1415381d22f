"""Inference precision (`rs_retrieval.precision`): the quality gate of bf16 and int8 against fp32 on
small models trained here from the clip_synth and amfmn_synth recipes, the one knob on the loader
and the command line, and encodings cached per precision."""

import json
from pathlib import Path

import pytest
import torch
from tiny_methods import TINY_RECIPE_OVERRIDES

from rs_retrieval.cli import main
from rs_retrieval.data import load_dataset
from rs_retrieval.precision import PrecisionError, with_precision
from rs_retrieval.precision_gate import compare_precisions
from rs_retrieval.pretrained import load_model_and_processor
from rs_retrieval.training.recipe import load_recipe
from rs_retrieval.training.trainer import Trainer
from rs_retrieval.zeroshot.evaluate import rs_synth_image_folder

#: The methods whose precision gate is measured: a CLIP and a pair-dependent (AMFMN) model.
TINY = {method: TINY_RECIPE_OVERRIDES[method] for method in ("clip", "amfmn")}

pytest.importorskip("onnxruntime")

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SYNTH = dict(image_size=32, train_size=20, val_size=6, test_size=20)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """{method: saved model folder}, each trained 6 steps from its synth recipe; the test split; the zero-shot folder."""
    root = tmp_path_factory.mktemp("precision")
    cache = root / "synth"
    data = [f"data.cache_dir={cache}", "data.options={" + ", ".join(f"{k}: {v}" for k, v in SYNTH.items()) + "}"]
    training = [
        "training.batch_size=10",
        "training.max_steps=6",
        "training.eval_batch_size=20",
        "training.eval_every_epochs=0",
    ]
    models = {}
    for method in TINY:
        recipe = load_recipe(CONFIGS / f"{method}_synth.yaml", TINY[method] + data + training)
        models[method] = Trainer(recipe, run_dir=root / method).train() / "model"
    test = load_dataset("rs_synth", split="test", cache_dir=cache, **SYNTH)
    zeroshot = rs_synth_image_folder(root / "zeroshot", split="test", cache_dir=cache, **SYNTH)
    return models, test, zeroshot, root


@pytest.mark.parametrize("method", list(TINY))
def test_quality_gate_of_bf16_and_int8_against_fp32(trained, method, monkeypatch):
    models, test, zeroshot, root = trained
    monkeypatch.setenv("RS_RETRIEVAL_CACHE", str(root / "cache"))
    rows = compare_precisions(
        models[method], test, zeroshot_dir=zeroshot if method == "clip" else None, class_set="rs_synth", batch_size=20
    )
    assert list(rows) == ["fp32", "bf16", "int8"]
    for precision in ("bf16", "int8"):
        row = rows[precision]
        # The same embeddings up to rounding: bf16 keeps 8 mantissa bits, int8 quantizes weights per tensor.
        assert row["image_cosine"]["min"] > 0.99 and row["text_cosine"]["min"] > 0.99, (precision, row)
        # 20 test images: one image changing rank moves an i2t recall by 5 points, mR by ~0.8.
        assert abs(row["mR_change"]) <= 3.0, (precision, row)
        assert row["gate"] == (abs(row["mR_change"]) <= 0.5)
        if method == "clip":
            assert abs(row["zeroshot_top1"] - rows["fp32"]["zeroshot_top1"]) <= 10.0, rows
    if method == "amfmn":  # the skip-thought GRU stays in PyTorch float32 under int8 (docs/precision.md)
        assert rows["int8"]["text_cosine"]["min"] > 0.99999


def test_search_caches_each_precision_apart_and_int8_ranks_like_fp32(trained, tmp_path, capsys):
    models, test, zeroshot, root = trained
    images = sorted(Path(zeroshot).glob("*/*"))[:8]
    folder = tmp_path / "images"
    folder.mkdir()
    for path in images:
        (folder / path.name).write_bytes(path.resolve().read_bytes())
    ranked = {}
    for precision in ("fp32", "int8", "int8"):
        argv = [
            "search",
            "a harbour with ships",
            "--images",
            str(folder),
            "--model",
            str(models["clip"]),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--precision",
            precision,
            "--top-k",
            "8",
        ]
        assert main(argv) == 0
        lines = capsys.readouterr().out.splitlines()[1:]
        ranked.setdefault(precision, []).append([(line.split()[2], float(line.split()[1])) for line in lines])
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 2  # one file per precision, never mixed
    assert ranked["int8"][0] == ranked["int8"][1]  # the second int8 run reads its own cache
    fp32, int8 = dict(ranked["fp32"][0]), dict(ranked["int8"][0])
    assert fp32.keys() == int8.keys() and max(abs(fp32[k] - int8[k]) for k in fp32) < 0.05


def test_unknown_or_unavailable_precision_is_a_one_line_error(trained, capsys):
    models, *_ = trained
    with pytest.raises(PrecisionError, match="precision must be one of fp32, bf16, int8, got 'fp16'"):
        load_model_and_processor(models["clip"], precision="fp16")
    model, processor = load_model_and_processor(models["clip"])
    with pytest.raises(PrecisionError, match="int8 runs on the CPU through ONNX Runtime, the model is on meta"):
        with_precision(model.to("meta"), "int8", processor)
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--model", str(models["clip"]), "--dataset", "rs_synth", "--precision", "fp16"])
    assert exit_info.value.code == 2 and "invalid choice: 'fp16'" in capsys.readouterr().err


def test_bf16_model_keeps_the_contract_float32_in_and_out(trained):
    models, test, *_ = trained
    model, processor = load_model_and_processor(models["amfmn"], precision="bf16")
    assert model.precision == "bf16" and model.dtype == torch.bfloat16 and model.config.model_type == "amfmn"
    inputs = processor(images=test[:3]["image"], text=["a ship", "green fields", "a road"])
    with torch.inference_mode():
        images = model.encode_images(pixel_values=inputs["pixel_values"])
        texts = model.encode_texts(inputs["input_ids"], inputs["attention_mask"])
        scores = model.score(images, texts)
        output = model(pixel_values=inputs["pixel_values"])  # the image-feature pipeline's path
    assert images["embeds"].dtype == texts["embeds"].dtype == scores.dtype == torch.float32 and scores.shape == (3, 3)
    torch.testing.assert_close(output.image_embeds, images["embeds"])
    assert json.loads((models["amfmn"] / "config.json").read_text())["model_type"] == "amfmn"


def test_index_built_at_int8_reopens_its_model_at_int8(trained, tmp_path, monkeypatch):
    from rs_retrieval.index.retrieval import RetrievalIndex

    models, test, zeroshot, root = trained
    monkeypatch.setenv("RS_RETRIEVAL_CACHE", str(root / "cache"))
    folder = tmp_path / "images"
    folder.mkdir()
    for path in sorted(Path(zeroshot).glob("*/*"))[:6]:
        (folder / path.name).write_bytes(path.resolve().read_bytes())
    model, processor = load_model_and_processor(models["clip"], precision="int8")
    built = RetrievalIndex.build(model, processor, tmp_path / "index", images=folder, index="flat", progress=False)
    hits = [hit.row for hit in built.search("a harbour with ships", k=3)]
    reopened = RetrievalIndex.open(
        tmp_path / "index", model=models["clip"]
    )  # the folder: loaded at the index's precision
    assert reopened.manifest["model"]["precision"] == "int8"
    assert [hit.row for hit in reopened.search("a harbour with ships", k=3)] == hits
