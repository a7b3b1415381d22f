"""Every kind of bad source fails with a typed error that names the file and the problem."""

import json
import os

import pytest
from fixtures_data import make_precomp, make_release, write_lines

from rs_retrieval.data import (
    CaptionCountError,
    CorruptImageError,
    DatasetFormatError,
    DatasetNotFoundError,
    MissingFieldError,
    MissingImageError,
    UnknownSplitError,
    export_parquet,
    load_dataset,
)
from rs_retrieval.data import synth as synth_module


def _edit_json(root, name, edit):
    path = root / name
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document))
    return path


def test_missing_image_names_the_file(tmp_path):
    root = make_release(tmp_path, "rsitmd")
    os.remove(root / "images" / "plane_2.tif")
    with pytest.raises(MissingImageError, match=r"1 of 5 images are missing from .*images: plane_2.tif") as err:
        load_dataset("rsitmd", data_dir=root)
    assert isinstance(err.value, FileNotFoundError) and isinstance(err.value, ValueError)
    assert len(load_dataset("rsitmd", data_dir=root, image_check="none")["train"]) == 3


def test_missing_image_folder(tmp_path):
    root = make_precomp(tmp_path, "rsicd", with_images=False)
    with pytest.raises(MissingImageError, match="6 of 6 images are missing"):
        load_dataset("rsicd", data_dir=root, image_check="exists")


def test_undecodable_image(tmp_path):
    root = make_release(tmp_path, "ucm_captions")
    (root / "images" / "4.tif").write_bytes(b"not an image at all")
    with pytest.raises(
        CorruptImageError, match=r"1 image file\(s\) cannot be read: .*4\.tif \(UnidentifiedImageError"
    ):
        load_dataset("ucm_captions", data_dir=root)
    assert len(load_dataset("ucm_captions", data_dir=root, image_check="exists")["val"]) == 1


@pytest.mark.parametrize("level", ["verify", "decode"])
def test_truncated_tiff_is_caught_by_the_default_check(tmp_path, level):
    # PIL's verify() checks headers only; the default check also decodes files whose data looks cut off
    root = make_release(tmp_path, "sydney_captions")
    path = root / "images" / "2.tif"
    path.write_bytes(path.read_bytes()[:-300])
    with pytest.raises(CorruptImageError, match=r"2\.tif \(OSError: image file is truncated"):
        load_dataset("sydney_captions", data_dir=root, image_check=level)
    assert len(load_dataset("sydney_captions", data_dir=root, image_check="exists")["train"]) == 2


def test_truncated_jpeg_is_caught_by_the_default_check(tmp_path):
    import numpy as np
    from PIL import Image

    root = make_release(tmp_path, "ucm_captions")
    names = sorted(p.name for p in (root / "images").iterdir())
    pixels = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    for name in names:  # the same release with JPEG files under the same names
        Image.fromarray(pixels).save(root / "images" / name, format="JPEG", quality=95)
    load_dataset("ucm_captions", data_dir=root)
    path = root / "images" / names[0]
    path.write_bytes(path.read_bytes()[:-500])
    with pytest.raises(CorruptImageError, match=rf"{names[0]} \(OSError: image file is truncated"):
        load_dataset("ucm_captions", data_dir=root)


@pytest.mark.parametrize(
    "edit, pattern",
    [
        (lambda d: d["images"][1].pop("split"), r"images\[1\] has no field 'split'"),
        (lambda d: d["images"][0].pop("filename"), r"images\[0\] has no field 'filename'"),
        (lambda d: d["images"][2].pop("sentences"), r"images\[2\] has no field 'sentences'"),
        (lambda d: d["images"][3]["sentences"][4].pop("raw"), r"images\[3\]\.sentences\[4\] has no field 'raw'"),
        (lambda d: d.pop("images"), r"the top level has no field 'images'"),
    ],
)
def test_json_missing_field(tmp_path, edit, pattern):
    root = make_release(tmp_path, "rsicd")
    _edit_json(root, "dataset_rsicd.json", edit)
    with pytest.raises(MissingFieldError, match=r"dataset_rsicd\.json: " + pattern):
        load_dataset("rsicd", data_dir=root)


def test_json_bad_values(tmp_path):
    root = make_release(tmp_path, "rsitmd")
    path = _edit_json(root, "dataset_RSITMD.json", lambda d: d["images"][1].update(keywords="boat"))
    with pytest.raises(DatasetFormatError, match=r"images\[1\]\.keywords must be a list of strings"):
        load_dataset("rsitmd", data_dir=root)
    path.write_text("{not json")
    with pytest.raises(DatasetFormatError, match="dataset_RSITMD.json: not valid JSON"):
        load_dataset("rsitmd", data_dir=root)


def test_json_image_with_four_captions(tmp_path):
    root = make_release(tmp_path, "ucm_captions")
    _edit_json(root, "dataset.json", lambda d: d["images"][4]["sentences"].pop())
    with pytest.raises(CaptionCountError, match=r"images\[4\] \(5\.tif\) has 4 sentences, expected 5"):
        load_dataset("ucm_captions", data_dir=root)


