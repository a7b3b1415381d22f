"""Folders saved by an earlier version of the package still load and score identically."""

import json
from pathlib import Path

import pytest
import torch
from tiny_methods import images
from transformers import AutoModel, AutoProcessor

from rs_retrieval import get_method

SAVED = Path(__file__).parents[1] / "fixtures" / "saved_main"


@pytest.mark.parametrize("method", ["amfmn", "galr", "msa", "cmpagl"])
def test_folder_saved_before_the_registry_loads_with_identical_logits(method):
    folder = SAVED / method
    expected = json.loads((folder / "expected.json").read_text())
    model = AutoModel.from_pretrained(folder).eval()
    processor = AutoProcessor.from_pretrained(folder)
    assert (type(model), type(processor)) == (get_method(method).model_class, get_method(method).processor_class)
    inputs = processor(images=images(expected["image_side"] - 8), text=expected["texts"], **expected["extra"])
    with torch.no_grad():
        logits = model(**inputs).logits_per_image
    torch.testing.assert_close(logits, torch.tensor(expected["logits_per_image"]), rtol=1e-5, atol=1e-6)
