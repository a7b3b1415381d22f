"""The four readers on generated release-format and precomp-format fixtures."""

import json

import numpy as np
import pytest
from fixtures_data import STYLES, captions_for, make_precomp, make_release, precomp_style, write_image

from rs_retrieval.data import (
    UNKNOWN_SCENE,
    load_dataset,
    scene_from_filename,
    split_info,
    train_val_split,
)

DATASET_NAMES = list(STYLES)


def _expected_scene(name: str, filename: str) -> str:
    return {"rsitmd": filename.split("_")[0], "rsicd": filename.split("_")[0] if "_" in filename else "unknown"}.get(
        name, "unknown"
    )


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_release_layout(tmp_path, name):
    root = make_release(tmp_path / name, name)
    dsdict = load_dataset(name, data_dir=root)
    _, splits = STYLES[name]
    assert list(dsdict) == list(splits)
    all_names = [n for names in splits.values() for n in names]
    for split, names in splits.items():
        ds = dsdict[split]
        assert ds["filename"][:] == names
        assert ds["image_id"][:] == [all_names.index(n) for n in names]
        assert ds["captions"][:] == [captions_for(n) for n in names]
        assert [ds.features["scene"].int2str(i) for i in ds["scene"][:]] == [_expected_scene(name, n) for n in names]
        assert ds["keywords"][:] == (
            [[n.split("_")[0], "water"] for n in names] if name == "rsitmd" else [[] for _ in names]
        )
        assert ds.features["image_id"].dtype == "int32" and "objects" not in ds.column_names
    first = dsdict[next(iter(splits))][0]
    assert first["image"].size == (16, 16)
    assert split_info(dsdict[next(iter(splits))])["source"] == "release"


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_precomp_layout_both_filename_styles(tmp_path, name):
    # train lists each image once; test repeats each name per caption; both accepted for any split
    for per_caption in (("test",), ("train",)):
        root = make_precomp(tmp_path / f"{name}-{per_caption[0]}", name, per_caption=per_caption)
        dsdict = load_dataset(name, data_dir=root)
        splits = precomp_style(name)
        assert list(dsdict) == list(splits)
        for split, names in splits.items():
            assert dsdict[split]["filename"][:] == names
            assert dsdict[split]["captions"][:] == [captions_for(n) for n in names]
        all_names = [n for names in splits.values() for n in names]
        assert dsdict["test"]["image_id"][:] == [all_names.index(n) for n in splits["test"]]
        test = dsdict["test"]
        assert split_info(test)["source"] == "precomp"
        assert np.asarray(test[1]["image"]).shape == (16, 16, 3)


def test_auto_prefers_release_and_source_picks_either(tmp_path):
    root = make_release(tmp_path, "rsicd")
    make_precomp(tmp_path, "rsicd", with_images=False)
    assert list(load_dataset("rsicd", data_dir=root)) == ["train", "val", "test"]
    assert list(load_dataset("rsicd", data_dir=root, source="precomp")) == ["train", "test"]
    assert len(load_dataset("rsicd", data_dir=root, source="precomp", split="train")) == 4


def test_precomp_subfolder_and_separate_image_dir(tmp_path):
    make_precomp(tmp_path / "data" / "rsitmd_precomp", "rsitmd", with_images=False)
    names = [n for names in STYLES["rsitmd"][1].values() for n in names]
    (tmp_path / "pictures").mkdir()
    for seed, n in enumerate(names):
        write_image(tmp_path / "pictures" / n, seed)
    test = load_dataset("rsitmd", data_dir=tmp_path / "data", image_dir=tmp_path / "pictures", split="test")
    assert test["filename"][:] == ["airport_3.tif", "boat_4.tif"]
    assert split_info(test)["image_dir"] == "../pictures"  # relative to data_dir


@pytest.mark.parametrize("folder", ["imgs", None])
def test_image_folder_alternatives(tmp_path, folder):
    root = make_release(tmp_path, "ucm_captions", image_dir=folder)
    ds = load_dataset("ucm_captions", data_dir=root, split="test")
    assert ds[0]["image"].size == (16, 16)


def test_val_fraction_resplit_is_seeded_and_recorded(tmp_path):
    root = make_precomp(tmp_path, "rsicd")
    a = load_dataset("rsicd", data_dir=root, val_fraction=0.5, seed=3)
    b = load_dataset("rsicd", data_dir=root, val_fraction=0.5, seed=3)
    assert list(a) == ["train", "val", "test"] and len(a["train"]) == 2 and len(a["val"]) == 2
    assert a["val"]["filename"][:] == b["val"]["filename"][:]
    train_names = ["airport_1.jpg", "00001.jpg", "beach_7.jpg", "00002.jpg"]
    assert sorted(a["train"]["filename"][:] + a["val"]["filename"][:]) == sorted(train_names)
    for part in ("train", "val"):  # release order is kept inside each part
        ids = a[part]["image_id"][:]
        assert ids == sorted(ids)
    assert a["test"]["filename"][:] == ["airport_348.jpg", "port_9.jpg"]
    record = split_info(a["val"])["resplit"]
    assert record == {"from": "train", "val_fraction": 0.5, "seed": 3, "train_images": 2, "val_images": 2}
    assert split_info(a["test"])["resplit"] == record and split_info(a["val"])["split"] == "val"
    seeds = {
        tuple(load_dataset("rsicd", data_dir=root, val_fraction=0.5, seed=s)["val"]["image_id"][:]) for s in range(8)
    }
    assert len(seeds) > 1


def test_val_fraction_refuses_existing_val_and_bad_fractions(tmp_path):
    root = make_release(tmp_path, "ucm_captions")
    with pytest.raises(ValueError, match="already has a validation split"):
        load_dataset("ucm_captions", data_dir=root, val_fraction=0.2)
    dsdict = load_dataset("ucm_captions", data_dir=root)
    with pytest.raises(ValueError, match="val_fraction=0.01 gives 0 of 3"):
        train_val_split({"train": dsdict["train"]}, 0.01)


def test_hub_path_loads_a_parquet_folder(tmp_path):
    from rs_retrieval.data import export_parquet

    original = load_dataset("rsitmd", data_dir=make_release(tmp_path / "src", "rsitmd"))
    out = export_parquet(original, tmp_path / "parquet")
    loaded = load_dataset(str(out), cache_dir=tmp_path / "cache", val_fraction=0.5, seed=1)
    assert list(loaded) == ["train", "val", "test"]
    assert sorted(loaded["train"]["filename"][:] + loaded["val"]["filename"][:]) == sorted(
        original["train"]["filename"][:]
    )
    with pytest.raises(ValueError, match="apply to the local datasets"):
        load_dataset(str(out), source="precomp")


def test_scene_rule():
    assert scene_from_filename("boat_0.tif") == "boat"
    assert scene_from_filename("denseresidential_12.jpg") == "denseresidential"
    assert scene_from_filename("00001.jpg") == UNKNOWN_SCENE
    assert scene_from_filename("2100.tif") == UNKNOWN_SCENE
    assert scene_from_filename("boat.tif") == UNKNOWN_SCENE


def test_provenance_is_json_in_the_description(tmp_path):
    ds = load_dataset("sydney_captions", data_dir=make_release(tmp_path, "sydney_captions"), split="val")
    record = json.loads(ds.info.description)
    assert record["dataset"] == "sydney_captions" and record["split"] == "val" and record["image_check"] == "verify"
    assert "not stated" in ds.info.license
