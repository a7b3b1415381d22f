"""Zero-shot classification: packaged class sets and templates, user files, template combination
rules, and the classifier against a hand-built CLIP classifier (plain and pair-dependent scorers)."""

import json

import pytest
import torch
import torch.nn.functional as F
from clip_helpers import random_images, tiny_clip
from transformers import CLIPModel

from rs_retrieval.errors import RSRetrievalError
from rs_retrieval.models.clip import CLIPRetrievalModel
from rs_retrieval.zeroshot import (
    ClassSetError,
    ZeroShotClassifier,
    combine_templates,
    list_class_sets,
    list_template_sets,
    load_class_set,
    load_templates,
    top_k_from_proba,
)

EXPECTED_SIZES = {
    "aid": 30,
    "resisc45": 45,
    "ucm": 21,
    "eurosat": 10,
    "whu_rs19": 19,
    "rsscn7": 7,
    "patternnet": 38,
    "optimal31": 31,
    "rs_synth": 8,
}


def test_packaged_class_sets_have_the_published_sizes_and_label_order():
    assert set(EXPECTED_SIZES) <= set(list_class_sets())
    for name, size in EXPECTED_SIZES.items():
        class_set = load_class_set(name)
        assert len(class_set.classes) == len(class_set.folders) == size, name
        assert class_set.templates and all(t.count("{}") == 1 for t in class_set.templates)
    aid = load_class_set("aid")
    assert list(aid.folders) == sorted(aid.folders)  # ImageFolder order
    assert (aid.folders[1], aid.classes[1]) == ("BareLand", "bare land")
    assert aid.with_variant("georsclip").classes[1] == "bareland"
    assert load_class_set("resisc45").classes[2] == "baseball diamond"
    assert load_class_set("eurosat", variant="clip_benchmark").classes[2] == "brushland or shrubland"
    assert load_class_set("whu_rs19").folders[-2:] == ("footballField", "railwayStation")
    from rs_retrieval.data.synth import SYNTH_SCENES

    assert load_class_set("rs_synth").folders == SYNTH_SCENES


def test_template_sets():
    georsclip = load_templates("georsclip_105")
    assert len(georsclip) == len(set(georsclip)) == 105
    assert (
        georsclip[0] == "a remote sensing image of many {}."
        and georsclip[35] == "an aerial image of many {}."
        and georsclip[70] == "a satellite image of many {}."
    )
    assert load_templates("rs_transclip_106")[-1] == "a satellite photo of a {}."
    assert {
        "skyscript_2",
        "clip_benchmark_eurosat",
        "clip_benchmark_resisc45",
        "sclip_1",
        "single_satellite_photo",
    } <= set(list_template_sets())
    aid = load_class_set("aid", templates="sclip_1")
    assert aid.prompts()[0] == ["an aerial photograph of airport."]
    assert load_class_set("aid", templates=["{} from above"]).prompts()[3] == ["beach from above"]


def test_user_class_files(tmp_path):
    text = tmp_path / "mine.txt"
    text.write_text("# my classes\nsolar farm\n\nwind farm\n", encoding="utf-8")
    class_set = load_class_set(text)
    assert (class_set.name, class_set.classes, class_set.folders) == (
        "mine",
        ("solar farm", "wind farm"),
        ("solar farm", "wind farm"),
    )
    assert class_set.templates == load_templates("single_satellite_photo")
    spec = tmp_path / "mine.json"
    spec.write_text(json.dumps({"classes": ["a", "b"], "templates": ["{} seen from above"]}), encoding="utf-8")
    assert load_class_set(spec).prompts() == [["a seen from above"], ["b seen from above"]]
    spec.write_text(json.dumps(["x", "y"]), encoding="utf-8")
    assert load_class_set(spec).classes == ("x", "y")


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "no class names"),
        ("a\na\n", "repeats"),
        ('{"classes": ["a"], "templates": ["no slot"]}', "exactly one"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_class_files_raise_typed_errors(tmp_path, content, message):
    path = tmp_path / ("bad.json" if content.startswith(("{", "[")) else "bad.txt")
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ClassSetError, match=message):
        load_class_set(path)


