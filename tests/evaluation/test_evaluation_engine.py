import argparse
import json
import sys
import types

import datasets
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from toy_model import ToyConfig, ToyModel, ToyProcessor, toy_processor
from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoProcessor

from rs_retrieval.cli import evaluate as commands
from rs_retrieval.errors import UsageError
from rs_retrieval.evaluation.evaluator import encode_dataset, evaluate_retrieval, score_matrix
from rs_retrieval.evaluation.folds import format_table
from rs_retrieval.evaluation.metrics import retrieval_metrics
from rs_retrieval.evaluation.rerank import apply_rerank
from rs_retrieval.models.common.processing import RSImageProcessor

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "red", "green", "blue", "field", "river", "a", "the", "near"]


class CountingToyConfig(ToyConfig):
    model_type = "rs_eval_tiny_test"


class CountingToyModel(ToyModel):
    """The toy reading one more image input (the object count its processor adds) and counting the images it encodes."""

    config_class = CountingToyConfig

    def __init__(self, config):
        super().__init__(config)
        self.images_encoded = 0

    def get_image_features(self, pixel_values, object_counts):
        self.images_encoded += len(pixel_values)
        return super().get_image_features(pixel_values) + object_counts


class CountingToyProcessor(ToyProcessor):
    """Adds the number of annotated objects (a dataset column) to the image inputs."""

    def image_inputs(self, rows, train=False):
        inputs = super().image_inputs(rows, train=train)
        inputs["object_counts"] = torch.tensor([[float(len(objects))] for objects in rows["objects"]])
        return inputs


AutoConfig.register(CountingToyConfig.model_type, CountingToyConfig, exist_ok=True)
AutoModel.register(CountingToyConfig, CountingToyModel, exist_ok=True)
AutoImageProcessor.register(CountingToyConfig, image_processor_classes={"pil": RSImageProcessor}, exist_ok=True)
AutoProcessor.register(CountingToyConfig, CountingToyProcessor, exist_ok=True)

CAPTIONS = [
    ["red field", "a red field"],
    ["green river", "the green river", "a river"],
    ["blue field"],
    ["red field", "red river near the field"],  # "red field" also describes image 0
    ["green field", "a green field"],
    ["blue river"],
    ["the blue field near a river", "blue", "a blue river"],
]
COLOURS = [(200, 20, 20), (20, 200, 20), (20, 20, 200), (180, 40, 30), (30, 170, 40), (10, 40, 220), (60, 60, 180)]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return CountingToyModel(CountingToyConfig(embed_dim=4, vocab_size=len(WORDS), dropout=0.0))


@pytest.fixture(scope="module")
def processor():
    return toy_processor({word: index for index, word in enumerate(WORDS)}, 16, CountingToyProcessor)


@pytest.fixture(scope="module")
def dataset():
    rng = np.random.default_rng(0)
    images = [
        Image.fromarray(np.clip(rng.normal(colour, 15, (20, 24, 3)), 0, 255).astype(np.uint8)) for colour in COLOURS
    ]
    return datasets.Dataset.from_dict(
        {
            "image": images,
            "captions": CAPTIONS,
            "objects": [["ship"] * (index % 3) for index in range(len(CAPTIONS))],
            "filename": [f"img{index % 6}.jpg" for index in range(len(CAPTIONS))],  # last row repeats the first file
        }
    )


def _by_hand(model, processor, dataset):
    """Per-row features and the cosine matrix, computed one image and one caption at a time."""
    with torch.no_grad():
        images = [
            model.get_image_features(**processor.image_inputs(dataset[index : index + 1]))
            for index in range(len(dataset))
        ]
        texts = [caption for row in CAPTIONS for caption in row]
        captions = [model.get_text_features(**processor.text_inputs([text])) for text in texts]
    images, captions = torch.cat(images), torch.cat(captions)
    sim = nn.functional.normalize(images, dim=-1) @ nn.functional.normalize(captions, dim=-1).t()
    return images, captions, sim, texts


