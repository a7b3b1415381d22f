"""NWPU-Captions and RSICap readers, on fixtures in their published layouts."""

from __future__ import annotations

import json

import pytest
from fixtures_data import captions_for, make_nwpu, make_rsicap

from rs_retrieval.data import load_dataset
from rs_retrieval.data.errors import MissingFieldError


def test_nwpu_captions_reads_classes_splits_and_five_sentences(tmp_path):
    dsdict = load_dataset("nwpu_captions", data_dir=make_nwpu(tmp_path))
    assert list(dsdict) == ["train", "val", "test"]
    assert dsdict["train"]["filename"] == ["airplane/airplane_001.jpg", "bridge/bridge_001.jpg"]
    assert dsdict["val"]["filename"] == ["bridge/bridge_002.jpg"]
    row = dsdict["test"][1]
    assert row["captions"] == captions_for("bridge_003.jpg")  # raw, raw_1 ... raw_4 in order
    assert dsdict["test"].features["scene"].int2str(row["scene"]) == "bridge" and row["image"].size == (16, 16)
    assert dsdict["train"]["image_id"] == [0, 2] and dsdict["test"]["image_id"] == [1, 4]  # position in the file


def test_nwpu_record_without_a_sentence_is_named(tmp_path):
    root = make_nwpu(tmp_path)
    document = json.loads((root / "dataset_nwpu.json").read_text())
    del document["bridge"][1]["raw_3"]
    (root / "dataset_nwpu.json").write_text(json.dumps(document))
    with pytest.raises(MissingFieldError, match=r"dataset_nwpu.json: bridge\[1\] has no field 'raw_3'"):
        load_dataset("nwpu_captions", data_dir=root)


def test_rsicap_reads_one_long_caption_per_image_without_splits(tmp_path):
    train = load_dataset("rsicap", data_dir=make_rsicap(tmp_path), split="train")
    assert train["filename"] == ["P0378_0001.png", "P1077_0002.png", "P1140_0085.png"]
    assert train[0]["captions"] == [
        "This is an aerial image P0378_0001.png. A long description."
    ]  # text_input dropped
    assert train.features["scene"].names == ["unknown"]  # DOTA tile ids are not classes
    assert load_dataset("rsicap", data_dir=tmp_path).keys() == {"train"}


def test_rsicap_does_not_combine_with_five_caption_sets(tmp_path):
    from rs_retrieval.data.errors import DatasetNotFoundError

    with pytest.raises(DatasetNotFoundError, match="different numbers of captions per image"):
        load_dataset("rsicd+rsicap", data_dir=tmp_path)
