"""Adding a method is one module plus one `register_method` call: a toy dual encoder defined in
this file goes through train -> evaluate -> save -> Auto load -> search -> convert and the model
contract, and its record (paper, summary, reconstruction, zero-shot support) reaches its model
card, the app's About tab and transformers' zero-shot pipeline, without any change to package code."""

from __future__ import annotations

import re

import pytest
import torch
import yaml
from helpers import fresh_accelerate_state  # noqa: F401  (autouse fixture)
from model_contract import RetrievalModelTesterMixin
from PIL import Image
from tiny_methods import WORDS, TinyCase
from torch import nn
from transformers import AutoModel, AutoProcessor, PretrainedConfig, pipeline

from rs_retrieval import evaluate_retrieval, get_method, list_methods, load_dataset, register_method, search_images
from rs_retrieval.app.about import model_summary
from rs_retrieval.cards import render_model_card
from rs_retrieval.convert import convert_checkpoint
from rs_retrieval.convert.common import load_converted, save_pretrained_atomic
from rs_retrieval.models.amfmn_family.word_tokenizer_family import WORD
from rs_retrieval.models.common.base import RetrievalPreTrainedModel
from rs_retrieval.models.common.losses import hinge_triplet_loss
from rs_retrieval.models.common.processing import RetrievalProcessor
from rs_retrieval.models.records import Paper, bibtex_entry
from rs_retrieval.training import Trainer, recipe_from_dict
from rs_retrieval.training.run_log import read_log

SIDE = 32
SYNTH = {"train_size": 30, "val_size": 10, "test_size": 10}


class ToyDualConfig(PretrainedConfig):
    model_type = "rs_toy_dual"

    def __init__(
        self, vocab_size: int = 12, embed_dim: int = 16, image_size: int = SIDE, margin: float = 0.2, **kwargs
    ):
        self.vocab_size, self.embed_dim, self.image_size, self.margin = vocab_size, embed_dim, image_size, margin
        super().__init__(**kwargs)


class ToyDualModel(RetrievalPreTrainedModel):
    """8 x 8 patch embedding averaged over the image; mean of word embeddings; cosine; hinge loss."""

    config_class = ToyDualConfig
    base_model_prefix = "rs_toy_dual"

    def __init__(self, config: ToyDualConfig):
        super().__init__(config)
        self.patches = nn.Conv2d(3, config.embed_dim, kernel_size=8, stride=8)
        self.words = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=0)
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, (nn.Conv2d, nn.Embedding)):
            module.reset_parameters()

    def get_image_features(self, pixel_values):
        return self.patches(pixel_values).mean(dim=(2, 3))

    def get_text_features(self, input_ids, attention_mask=None):
        words = self.words(input_ids)
        mask = (input_ids != 0).unsqueeze(-1).to(words.dtype)
        return (words * mask).sum(1) / mask.sum(1).clamp_min(1.0)

    def compute_loss(self, image_outputs, text_outputs, logits_per_image, image_ids=None):
        loss = hinge_triplet_loss(logits_per_image, self.config.margin, image_ids=image_ids)
        return loss, {"triplet": loss.detach()}


class ToyDualProcessor(RetrievalProcessor):
    tokenizer_family = WORD


def convert_toy(path, method, vocab_path=None, out_dir=None, overwrite=False):
    """The method's "official checkpoint" converter: a bare state dict file + a vocab.json."""
    state = torch.load(path, weights_only=True)
    config = ToyDualConfig(vocab_size=state["words.weight"].shape[0], embed_dim=state["words.weight"].shape[1])
    model = ToyDualModel(config)
    load_converted(model, state, str(path))
    return save_pretrained_atomic(
        out_dir, model, ToyDualProcessor.from_config(config, vocab_path), overwrite=overwrite
    )


TOY_PAPER = Paper(
    'A. Author, "A Toy Dual Encoder for Remote Sensing", Test Proceedings, 2026',
    bibtex_entry(
        "author2026toy",
        "inproceedings",
        author="Author, A.",
        title="A Toy Dual Encoder for Remote Sensing",
        booktitle="Test Proceedings",
        year="2026",
    ),
    code="nowhere/toy (MIT)",
)

register_method(
    ToyDualConfig,
    ToyDualModel,
    ToyDualProcessor,
    converter=convert_toy,
    title="Toy dual encoder",
    paper=TOY_PAPER,
    summary="Patch means and word means, compared by cosine.",
    zero_shot=True,
    reconstructed=True,
    reconstruction_note="Only the abstract was read.",
)


class TestToyDualContract(RetrievalModelTesterMixin):
    bundles_remote_code = False

    @pytest.fixture
    def case(self):
        return TinyCase(ToyDualConfig(), WORDS, ["ship port", "green field road"])