def test_encode_dataset_caches_each_image_once(model, processor, dataset):
    model.images_encoded = 0
    image_cache, text_cache, text_to_image, texts = encode_dataset(
        model, processor, dataset, batch_size=3, progress=False
    )
    assert model.images_encoded == len(dataset)  # not once per caption
    images, captions, _, expected_texts = _by_hand(model, processor, dataset)
    assert set(image_cache) == {"embeds"} and set(text_cache) == {"embeds"}
    torch.testing.assert_close(image_cache["embeds"], images)
    torch.testing.assert_close(text_cache["embeds"], captions)  # batch padding does not change a caption
    assert texts == expected_texts
    assert text_to_image.dtype == torch.long
    assert text_to_image.tolist() == [index for index, row in enumerate(CAPTIONS) for _ in row]
    assert not model.training


def test_evaluate_retrieval_equals_metrics_of_hand_computed_matrix(model, processor, dataset):
    _, _, sim, texts = _by_hand(model, processor, dataset)
    text_to_image = [index for index, row in enumerate(CAPTIONS) for _ in row]
    params = {"galr_mr": {"k1": 2, "wp1": 0.5}, "smr": {"tau": 0.1}}
    results = evaluate_retrieval(
        model,
        processor,
        dataset,
        rerank=("none", "galr_mr", "smr"),
        batch_size=4,
        progress=False,
        score_chunk_size=5,
        rerank_params=params,
        protocol="multi_positive",
        ks=(1, 3),
    )
    assert list(results) == ["none", "galr_mr", "smr"]
    for name, metrics in results.items():
        scores = apply_rerank(sim, name, **params.get(name, {}))
        expected = retrieval_metrics(
            scores.i2t, text_to_image, t2i_sim=scores.t2i, texts=texts, protocol="multi_positive", ks=(1, 3)
        )
        assert metrics == pytest.approx(expected), name
    assert results["none"]["protocol"] == "multi_positive" and results["none"]["i2t_R@3"] > 0


def test_score_matrix_chunks_give_the_full_matrix(model, processor, dataset):
    image_cache, text_cache, _, _ = encode_dataset(model, processor, dataset, progress=False)
    full = score_matrix(model, image_cache, text_cache)
    assert full.shape == (7, 14)
    for chunk in (1, 3, 14, 100):
        torch.testing.assert_close(
            score_matrix(model, image_cache, text_cache, chunk_size=chunk), full
        )  # BLAS blocking: ulp-level


def test_engine_errors(model, processor, dataset):
    with pytest.raises(ValueError, match="unknown re-ranker"):
        evaluate_retrieval(model, processor, dataset, rerank=("none", "mr"), progress=False)
    with pytest.raises(ValueError, match="lacks column"):
        encode_dataset(model, processor, dataset.remove_columns("captions"), progress=False)
    broken = dataset.map(lambda row, index: {"captions": [] if index == 5 else row["captions"]}, with_indices=True)
    with pytest.raises(ValueError, match="row 5: 'captions' must be a non-empty list"):
        encode_dataset(model, processor, broken, batch_size=4, progress=False)


