"""Loading a model refuses weights that do not fit its config and a vocabulary it was not trained with."""

import json
import logging
import re
import shutil

import pytest
import torch
from PIL import Image
from tiny_methods import TINY_CONFIGS
from transformers import AutoModel

import rs_retrieval.models  # noqa: F401  (registers the Auto classes)
from rs_retrieval.errors import RSRetrievalError
from rs_retrieval.models.amfmn import AMFMNConfig, AMFMNModel, AMFMNProcessor
from rs_retrieval.models.common.base import WeightMismatchError
from rs_retrieval.pretrained import (
    ModelNotFoundError,
    VocabularyMismatchError,
    load_model_and_processor,
    vocabulary_fingerprint,
)
from rs_retrieval.training.model_setup import save_model_dir

TINY = {**TINY_CONFIGS["amfmn"], "train_resize": 70}
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
    with pytest.raises(
        WeightMismatchError,
        match=r"do not fit its config \(AMFMNModel\): \d+ missing keys \(e\.g\. .*layers\.1.*allow_weight_mismatch=True",
    ) as caught:
        AutoModel.from_pretrained(tmp_path / "model")
    assert isinstance(caught.value, RSRetrievalError)
    with caplog.at_level(logging.WARNING, logger="rs_retrieval.models.common.base"):
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


@pytest.fixture(scope="module")
def method_folders(tmp_path_factory):
    """A saved tiny model + processor of each of the package's methods."""
    from tiny_methods import tiny_case

    root = tmp_path_factory.mktemp("methods")
    for method in ("amfmn", "galr", "msa", "cmpagl"):
        case = tiny_case(method)
        save_model_dir(case.model(), case.processor(), root / method)
    return root


def with_processor_of(root, model_method, processor_method):
    """The model folder of one method with the processor files of another copied in."""
    folder = root / f"{model_method}+{processor_method}"
    if not folder.exists():
        shutil.copytree(root / model_method, folder)
        for path in (root / processor_method).iterdir():
            if path.name not in ("config.json", "model.safetensors", "README.md"):
                shutil.copyfile(path, folder / path.name)
    return folder


@pytest.mark.parametrize(
    "model_method, processor_method, needed",
    [("galr", "amfmn", "GaLRProcessor"), ("amfmn", "galr", "AMFMNProcessor"), ("cmpagl", "msa", "CMPAGLProcessor")],
)
def test_a_processor_of_another_method_is_refused_everywhere(
    method_folders, model_method, processor_method, needed, capsys
):
    from transformers import AutoProcessor

    from rs_retrieval.cli import main
    from rs_retrieval.pretrained import ProcessorMismatchError, check_processor

    folder = with_processor_of(method_folders, model_method, processor_method)
    found = type(AutoProcessor.from_pretrained(method_folders / processor_method)).__name__
    expected = (
        f"is a model of method {model_method!r}, which needs a {needed}, but "
        f"the processor is a {found}: load the processor saved with the model"
    )
    with pytest.raises(ProcessorMismatchError, match=re.escape(expected)):
        load_model_and_processor(folder, device="cpu")
    with pytest.raises(ProcessorMismatchError, match=re.escape(expected)):
        AutoProcessor.from_pretrained(folder)  # the processor is checked against the config.json beside it
    model = AutoModel.from_pretrained(method_folders / model_method)
    with pytest.raises(ProcessorMismatchError, match=re.escape(expected)):
        check_processor(model, AutoProcessor.from_pretrained(method_folders / processor_method))
    images = method_folders / "images"
    images.mkdir(exist_ok=True)
    Image.new("RGB", (40, 40)).save(images / "a.png")
    assert main(["search", "ship", "--images", str(images), "--model", str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and expected in err[-1]


def test_auto_classes_loaded_apart_from_an_edited_folder_are_refused(tmp_path):
    from transformers import AutoProcessor

    saved_model(tmp_path / "model")
    vocab_path = tmp_path / "model" / "vocab.json"
    vocab = json.loads(vocab_path.read_text())
    table = vocab["word2idx"]
    table["ship"], table["port"] = table["port"], table["ship"]
    vocab["idx2word"] = {str(i): word for word, i in table.items()}
    vocab_path.write_text(json.dumps(vocab))
    AutoModel.from_pretrained(tmp_path / "model")  # the weights alone are fine
    with pytest.raises(VocabularyMismatchError, match=r"is not the one the model in .* was trained with"):
        AutoProcessor.from_pretrained(tmp_path / "model")


def test_a_processor_of_another_input_size_is_refused(tmp_path):
    from rs_retrieval.pretrained import ProcessorMismatchError

    saved_model(tmp_path / "model")
    path = tmp_path / "model" / "processor_config.json"
    saved = json.loads(path.read_text())
    saved["image_processor"]["size"] = 32
    path.write_text(json.dumps(saved))
    with pytest.raises(
        ProcessorMismatchError,
        match=(
            r"the processor makes 32 px images but the model in .* "
            r"reads 64 px: load the processor saved with the model"
        ),
    ):
        load_model_and_processor(tmp_path / "model", device="cpu")


def test_a_recipes_saved_processor_must_fit_the_recipes_model(tmp_path):
    from rs_retrieval.models.galr import GaLRConfig
    from rs_retrieval.pretrained import ProcessorMismatchError
    from rs_retrieval.training.recipe import ProcessorSpec
    from rs_retrieval.training.vocab import build_processor

    saved_model(tmp_path / "model")
    (tmp_path / "model" / "config.json").unlink()  # a processor folder on its own
    spec = ProcessorSpec(path=str(tmp_path / "model"))
    assert build_processor(spec, AMFMNConfig(**TINY)).image_processor.size == 64
    with pytest.raises(
        ProcessorMismatchError,
        match=r"the processor makes 64 px images but the recipe's model \(processor.path .*\) reads 128 px",
    ):
        build_processor(spec, AMFMNConfig(**{**TINY, "image_size": 128, "train_resize": 140}))
    with pytest.raises(
        ProcessorMismatchError,
        match=r"is a model of method 'galr', which needs a GaLRProcessor, but the processor is a AMFMNProcessor",
    ):
        build_processor(spec, GaLRConfig(**TINY, mca_hidden=6, mca_heads=2))
