"""ONNX export: every method's encoders (and AMFMN's / CMPAGL's score heads) run in onnxruntime with
PyTorch's numbers (max |diff| <= 1e-4) at a batch size other than the exported one."""

import json

import numpy as np
import pytest
import torch
from tiny_methods import tiny_methods

from rs_retrieval.export.onnx import export_onnx

ort = pytest.importorskip("onnxruntime")

EXPECTED_GRAPHS = {
    "amfmn": {
        "image_encoder": (["pixel_values"], ["embeds"]),
        "text_encoder": (["input_ids"], ["embeds"]),
        "score_head": (["image_embeds", "text_embeds"], ["scores"]),
    },
    "galr": {
        "image_encoder": (["pixel_values", "local_features", "local_adjacency"], ["embeds"]),
        "text_encoder": (["input_ids"], ["embeds"]),
    },
    "msa": {
        "image_encoder": (["pixel_values"], ["embeds"]),
        "text_encoder": (["input_ids", "attention_mask"], ["embeds"]),
    },
    "cmpagl": {
        "image_encoder": (["pixel_values"], ["embeds", "tokens"]),
        "text_encoder": (["input_ids", "attention_mask"], ["embeds", "tokens"]),
        "score_head": (["image_tokens", "text_tokens", "text_attention_mask"], ["itm_logits"]),
    },
}


@pytest.fixture(scope="module")
def methods():
    return tiny_methods()


@pytest.mark.parametrize("name", list(EXPECTED_GRAPHS))
def test_export_matches_pytorch_with_dynamic_batch(methods, tmp_path, name):
    model, processor, texts, extra = methods[name]
    report = export_onnx(model, tmp_path / "onnx", processor, text_length=8)
    graphs = {g["name"]: g for g in report["graphs"]}
    assert {k: (g["inputs"], g["outputs"]) for k, g in graphs.items()} == EXPECTED_GRAPHS[name]
    assert all(g["max_abs_diff"] <= 1e-4 for g in graphs.values())
    assert json.loads((tmp_path / "onnx" / "onnx_export.json").read_text()) == report
    assert (tmp_path / "onnx" / "processor_config.json").is_file()

    # A real processed batch of 2 images (export used random batches of 2, checked at 3): the
    # end-to-end score from the ONNX graphs equals the model's.
    from tiny_methods import images

    batch = processor(images=images(processor.image_processor.size), text=texts, **extra)
    session = lambda graph: ort.InferenceSession(
        str(tmp_path / "onnx" / f"{graph}.onnx"), providers=["CPUExecutionProvider"]
    )
    image_inputs = {k: batch[k].numpy() for k in EXPECTED_GRAPHS[name]["image_encoder"][0]}
    text_inputs = {k: batch[k].numpy() for k in EXPECTED_GRAPHS[name]["text_encoder"][0]}
    if name in ("amfmn", "galr"):  # the unrolled GRU takes exactly text_length ids
        text_inputs["input_ids"] = np.pad(
            text_inputs["input_ids"], ((0, 0), (0, 8 - text_inputs["input_ids"].shape[1]))
        )
    image_embeds = session("image_encoder").run(["embeds"], image_inputs)[0]
    text_embeds = session("text_encoder").run(["embeds"], text_inputs)[0]
    with torch.no_grad():
        image_cache = model.encode_images(**{k: batch[k] for k in image_inputs})
        text_cache = model.encode_texts(**{k: batch[k] for k in ("input_ids", "attention_mask") if k in batch})
    np.testing.assert_allclose(image_embeds, image_cache["embeds"].numpy(), atol=1e-4)
    np.testing.assert_allclose(text_embeds, text_cache["embeds"].numpy(), atol=1e-4)
    if name == "amfmn":
        scores = session("score_head").run(["scores"], {"image_embeds": image_embeds, "text_embeds": text_embeds})[0]
        np.testing.assert_allclose(
            scores, model.similarity(image_cache["embeds"], text_cache["embeds"]).detach().numpy(), atol=1e-4
        )


def test_chunked_score_head_is_reported_not_exported(methods, tmp_path):
    from rs_retrieval.models.amfmn import AMFMNConfig, AMFMNModel

    model, processor, _, _ = methods["amfmn"]
    chunked = AMFMNModel(AMFMNConfig(**{**model.config.to_dict(), "att_type": "fusion_att"}))
    report = export_onnx(
        chunked, tmp_path / "onnx", text_length=8
    )  # no processor: the image side comes from the config
    assert [g["name"] for g in report["graphs"]] == ["image_encoder", "text_encoder"]
    assert "'fusion_att' gate is scored in chunks" in report["not_exported"]["score_head"]
    assert (
        not (tmp_path / "onnx" / "score_head.onnx").exists()
        and not (tmp_path / "onnx" / "processor_config.json").exists()
    )
    pixels = ort.InferenceSession(
        str(tmp_path / "onnx" / "image_encoder.onnx"), providers=["CPUExecutionProvider"]
    ).get_inputs()[0]
    assert pixels.shape[1:] == [3, chunked.config.image_size, chunked.config.image_size]


def test_export_into_an_existing_folder_needs_overwrite(methods, tmp_path):
    model, processor, _, _ = methods["msa"]
    (tmp_path / "onnx").mkdir()
    with pytest.raises(FileExistsError, match="already exists"):
        export_onnx(model, tmp_path / "onnx", processor)


def test_cli_writes_the_graphs_and_prints_the_parity(methods, tmp_path, capsys):
    from rs_retrieval.cli import main

    model, processor, _, _ = methods["msa"]
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    assert (
        main(
            [
                "export",
                "onnx",
                "--model",
                str(tmp_path / "model"),
                "--out",
                str(tmp_path / "onnx"),
                "--text-length",
                "8",
                "--benchmark-repeats",
                "2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert (
        out.startswith(f"msa -> {tmp_path / 'onnx'} (opset 17")
        and "image_encoder.onnx: pixel_values -> embeds; max |diff|" in out
    )
    assert "onnxruntime" in out and sorted(p.name for p in (tmp_path / "onnx").glob("*.onnx")) == [
        "image_encoder.onnx",
        "text_encoder.onnx",
    ]


def test_parity_failure_is_a_typed_error_naming_the_graph(methods, tmp_path):
    from rs_retrieval.export.onnx import OnnxExportError, export_graph, graph_specs

    model, processor, _, _ = methods["msa"]
    spec = graph_specs(model, processor.image_processor.size, 8)[0]
    with pytest.raises(OnnxExportError, match="image_encoder: onnxruntime differs from PyTorch by"):
        export_graph(
            spec, tmp_path / "image_encoder.onnx", tolerance=-1.0
        )  # no difference passes a negative tolerance
