"""The published RSITMD / RSICD precomp caption files (shared/data, no images): sizes and known quirks."""

import pytest
from fixtures_data import SHARED_DATA

from rs_retrieval.data import dataset_report, flatten_captions, load_dataset


def _load(name):
    folder = SHARED_DATA / name
    if not (folder / "train_caps.txt").is_file():
        pytest.skip(f"real caption files not found at {folder}")
    return load_dataset(name, data_dir=folder, image_check="none")


def test_rsitmd_precomp_sizes_and_blank_captions():
    dsdict = _load("rsitmd")
    assert {s: len(ds) for s, ds in dsdict.items()} == {"train": 4291, "test": 452}
    report = dataset_report(dsdict)
    assert report["train"]["captions"] == 21455 and report["test"]["captions"] == 2260
    assert report["train"]["blank_captions"] == 20 and report["test"]["blank_captions"] == 0
    assert len({b["filename"] for b in report["train"]["blank_caption_files"]}) == 4  # five blank lines each
    assert report["train"]["blank_caption_files"][0] == {"filename": "mountain_2378.tif", "caption_index": 0}
    assert report["test"]["duplicates"] == {
        "distinct_captions": 2119,
        "captions_shared_across_images": 6,
        "texts_shared_across_images": 3,
        "images_with_shared_text": 2,
        "max_images_sharing_one_text": 2,
    }
    scenes = report["train"]["scenes"]
    assert len(set(scenes) | set(report["test"]["scenes"])) == 33 and scenes["plane"] == 6
    test = dsdict["test"]  # images are absent: read columns only, never decode a row
    assert test["filename"][0] == "boat_0.tif" and test.features["scene"].int2str(test["scene"][0]) == "boat"
    flat = flatten_captions(test)
    assert len(flat) == 2260 and flat["caption"][:10] == test["captions"][0] + test["captions"][1]


def test_rsicd_precomp_sizes_unicode_and_duplicates():
    dsdict = _load("rsicd")
    assert {s: len(ds) for s, ds in dsdict.items()} == {"train": 9828, "test": 1093}
    # train_caps.txt lines 37192-37193 (1-based) hold U+2019: image 7438, captions 1 and 2
    captions = dsdict["train"]["captions"][7438]
    assert captions[1] == captions[2] == "two white storage tanks are built on the concrete at the water\u2019s edge ."
    report = dataset_report(dsdict)
    assert report["train"]["duplicates"]["distinct_captions"] == 15097
    assert report["test"]["duplicates"] == {
        "distinct_captions": 3331,
        "captions_shared_across_images": 641,
        "texts_shared_across_images": 150,
        "images_with_shared_text": 410,
        "max_images_sharing_one_text": 17,
    }
    assert report["train"]["scenes"]["unknown"] + report["test"]["scenes"]["unknown"] == 921