def test_unknown_names_raise_typed_errors():
    with pytest.raises(RSRetrievalError, match="neither a packaged class set"):
        load_class_set("no_such_set")
    with pytest.raises(ClassSetError, match="unknown template set"):
        load_class_set("aid", templates="no_such_templates")
    with pytest.raises(ClassSetError, match="no variant"):
        load_class_set("aid", variant="nope")


def test_combine_templates_rules_by_hand():
    embeds = torch.tensor([[[3.0, 0.0], [0.0, 1.0]]])  # one class, two templates of norms 3 and 1
    # normalise first: mean of (1,0) and (0,1) -> (1,1)/sqrt(2)
    assert torch.allclose(combine_templates(embeds, "normalize_then_mean"), torch.tensor([[1.0, 1.0]]) / 2**0.5)
    # GeoRSCLIP: mean of raw (1.5, 0.5) -> normalised; the longer template dominates
    assert torch.allclose(combine_templates(embeds, "mean_then_normalize"), torch.tensor([[3.0, 1.0]]) / 10**0.5)
    with pytest.raises(ValueError, match="rule"):
        combine_templates(embeds, "median")


def manual_clip_proba(model, processor, class_set, images):
    texts = [t.format(c) for c in class_set.classes for t in class_set.templates]
    inputs = processor(text=texts, images=images, return_tensors="pt", padding=True)
    with torch.no_grad():
        image = F.normalize(model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output, dim=-1)
        text = model.get_text_features(
            input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]
        ).pooler_output
    text = F.normalize(
        F.normalize(text, dim=-1).view(len(class_set.classes), len(class_set.templates), -1).mean(1), dim=-1
    )
    return (model.logit_scale.exp() * image @ text.t()).softmax(-1)


def test_classifier_matches_hand_built_clip_classifier_and_caches_text():
    model, processor = tiny_clip(seed=3)
    plain = CLIPModel(model.config).eval()
    plain.load_state_dict(model.state_dict())
    images = random_images(4)
    class_set = load_class_set("rs_synth")
    classifier = ZeroShotClassifier(plain, processor, "rs_synth")  # plain transformers model + processor
    calls = []
    encode = classifier.model.encode_texts
    classifier.model.encode_texts = lambda **kw: calls.append(len(kw["input_ids"])) or encode(**kw)
    proba = classifier.predict_proba(images)
    assert proba.shape == (4, 8)
    assert torch.allclose(proba, manual_clip_proba(plain, processor, class_set, images), atol=1e-6)
    assert torch.allclose(proba.sum(-1), torch.ones(4))
    classifier.predict_proba(random_images(2, seed=1))
    assert sum(calls) == 8 * len(class_set.templates)  # prompts encoded once, on first use
    best = classifier.top_k(images, k=3)
    assert [len(row) for row in best] == [3] * 4
    assert (
        [row[0][0] for row in best]
        == classifier.predict(images)
        == [class_set.classes[i] for i in proba.argmax(-1).tolist()]
    )


def test_georsclip_rule_changes_the_class_embeddings():
    model, processor = tiny_clip(seed=4)
    standard = ZeroShotClassifier(model, processor, "rs_synth").text_classifier()["embeds"]
    georsclip = ZeroShotClassifier(model, processor, "rs_synth", rule="mean_then_normalize").text_classifier()[
        "embeds"
    ]
    assert standard.shape == georsclip.shape == (8, 16)
    assert torch.allclose(standard.norm(dim=-1), torch.ones(8)) and not torch.allclose(standard, georsclip)


class PairDependentCLIP(CLIPRetrievalModel):
    """A pair-dependent scorer (like AMFMN's gate): templates must be averaged in score space."""

    def score(self, image_cache, text_cache):
        return torch.tanh(3 * super().score(image_cache, text_cache))


