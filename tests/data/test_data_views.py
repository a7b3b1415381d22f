"""flatten_captions, dataset_report, Parquet / Arrow export and the `rs-retrieval data` commands."""

import json
from pathlib import Path

import datasets
import numpy as np
import pytest
from fixtures_data import captions_for, make_release

from rs_retrieval.cli import main
from rs_retrieval.data import dataset_report, export_parquet, flatten_captions, load_dataset, save_arrow
from rs_retrieval.data.schema import ImageRecord, records_to_dataset


@pytest.fixture
def rsitmd(tmp_path):
    return load_dataset("rsitmd", data_dir=make_release(tmp_path / "rsitmd", "rsitmd"))


def test_flatten_captions_keeps_order_and_indices(rsitmd):
    train = rsitmd["train"]
    flat = flatten_captions(train)
    assert len(flat) == 15
    assert flat["caption"][:] == [c for n in train["filename"][:] for c in captions_for(n)]
    assert flat["image_index"][:] == [i // 5 for i in range(15)]
    assert flat["caption_index"][:] == [i % 5 for i in range(15)]
    assert flat["scene"][:] == [s for s in train["scene"][:] for _ in range(5)]
    assert flat["filename"][:] == [n for n in train["filename"][:] for _ in range(5)]
    assert flat.features["scene"] == train.features["scene"] and flat.features["image"] == train.features["image"]
    assert np.array_equal(np.asarray(flat[7]["image"]), np.asarray(train[1]["image"]))
    assert flat[10]["caption"] == "caption 0 of plane_2.tif ’" and flat[12]["caption"] == ""  # blank kept in place


def test_flatten_captions_of_a_selection_indexes_the_selection(rsitmd):
    picked = rsitmd["train"].select([2, 0])
    flat = flatten_captions(picked, columns=["image", "scene"])
    assert flat.column_names == ["image", "scene", "caption", "image_index", "caption_index"]
    assert flat["image_index"][:] == [0] * 5 + [1] * 5
    assert flat["caption"][:5] == captions_for("plane_2.tif") and flat["caption"][5:] == captions_for("boat_0.tif")
    with pytest.raises(ValueError, match="per-image columns"):
        flatten_captions(picked, columns=["image", "nope"])
    with pytest.raises(ValueError, match="needs a 'captions' column"):
        flatten_captions(flat)


def test_flatten_captions_many_rows_matches_python():
    n = 12000
    captions = [[f"c{i}-{k}" for k in range(5)] for i in range(n)]
    ds = datasets.Dataset.from_dict({"captions": captions, "scene": [i % 7 for i in range(n)]})
    flat = flatten_captions(ds)
    assert len(flat) == 5 * n
    assert flat["caption"][:] == [c for row in captions for c in row]
    assert flat["image_index"][:] == [i // 5 for i in range(5 * n)]
    assert flat["scene"][-1] == (n - 1) % 7


def test_dataset_report_by_hand(tmp_path):
    records = [
        ImageRecord("boat_0.tif", ["a", "a", "b", "", "c"], 0),
        ImageRecord("boat_1.tif", ["a", "d", "e", "f", "g"], 1),
        ImageRecord("port_2.tif", ["a", "b", " ", "h", "i"], 2),
    ]
    ds = records_to_dataset(records, tmp_path, ["boat", "port"], "test", {}, {})
    report = dataset_report(datasets.DatasetDict({"test": ds}))["test"]
    assert report["images"] == 3 and report["captions"] == 15
    assert report["blank_captions"] == 2
    assert report["blank_caption_files"] == [
        {"filename": "boat_0.tif", "caption_index": 3},
        {"filename": "port_2.tif", "caption_index": 2},
    ]
    # 11 distinct texts; "a" x4 over three images, "b" x2 over two images; the blanks "" and " " differ
    assert report["duplicates"] == {
        "distinct_captions": 11,
        "captions_shared_across_images": 6,
        "texts_shared_across_images": 2,
        "images_with_shared_text": 3,
        "max_images_sharing_one_text": 3,
    }
    assert report["scenes"] == {"boat": 2, "port": 1}
    # a Hub-style table with only captions (no file names, no scene labels) is reported too
    bare = dataset_report(datasets.Dataset.from_dict({"captions": [["x", ""], ["x", "y"]]}))
    assert bare["data"]["blank_caption_files"] == [{"filename": "row 0", "caption_index": 1}]
    assert bare["data"]["duplicates"]["texts_shared_across_images"] == 1 and bare["data"]["scenes"] == {}


def test_export_parquet_round_trip(rsitmd, tmp_path):
    out = export_parquet(rsitmd, tmp_path / "parquet")
    assert sorted(p.name for p in (out / "data").iterdir()) == [
        "test-00000-of-00001.parquet",
        "train-00000-of-00001.parquet",
    ]
    (tmp_path / "rsitmd" / "images" / "boat_0.tif").unlink()  # the export must not depend on the source images
    loaded = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))
    assert list(loaded) == ["train", "test"]
    for split in ("train", "test"):
        a, b = rsitmd[split], loaded[split]
        assert b.features == a.features
        for column in ("filename", "image_id", "captions", "scene", "keywords"):
            assert b[column][:] == a[column][:]
    image = loaded["train"][0]["image"]
    original = np.random.default_rng(0).integers(
        0, 256, (16, 16, 3), dtype=np.uint8
    )  # fixtures_data.write_image seed 0
    assert np.array_equal(np.asarray(image), original)
    readme = (out / "README.md").read_text()
    assert "- split: test\n    path: data/test-*" in readme and "Licence: none stated by the authors" in readme
    # provenance paths are relative to the data dir: nothing of this machine's folders is published
    assert (
        str(tmp_path) not in readme
        and '"image_dir": "images"' in readme
        and '"annotations": "dataset_RSITMD.json"' in readme
    )