def test_toy_method_trains_evaluates_saves_loads_searches_and_converts(tmp_path):
    assert "rs_toy_dual" in list_methods() and get_method("rs_toy_dual").tokenizer_family is WORD
    recipe = recipe_from_dict(
        {
            "model": {"type": "rs_toy_dual", "embed_dim": 16, "image_size": SIDE},
            "processor": {"vocab": "train_captions"},
            "data": {"name": "rs_synth", "cache_dir": str(tmp_path / "synth"), "options": SYNTH},
            "training": {"epochs": 3, "batch_size": 30, "eval_batch_size": 50, "lr": 3e-2, "log_every_steps": 1},
        }
    )
    run = Trainer(recipe, run_dir=tmp_path / "run").train()
    losses = [r["loss"] for r in read_log(run / "log.jsonl") if r["kind"] == "train"]
    assert len(losses) == 15 and losses[-1] < losses[0]

    model, processor = AutoModel.from_pretrained(run / "model").eval(), AutoProcessor.from_pretrained(run / "model")
    assert (type(model), type(processor)) == (ToyDualModel, ToyDualProcessor)
    assert (
        model.config.vocab_size == processor.tokenizer.vocab_size
    )  # the vocabulary built from the captions sized the model
    test = load_dataset("rs_synth", split="test", cache_dir=tmp_path / "synth", image_size=SIDE, **SYNTH)
    assert test[0]["image"].size == (SIDE, SIDE)  # rs_synth was generated at the model's image size
    metrics = evaluate_retrieval(model, processor, test, progress=False)["none"]
    assert metrics["i2t_queries"] == 10 and metrics["t2i_queries"] == 50 and 0 <= metrics["mR"] <= 100

    folder = tmp_path / "images"
    folder.mkdir()
    for row in test:
        row["image"].save(folder / row["filename"])
    query = test[3]["captions"][0]
    results = search_images(query, folder, model, processor, top_k=None, cache_dir=tmp_path / "cache")
    with torch.no_grad():
        images = model.encode_images(**processor(images=[row["image"] for row in test]))
        expected = model.score(images, model.encode_texts(**processor(text=[query]))).squeeze(1)
    by_name = {path.name: score for path, score in results}
    assert [path.name for path, _ in results] == [
        test[int(i)]["filename"] for i in expected.argsort(descending=True, stable=True)
    ]
    assert [by_name[row["filename"]] for row in test] == pytest.approx(expected.tolist(), abs=1e-5)

    torch.save(model.state_dict(), tmp_path / "official.pth")
    converted = convert_checkpoint(
        tmp_path / "official.pth",
        "rs_toy_dual",
        vocab_path=run / "model" / "vocab.json",
        out_dir=tmp_path / "converted",
    )
    reloaded = AutoModel.from_pretrained(converted).eval()
    with torch.no_grad():
        assert torch.equal(
            reloaded.encode_images(**processor(images=[test[0]["image"]]))["embeds"], images["embeds"][:1]
        )


def test_toy_method_record_reaches_its_model_card_the_about_tab_and_the_zero_shot_pipeline(tmp_path):
    method = get_method("rs_toy_dual")
    assert method.paper.bibtex.splitlines() == [
        "@inproceedings{author2026toy,",
        "  author = {Author, A.},",
        "  title = {A Toy Dual Encoder for Remote Sensing},",
        "  booktitle = {Test Proceedings},",
        "  year = {2026},",
        "}",
    ]
    case = TinyCase(ToyDualConfig(), WORDS, ["ship port", "green field road"])
    model, processor = case.model(), case.processor()
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)

    card = render_model_card(tmp_path)
    metadata = yaml.safe_load(re.match(r"^---\n(.*?)\n---\n", card, flags=re.DOTALL).group(1))
    assert metadata["pipeline_tag"] == "zero-shot-image-classification" and "reconstruction" in metadata["tags"]
    assert "\n# Toy dual encoder trained on an unspecified dataset (reconstruction)\n" in card
    assert "**This model is a reconstruction, not the authors' model.**" in card
    assert (
        "Patch means and word means, compared by cosine.\n\nMethod "
        f"paper: {TOY_PAPER.citation}. Official code: nowhere/toy (MIT)." in card
    )
    assert f"- Method: {TOY_PAPER.citation}" in card
    about = model_summary(model, processor, tmp_path)
    assert about.startswith("## Toy dual encoder\n\nPatch means and word means, compared by cosine.\n")
    assert "**A reconstruction, not the authors' model.** Only the abstract was read." in about
    assert f"Paper: {TOY_PAPER.citation}." in about

    labels = ["ship", "green field", "road"]
    picture = Image.new("RGB", (SIDE, SIDE), (40, 160, 30))
    with torch.no_grad():
        text = processor.tokenizer(
            [f"This is a photo of {label}." for label in labels], padding=True, return_tensors="pt"
        )
        logits = model(
            **processor(images=[picture]), input_ids=text["input_ids"], attention_mask=text["attention_mask"]
        ).logits_per_image[0]
    expected = sorted(zip(logits.softmax(-1).tolist(), labels), reverse=True)
    result = pipeline("zero-shot-image-classification", model=str(tmp_path))(picture, candidate_labels=labels)
    assert [r["label"] for r in result] == [label for _, label in expected]
    assert [r["score"] for r in result] == pytest.approx([score for score, _ in expected], abs=1e-6)