def test_pair_dependent_scorer_averages_scores_over_templates():
    model, processor = tiny_clip(seed=5, model_class=PairDependentCLIP)
    images = random_images(3)
    class_set = load_class_set("rs_synth")
    classifier = ZeroShotClassifier(model, processor, class_set)
    assert set(classifier.text_classifier()) == {"embeds"} and len(classifier.text_classifier()["embeds"]) == 8 * 3
    texts = [t.format(c) for c in class_set.classes for t in class_set.templates]
    with torch.no_grad():
        scores = model.score(
            model.encode_images(**processor_images(processor, images)),
            model.encode_texts(**processor_texts(processor, texts)),
        )
    expected = (model.logit_scale.exp() * scores.view(3, 8, 3).mean(-1)).softmax(-1)
    assert torch.allclose(classifier.predict_proba(images), expected, atol=1e-6)


def processor_images(processor, images):
    return {"pixel_values": processor.image_processor(images, return_tensors="pt")["pixel_values"]}


def processor_texts(processor, texts):
    encoded = processor.tokenizer(texts, padding=True, return_tensors="pt")
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}


def test_top_k_from_proba_and_bad_inputs():
    proba = torch.tensor([[0.1, 0.7, 0.2]])
    assert top_k_from_proba(proba, ["a", "b", "c"], k=5) == [
        [("b", pytest.approx(0.7)), ("c", pytest.approx(0.2)), ("a", pytest.approx(0.1))]
    ]
    with pytest.raises(ValueError, match="k must be"):
        top_k_from_proba(proba, ["a", "b", "c"], k=0)
    model, processor = tiny_clip()
    with pytest.raises(ValueError, match="rule"):
        ZeroShotClassifier(model, processor, "aid", rule="nope")
    with pytest.raises(TypeError, match="retrieval contract"):
        ZeroShotClassifier(torch.nn.Linear(2, 2), processor, "aid")


# ------------------------------------------------------------------ ImageFolder evaluation and CLI

from rs_retrieval.zeroshot.evaluate import evaluate_zero_shot, readable_name, rs_synth_image_folder, zero_shot_metrics


def test_readable_names_of_dataset_folders():
    assert [readable_name(f) for f in ("BaseballField", "baseball_field", "storage-tanks", "footballField")] == [
        "baseball field"
    ] * 2 + ["storage tanks", "football field"]


def test_zero_shot_metrics_by_hand():
    logits = torch.tensor([[3.0, 2.0, 1.0], [1.0, 3.0, 2.0], [1.0, 2.0, 3.0], [2.0, 3.0, 1.0]])
    labels = torch.tensor([0, 1, 1, 0])  # predictions 0, 1, 2, 1
    metrics = zero_shot_metrics(logits, labels, ("a", "b", "c"), ks=(1, 2))
    assert metrics["top1"] == 50.0 and metrics["top2"] == 100.0
    assert metrics["per_class"] == {"a": 50.0, "b": 50.0} and metrics["mean_per_class"] == 50.0  # c never occurs
    assert metrics["confusion_matrix"] == [[1, 1, 0], [0, 1, 1], [0, 0, 0]]


def write_folder_dataset(root, folders, per_class=2):
    for offset, folder in enumerate(folders):
        (root / folder).mkdir(parents=True)
        for i, image in enumerate(random_images(per_class, seed=offset)):
            image.save(root / folder / f"{i}.png")
    return root