def test_save_arrow_round_trip(rsitmd, tmp_path):
    out = save_arrow(rsitmd, tmp_path / "arrow")
    loaded = datasets.load_from_disk(str(out))
    assert loaded["test"]["captions"][:] == rsitmd["test"]["captions"][:]
    assert json.loads(loaded["test"].info.description)["source"] == "release"
    assert np.array_equal(np.asarray(loaded["test"][1]["image"]), np.asarray(rsitmd["test"][1]["image"]))


def test_cli_build_and_info(tmp_path, capsys):
    out = tmp_path / "synth-parquet"
    args = [
        "data",
        "build",
        "rs_synth",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--synth-sizes",
        "6",
        "2",
        "3",
        "--image-size",
        "32",
    ]
    assert main([*args, "--out", str(out)]) == 0
    loaded = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf"))
    assert {s: len(ds) for s, ds in loaded.items()} == {"train": 6, "val": 2, "test": 3}
    assert "objects" in loaded["train"].column_names
    assert main([*args, "--out", str(out)]) == 2 and "already exists" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "arrow"), "--format", "arrow"]) == 0
    assert len(datasets.load_from_disk(str(tmp_path / "arrow"))["val"]) == 2

    root = make_release(tmp_path / "ucm", "ucm_captions")
    capsys.readouterr()
    assert main(["data", "info", "ucm_captions", "--data-dir", str(root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == json.loads(json.dumps(dataset_report(load_dataset("ucm_captions", data_dir=root))))
    assert main(["data", "info", "ucm_captions", "--data-dir", str(root)]) == 0
    text = capsys.readouterr().out
    assert "[train] 3 images, 15 captions, 3 blank" in text and "blank: 1.tif caption 2" in text
    assert main(["data", "info", "rsitmd", "--data-dir", str(root)]) == 2
    assert "no source in" in capsys.readouterr().err
    assert not list(Path(tmp_path).glob(".*tmp-*"))