def _run_cli(argv):
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_evaluate_command_loads_model_and_writes_json(model, processor, dataset, tmp_path, monkeypatch, capsys):
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    calls = []

    def fake_load_dataset(name, data_dir=None, source="auto", split=None, cache_dir=None):
        calls.append((name, data_dir, source, split, cache_dir))
        return dataset

    monkeypatch.setitem(sys.modules, "rs_retrieval.data", types.SimpleNamespace(load_dataset=fake_load_dataset))
    output = tmp_path / "out" / "metrics.json"
    argv = [
        "evaluate",
        "--model",
        str(tmp_path / "model"),
        "--dataset",
        "tiny",
        "--data-dir",
        "/data/tiny",
        "--device",
        "cpu",
    ]
    assert (
        _run_cli([*argv, "--rerank", "none", "smr", "--smr-tau", "0.2", "--output", str(output), "--no-progress"]) == 0
    )
    assert calls == [("tiny", "/data/tiny", "auto", "test", None)]
    written = json.loads(output.read_text())
    expected = evaluate_retrieval(
        model,
        processor,
        dataset,
        rerank=("none", "smr"),
        progress=False,
        rerank_params={"smr": {"tau": 0.2, "top_k": None}},
    )
    assert set(written["results"]) == {"none", "smr"}
    for name, metrics in expected.items():
        assert written["results"][name] == pytest.approx(metrics)
    assert (
        written["dataset"] == "tiny"
        and written["split"] == "test"
        and written["rerank_params"] == {"smr": {"tau": 0.2, "top_k": None}}
    )
    assert [path.name for path in output.parent.iterdir()] == ["metrics.json"]  # no temporary file left
    printed = capsys.readouterr().out
    assert format_table(expected) in printed and "| smr " in printed

    _run_cli([*argv, "--protocol", "dedup_image", "--no-progress"])
    dedup = evaluate_retrieval(
        model,
        processor,
        dataset,
        rerank=("none", "galr_mr"),
        progress=False,
        protocol="dedup_image",
        image_keys=list(dataset["filename"]),
    )
    assert format_table(dedup) in capsys.readouterr().out and dedup["none"]["i2t_queries"] == 6
    with pytest.raises(ValueError, match="--image-key-column 'path'"):
        _run_cli([*argv, "--protocol", "dedup_image", "--image-key-column", "path", "--no-progress"])


def test_protocol_prepares_captions_and_merges_images_by_key(model, processor, dataset):
    from rs_retrieval.evaluation.protocols import SKYSCRIPT_PREFIX

    _, text_cache, text_to_image, texts = encode_dataset(
        model, processor, dataset, progress=False, prepare_caption=lambda t: SKYSCRIPT_PREFIX + t
    )
    prefixed = [SKYSCRIPT_PREFIX + caption for row in CAPTIONS for caption in row]
    assert texts == prefixed
    with torch.no_grad():
        expected = torch.cat([model.get_text_features(**processor.text_inputs([text])) for text in prefixed])
    torch.testing.assert_close(text_cache["embeds"], expected)
    results = evaluate_retrieval(model, processor, dataset, rerank=("none",), progress=False, protocol="skyscript")[
        "none"
    ]
    images, _ = encode_dataset(model, processor, dataset, progress=False)[:2]
    sim = nn.functional.normalize(images["embeds"], dim=-1) @ nn.functional.normalize(text_cache["embeds"], dim=-1).t()
    by_hand = retrieval_metrics(
        sim, text_to_image, protocol="skyscript", texts=prefixed, image_keys=list(dataset["filename"])
    )
    assert (
        results == pytest.approx(by_hand) and results["tie_policy"] == "torch_argsort" and results["i2t_queries"] == 6
    )


def test_evaluate_command_names_the_protocol_and_refuses_a_conflicting_tie_order(
    model, processor, dataset, tmp_path, monkeypatch, capsys
):
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    monkeypatch.setitem(
        sys.modules, "rs_retrieval.data", types.SimpleNamespace(load_dataset=lambda *args, **kwargs: dataset)
    )
    argv = [
        "evaluate",
        "--model",
        str(tmp_path / "model"),
        "--dataset",
        "tiny",
        "--device",
        "cpu",
        "--no-progress",
        "--rerank",
        "none",
    ]
    output = tmp_path / "metrics.json"
    assert _run_cli([*argv, "--protocol", "remoteclip", "--output", str(output)]) == 0
    written = json.loads(output.read_text())
    assert written["protocol"] == "remoteclip" and written["results"]["none"]["tie_policy"] == "torch_topk"
    assert "protocol: remoteclip, tie_policy: torch_topk" in capsys.readouterr().out
    with pytest.raises(UsageError, match="orders ties as its source code"):
        _run_cli([*argv, "--protocol", "skyscript", "--tie-policy", "numpy"])