def test_evaluate_on_image_folder_with_a_packaged_class_set(tmp_path):
    model, processor = tiny_clip(seed=6)
    root = write_folder_dataset(tmp_path / "aid", ["BareLand", "Airport"])
    metrics = evaluate_zero_shot(model, processor, root, "aid", templates="sclip_1", progress=False)
    classifier = ZeroShotClassifier(model, processor, load_class_set("aid", templates="sclip_1"))
    paths = sorted((root / "Airport").glob("*.png")) + sorted((root / "BareLand").glob("*.png"))
    predicted = classifier.predict_proba(paths).argmax(-1)
    labels = torch.tensor([0, 0, 1, 1])  # AID label order: Airport 0, BareLand 1
    assert (
        metrics["num_images"] == 4
        and len(metrics["classes"]) == 30
        and metrics["templates"] == ["an aerial photograph of {}."]
    )
    assert metrics["top1"] == 100.0 * (predicted == labels).float().mean().item()
    assert sum(map(sum, metrics["confusion_matrix"])) == 4
    with pytest.raises(ClassSetError, match="not classes of"):
        evaluate_zero_shot(
            model, processor, write_folder_dataset(tmp_path / "odd", ["Volcano"]), "aid", progress=False
        )
    with pytest.raises(ClassSetError, match="no class sub-folders"):
        evaluate_zero_shot(model, processor, tmp_path / "odd" / "Volcano", progress=False)


def test_rs_synth_benchmark_folder(tmp_path):
    root = rs_synth_image_folder(
        tmp_path / "bench", cache_dir=tmp_path / "cache", image_size=32, train_size=8, val_size=8, test_size=16
    )
    folders = sorted(p.name for p in root.iterdir())
    assert set(folders) <= set(load_class_set("rs_synth").folders)
    assert sum(len(list((root / f).iterdir())) for f in folders) == 16


def test_cli_zeroshot_classify_and_evaluate(tmp_path, capsys):
    from rs_retrieval.cli import main

    model, processor = tiny_clip(seed=8)
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    root = write_folder_dataset(tmp_path / "data", ["forest", "beach"])
    classes = tmp_path / "classes.txt"
    classes.write_text("beach\nforest\nriver\n")
    classify = [
        str(root / "beach"),
        "--model",
        str(tmp_path / "model"),
        "--classes",
        str(classes),
        "--top-k",
        "2",
        "--output",
        str(tmp_path / "pred.json"),
    ]
    assert main(["zeroshot", "classify", *classify]) == 0
    printed = capsys.readouterr()
    assert printed.out.count("0.png") == 1 and printed.out.count("1.png") == 1 and "deprecated" not in printed.err
    assert main(["classify", *classify]) == 0  # the old spelling, for one release
    old = capsys.readouterr()
    assert old.out == printed.out
    assert (
        old.err.splitlines()[0]
        == "warning: 'rs-retrieval classify' is deprecated; use 'rs-retrieval zeroshot classify'"
    )
    predictions = json.loads((tmp_path / "pred.json").read_text())["predictions"]
    assert len(predictions) == 2 and all(len(best) == 2 for best in predictions.values())
    out = tmp_path / "zs"
    assert (
        main(
            [
                "zeroshot",
                "evaluate",
                "--model",
                str(tmp_path / "model"),
                "--dataset",
                str(root),
                "--classes",
                str(classes),
                "--output-dir",
                str(out),
            ]
        )
        == 0
    )
    metrics = json.loads((out / "zeroshot_metrics.json").read_text())
    assert metrics["num_images"] == 4 and metrics["classes"] == ["beach", "forest", "river"]
    from PIL import Image

    assert Image.open(out / "confusion_matrix.png").size[0] > 100


def test_transformers_pipeline_on_a_clip_folder_agrees_with_the_classifier(tmp_path):
    from transformers import pipeline

    model, processor = tiny_clip(seed=9)
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    classifier = pipeline("zero-shot-image-classification", model=str(tmp_path / "model"))
    image = random_images(1)[0]
    labels = ["airport", "forest", "harbour"]
    result = classifier(image, candidate_labels=labels, hypothesis_template="a satellite photo of a {}.")
    ours = ZeroShotClassifier(model, processor, load_class_set_from(labels, tmp_path)).predict_proba([image])[0]
    assert {r["label"]: r["score"] for r in result} == pytest.approx(dict(zip(labels, ours.tolist())), abs=1e-5)


def load_class_set_from(labels, tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("\n".join(labels))
    return load_class_set(path)  # default templates: "a satellite photo of a {}."
