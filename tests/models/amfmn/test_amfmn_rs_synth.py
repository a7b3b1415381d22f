"""Slow: tiny AMFMN and GaLR trained on rs_synth (64 px, 400 train / 100 test images) retrieve far
above chance on its test split (run with `-m slow -s` to see the numbers)."""

import pytest
import torch
from helpers import report_vs_chance, train_and_evaluate

import rs_retrieval.models  # noqa: F401
from rs_retrieval.data import load_dataset
from rs_retrieval.models.amfmn import AMFMNConfig, AMFMNModel, AMFMNProcessor
from rs_retrieval.models.amfmn_family.tokenization_word import build_vocab
from rs_retrieval.models.galr import GaLRConfig, GaLRModel, GaLRProcessor

pytestmark = pytest.mark.slow

FAMILY = dict(
    word_embed_dim=64,
    text_hidden_dim=128,
    embed_dim=64,
    text_dropout=0.1,
    backbone_hidden_sizes=[16, 32, 48, 64],
    backbone_depths=[1, 1, 1, 1],
    backbone_embedding_size=16,
    image_size=64,
    margin=0.2,
)
#: No training resize or rotation: the random crop of a 64 px image at 64 px is the image.
NO_AUGMENTATION = dict(train_resize=64, train_rotation_degrees=0)
STEPS, BATCH = 800, 32


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return load_dataset(
        "rs_synth",
        cache_dir=tmp_path_factory.mktemp("rs_synth"),
        train_size=400,
        val_size=10,
        test_size=100,
        image_size=64,
    )


@pytest.mark.parametrize("method", ["amfmn", "galr"])
def test_tiny_model_on_rs_synth_beats_chance(synth, method):
    torch.manual_seed(0)
    train_split, test_split = synth["train"], synth["test"]
    vocab = build_vocab([c for caps in train_split["captions"] for c in caps], min_count=1)
    if method == "amfmn":
        config = AMFMNConfig(vocab_size=len(vocab) + 1, **FAMILY)
        model, processor = AMFMNModel(config), AMFMNProcessor.from_config(config, vocab, **NO_AUGMENTATION)
    else:
        categories, colors = GaLRProcessor.object_vocabulary(
            list(train_split["objects"]) + list(test_split["objects"])
        )
        config = GaLRConfig(
            vocab_size=len(vocab) + 1,
            num_nodes=20,
            node_dim=len(categories) + len(colors) + 5,
            gcn_dims=[32, 16, 16],
            mca_hidden=64,
            mca_heads=4,
            mca_ff=128,
            dynamic_fusion_dim=32,
            **FAMILY,
        )
        model = GaLRModel(config)
        processor = GaLRProcessor.from_config(
            config, vocab, object_categories=categories, object_colors=colors, **NO_AUGMENTATION
        )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    metrics = train_and_evaluate(model, processor, train_split, test_split, optimizer, STEPS, BATCH)
    chance = report_vs_chance(method, metrics, len(test_split))
    assert metrics["i2t_R@10"] > 3 * chance["i2t_R@10"] and metrics["t2i_R@10"] > 3 * chance["t2i_R@10"]
