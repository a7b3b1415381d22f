"""Slow: tiny MSA and CMPAGL trained on rs_synth (64 px, 400 train / 100 test images) retrieve far
above chance on its test split (run with `-m slow -s` to see the numbers)."""

import re

import pytest
import torch
from helpers import report_vs_chance, train_and_evaluate

import rs_retrieval.models  # noqa: F401
from rs_retrieval.data import load_dataset
from rs_retrieval.models.cmpagl import CMPAGLConfig, CMPAGLModel, CMPAGLProcessor
from rs_retrieval.models.common.towers import resnet_config
from rs_retrieval.models.msa import MSAConfig, MSAModel, MSAProcessor

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

STEPS, BATCH, SIZE = 800, 32, 64
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return load_dataset(
        "rs_synth",
        cache_dir=tmp_path_factory.mktemp("rs_synth"),
        train_size=400,
        val_size=10,
        test_size=100,
        image_size=SIZE,
    )


def caption_vocab(split) -> dict[str, int]:
    """Whole-word WordPiece vocabulary of the training captions (BERT's basic split)."""
    words = sorted({w for caps in split["captions"] for c in caps for w in re.findall(r"\w+|[^\w\s]", c.lower())})
    return {token: index for index, token in enumerate(SPECIAL + words)}


def text_config(vocab, length):
    return dict(
        vocab_size=len(vocab),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=length,
    )


def test_tiny_msa_on_rs_synth_beats_chance(synth):
    torch.manual_seed(0)
    vocab = caption_vocab(synth["train"])
    vision = resnet_config("resnet50", hidden_sizes=[32, 32, 64, 64], depths=[1, 1, 1, 1], embedding_size=16)
    config = MSAConfig(
        text_config=text_config(vocab, 32),
        vision_config=vision,
        hidden_size=64,
        mscmat_heads=4,
        image_size=SIZE,
        max_text_len=31,
    )
    processor = MSAProcessor.from_config(config, vocab)
    model = MSAModel(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.0)
    metrics = train_and_evaluate(model, processor, synth["train"], synth["test"], optimizer, STEPS, BATCH)
    chance = report_vs_chance("MSA", metrics, len(synth["test"]))
    assert metrics["i2t_R@10"] > 3 * chance["i2t_R@10"] and metrics["t2i_R@10"] > 3 * chance["t2i_R@10"]


def test_tiny_cmpagl_on_rs_synth_beats_chance(synth):
    torch.manual_seed(0)
    vocab = caption_vocab(synth["train"])
    vision = dict(
        image_size=SIZE,
        patch_size=4,
        embed_dim=32,
        depths=[1, 1, 1],
        num_heads=[2, 4, 4],
        window_size=4,
        drop_path_rate=0.0,
    )
    config = CMPAGLConfig(
        text_config=text_config(vocab, 32),
        vision_config=vision,
        fusion_layers=1,
        embed_dim=64,
        gswin_stages=(0, 1),
        itm_k_test=16,
        max_text_len=32,
    )
    processor = CMPAGLProcessor.from_config(config, vocab)
    model = CMPAGLModel(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.0)
    metrics = train_and_evaluate(model, processor, synth["train"], synth["test"], optimizer, 500, BATCH)
    chance = report_vs_chance("CMPAGL (top-16 fusion re-rank)", metrics, len(synth["test"]))
    assert metrics["i2t_R@10"] > 3 * chance["i2t_R@10"] and metrics["t2i_R@10"] > 3 * chance["t2i_R@10"]
