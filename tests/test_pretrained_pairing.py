"""Loading a model refuses weights that do not fit its config and a vocabulary it was not trained with."""

import json
import logging

import pytest
import torch
from transformers import AutoModel

import rs_retrieval.models  # noqa: F401  (registers the Auto classes)
from rs_retrieval.errors import RSRetrievalError
from rs_retrieval.models.amfmn import AMFMNConfig, AMFMNModel, AMFMNProcessor
from rs_retrieval.models.base import WeightMismatchError
from rs_retrieval.pretrained import ModelNotFoundError, VocabularyMismatchError, load_model_and_processor, vocabulary_fingerprint
from rs_retrieval.training.trainer import save_model_dir

TINY = dict(
    vocab_size=12, word_embed_dim=8, text_hidden_dim=10, embed_dim=6, backbone_hidden_sizes=[4, 4, 8, 8],
    backbone_depths=[1, 1, 1, 1], backbone_embedding_size=4, image_size=64, train_resize=70,
)
WORDS = "ship port green tree field road river building car plane".split()


def saved_model(folder, words=WORDS):
    torch.manual_seed(0)
    model = AMFMNModel(AMFMNConfig(**TINY)).eval()
    processor = AMFMNProcessor.from_config(model.config, {w: i for i, w in enumerate(words, start=1)} | {"<unk>": 11})
    save_model_dir(model, processor, folder)
    return model, processor


def test_saved_folder_records_the_vocabulary_and_loads_as_a_pair(tmp_path):
    model, processor = saved_model(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["vocab_fingerprint"] == vocabulary_fingerprint(processor.tokenizer)
    loaded, loaded_processor = load_model_and_processor(tmp_path / "model", device="cpu")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))


def test_missing_weights_are_an_error_unless_allowed(tmp_path, caplog):
    saved_model(tmp_path / "model")
    config_path = tmp_path / "model" / "config.json"
    config = json.loads(config_path.read_text())
    config["backbone_depths"] = [2, 1, 1, 1]  # a layer the weights do not have
    config_path.write_text(json.dumps(config))
    with pytest.raises(WeightMismatchError, match=r"do not fit its config \(AMFMNModel\): \d+ missing keys \(e\.g\. .*layers\.1.*allow_weight_mismatch=True") as caught:
        AutoModel.from_pretrained(tmp_path / "model")
    assert isinstance(caught.value, RSRetrievalError)
    with caplog.at_level(logging.WARNING, logger="rs_retrieval.models.base"):
        model, _ = load_model_and_processor(tmp_path / "model", device="cpu", allow_weight_mismatch=True)
    assert "RANDOM" in caplog.text and model.config.backbone_depths == [2, 1, 1, 1]


def test_a_reordered_vocabulary_of_the_same_size_is_refused(tmp_path):
    saved_model(tmp_path / "model")
    saved_model(tmp_path / "other", words=list(reversed(WORDS)))
    for name in ("vocab.json", "tokenizer_config.json"):
        if (tmp_path / "other" / name).is_file():
            (tmp_path / "model" / name).write_bytes((tmp_path / "other" / name).read_bytes())
    with pytest.raises(VocabularyMismatchError, match="is not the one .*model was trained with"):
        load_model_and_processor(tmp_path / "model", device="cpu")


def test_a_mistyped_model_folder_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    for typo in ("runs/mdoel", str(tmp_path / "runs" / "x" / "model"), "./model"):
        with pytest.raises(ModelNotFoundError, match=f"model folder {typo} does not exist"):
            load_model_and_processor(typo)
