"""transformers pipelines on saved retrieval models: image/text feature extraction for every
method, zero-shot image classification for the pixel-only methods."""

import pytest
import torch
from tiny_methods import images, tiny_methods
from transformers import pipeline

LABELS = ["ship", "green field", "road"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipelines")
    methods = tiny_methods()
    for name, (model, processor, _, _) in methods.items():
        model.save_pretrained(root / name)
        processor.save_pretrained(root / name)
    return root, methods


@pytest.mark.parametrize("name", ["amfmn", "msa", "cmpagl"])
def test_feature_extraction_pipelines_return_the_model_embeddings(saved, name):
    root, methods = saved
    model, processor, texts, _ = methods[name]
    pictures = images(processor.image_processor.size)
    with torch.no_grad():
        image_embeds = model.get_image_features(**processor(images=pictures))
        text_embeds = model.get_text_features(
            **processor.tokenizer(texts, padding=True, return_tensors="pt", return_token_type_ids=False)
        )
    extracted = pipeline("image-feature-extraction", model=str(root / name))(pictures)
    assert torch.allclose(torch.tensor(extracted).squeeze(1), image_embeds, atol=1e-6)
    extracted = pipeline("feature-extraction", model=str(root / name))(texts)
    assert torch.allclose(torch.tensor(extracted).squeeze(1), text_embeds, atol=1e-6)


@pytest.mark.parametrize("name", ["amfmn", "msa", "cmpagl"])
def test_zero_shot_pipeline_ranks_labels_by_the_retrieval_score(saved, name):
    root, methods = saved
    model, processor, _, _ = methods[name]
    picture = images(processor.image_processor.size)[0]
    prompts = [f"This is a photo of {label}." for label in LABELS]
    with torch.no_grad():
        text = processor.tokenizer(prompts, padding=True, return_tensors="pt", return_token_type_ids=False)
        logits = model(**processor(images=[picture]), **text).logits_per_image[0]
    expected = sorted(zip(logits.softmax(-1).tolist(), LABELS), reverse=True)
    result = pipeline("zero-shot-image-classification", model=str(root / name))(picture, candidate_labels=LABELS)
    assert [r["label"] for r in result] == [label for _, label in expected]
    assert [r["score"] for r in result] == pytest.approx([score for score, _ in expected], abs=1e-6)


def test_galr_text_pipeline_works_and_image_pipelines_name_the_missing_graph(saved):
    root, methods = saved
    model, processor, texts, _ = methods["galr"]
    with torch.no_grad():
        text_embeds = model.get_text_features(**processor.text_inputs(texts[:1]))
    extracted = pipeline("feature-extraction", model=str(root / "galr"))(texts[0])
    assert torch.allclose(torch.tensor(extracted), text_embeds, atol=1e-6)
    with pytest.raises(ValueError, match="GaLR needs local_features"):
        pipeline("image-feature-extraction", model=str(root / "galr"))(images(processor.image_processor.size)[0])
    with pytest.raises(ValueError, match="AutoModelForZeroShotImageClassification"):
        pipeline("zero-shot-image-classification", model=str(root / "galr"))
