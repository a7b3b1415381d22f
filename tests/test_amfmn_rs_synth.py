"""Slow: tiny AMFMN and GaLR trained on rs_synth (64 px, 400 train / 100 test images) retrieve far
above chance on its test split (run with `-m slow -s` to see the numbers)."""

import pytest
import torch

import rs_retrieval.models  # noqa: F401
from rs_retrieval.data import flatten_captions, load_dataset
from rs_retrieval.evaluation.engine import evaluate_retrieval
from rs_retrieval.models.amfmn import AMFMNConfig, AMFMNModel, AMFMNProcessor
from rs_retrieval.models.galr import GaLRConfig, GaLRModel, GaLRProcessor
from rs_retrieval.tokenization import build_vocab

pytestmark = pytest.mark.slow

FAMILY = dict(
    word_embed_dim=64, text_hidden_dim=128, embed_dim=64, text_dropout=0.1, backbone_hidden_sizes=[16, 32, 48, 64],
    backbone_depths=[1, 1, 1, 1], backbone_embedding_size=16, image_size=64, train_resize=64, margin=0.2,
)
STEPS, BATCH = 800, 32


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return load_dataset("rs_synth", cache_dir=tmp_path_factory.mktemp("rs_synth"), train_size=400, val_size=10, test_size=100, image_size=64)


def train_and_evaluate(model, processor, train_split, test_split, seed=0):
    captions = flatten_captions(train_split)
    rows = captions[:]
    inputs = dict(processor.image_inputs(rows, train=False))
    inputs.update(processor.text_inputs(rows["caption"]))
    image_ids = torch.tensor(rows["image_index"])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(STEPS):
        batch = torch.randperm(len(image_ids), generator=generator)[:BATCH]
        loss = model(**{k: v[batch] for k, v in inputs.items()}, image_ids=image_ids[batch], return_loss=True).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return evaluate_retrieval(model.eval(), processor, test_split, progress=False)["none"]


def _report(name, metrics, n_img, n_txt):
    chance = {"i2t_R@1": 100 * 5 / n_txt, "t2i_R@1": 100 / n_img, "i2t_R@10": 100 * min(1, 50 / n_txt), "t2i_R@10": 100 * 10 / n_img}
    print(f"\n{name} on rs_synth test ({n_img} images): " + ", ".join(f"{k} {metrics[k]:.1f} (chance {v:.1f})" for k, v in chance.items()) + f", mR {metrics['mR']:.1f}")
    return chance


@pytest.mark.parametrize("method", ["amfmn", "galr"])
def test_tiny_model_on_rs_synth_beats_chance(synth, method):
    torch.manual_seed(0)
    train_split, test_split = synth["train"], synth["test"]
    vocab = build_vocab([c for caps in train_split["captions"] for c in caps], min_count=1)
    if method == "amfmn":
        config = AMFMNConfig(vocab_size=len(vocab) + 1, **FAMILY)
        model, processor = AMFMNModel(config), AMFMNProcessor.from_config(config, vocab)
    else:
        categories, colors = GaLRProcessor.object_vocabulary(list(train_split["objects"]) + list(test_split["objects"]))
        config = GaLRConfig(
            vocab_size=len(vocab) + 1, num_nodes=20, node_dim=len(categories) + len(colors) + 5, gcn_dims=[32, 16, 16],
            mca_hidden=64, mca_heads=4, mca_ff=128, dynamic_fusion_dim=32, train_rotation_degrees=0, **FAMILY,
        )
        model = GaLRModel(config)
        processor = GaLRProcessor.from_config(config, vocab, object_categories=categories, object_colors=colors)
    metrics = train_and_evaluate(model, processor, train_split, test_split)
    chance = _report(method, metrics, len(test_split), 5 * len(test_split))
    assert metrics["i2t_R@10"] > 3 * chance["i2t_R@10"] and metrics["t2i_R@10"] > 3 * chance["t2i_R@10"]