def test_unknown_split_lists_valid_ones(tmp_path):
    root = make_release(tmp_path, "rsitmd")
    with pytest.raises(UnknownSplitError, match="rsitmd has no split 'val'; valid splits: train, test"):
        load_dataset("rsitmd", data_dir=root, split="val")


def test_precomp_counts_disagree(tmp_path):
    root = make_precomp(tmp_path, "rsitmd")
    write_lines(root / "test_filename.txt", ["airport_3.tif", "boat_4.tif", "boat_4.tif"])
    with pytest.raises(
        CaptionCountError,
        match=r"test_filename\.txt: 3 file names for 10 captions; expected 2 \(one per image\) or 10",
    ):
        load_dataset("rsitmd", data_dir=root)


def test_precomp_captions_not_a_multiple_of_five(tmp_path):
    root = make_precomp(tmp_path, "rsitmd")
    lines = (root / "train_caps.txt").read_text().split("\n")[:-2]
    write_lines(root / "train_caps.txt", lines)
    with pytest.raises(
        CaptionCountError, match=r"train_caps\.txt: 14 caption lines, expected a positive multiple of 5"
    ):
        load_dataset("rsitmd", data_dir=root)


def test_precomp_per_caption_names_must_repeat(tmp_path):
    root = make_precomp(tmp_path, "rsitmd")
    names = ["airport_3.tif"] * 4 + ["boat_4.tif"] * 6
    write_lines(root / "test_filename.txt", names)
    with pytest.raises(CaptionCountError, match=r"line 5 names 'boat_4.tif' but lines 1-5 belong to one image"):
        load_dataset("rsitmd", data_dir=root)


def test_precomp_blank_file_name(tmp_path):
    root = make_precomp(tmp_path, "rsitmd")
    write_lines(root / "train_filename.txt", ["boat_0.tif", " ", "plane_2.tif"])
    with pytest.raises(DatasetFormatError, match=r"train_filename\.txt: line 2 is blank"):
        load_dataset("rsitmd", data_dir=root)


def test_precomp_without_file_names(tmp_path):
    root = make_precomp(tmp_path, "rsitmd")
    os.remove(root / "test_filename.txt")
    with pytest.raises(
        DatasetNotFoundError, match=r"test_caps\.txt has no matching file-name list test_filename\.txt"
    ):
        load_dataset("rsitmd", data_dir=root)


def test_empty_and_missing_folders(tmp_path):
    with pytest.raises(
        DatasetNotFoundError, match=r"RSITMD: no source in .*; looked for a release JSON \(dataset_RSITMD\.json"
    ):
        load_dataset("rsitmd", data_dir=tmp_path)
    with pytest.raises(DatasetNotFoundError, match="is not a folder"):
        load_dataset("rsicd", data_dir=tmp_path / "absent")
    with pytest.raises(DatasetNotFoundError, match="pass data_dir="):
        load_dataset("ucm_captions")
    make_release(tmp_path, "rsitmd")
    with pytest.raises(DatasetNotFoundError, match=r"looked for precomp caption files"):
        load_dataset("rsitmd", data_dir=tmp_path, source="precomp")


def test_bad_options(tmp_path):
    root = make_release(tmp_path, "rsitmd")
    with pytest.raises(ValueError, match="image_check must be one of"):
        load_dataset("rsitmd", data_dir=root, image_check="maybe")
    with pytest.raises(ValueError, match="source must be one of"):
        load_dataset("rsitmd", data_dir=root, source="zip")
    with pytest.raises(TypeError, match=r"unexpected arguments for rsitmd: \['train_size'\]"):
        load_dataset("rsitmd", data_dir=root, train_size=3)


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


def test_failed_export_writes_nothing(tmp_path):
    dsdict = load_dataset("rsitmd", data_dir=make_release(tmp_path / "src", "rsitmd"))
    out = tmp_path / "out" / "parquet"
    os.remove(tmp_path / "src" / "images" / "airport_3.tif")  # embedding the test split fails
    with pytest.raises(FileNotFoundError):
        export_parquet(dsdict, out)
    assert not out.exists() and _leftovers(out.parent) == []
    with pytest.raises(FileExistsError, match="already exists"):
        export_parquet(dsdict, tmp_path / "src")


def test_failed_overwrite_keeps_the_previous_export(tmp_path):
    dsdict = load_dataset("rsitmd", data_dir=make_release(tmp_path / "src", "rsitmd"))
    out = export_parquet(dsdict, tmp_path / "parquet")
    before = sorted(p.name for p in (out / "data").iterdir())
    os.remove(tmp_path / "src" / "images" / "airport_3.tif")
    with pytest.raises(FileNotFoundError):
        export_parquet(dsdict, out, overwrite=True)
    assert sorted(p.name for p in (out / "data").iterdir()) == before and _leftovers(tmp_path) == []


def test_failed_synth_generation_writes_nothing(tmp_path, monkeypatch):
    calls = []
    real_render = synth_module.render_image

    def render_then_fail(*args):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return real_render(*args)

    monkeypatch.setattr(synth_module, "render_image", render_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        synth_module.generate_rs_synth(tmp_path, train_size=4, val_size=0, test_size=1, image_size=32)
    assert list(tmp_path.iterdir()) == []
