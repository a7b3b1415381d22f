"""rs_synth: deterministic, cached, release-layout, and its captions state true facts about the objects."""

import json
import time

import pytest

from rs_retrieval.data import SYNTH_SCENES, SynthConfig, generate_rs_synth, load_dataset, write_rs_synth
from rs_retrieval.data.synth import _NUMBERS, _POSITIONS, CATEGORIES

SMALL = dict(train_size=24, val_size=4, test_size=8, image_size=64)


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(tmp_path):
    a = generate_rs_synth(tmp_path / "a", seed=7, **SMALL)
    b = write_rs_synth(tmp_path / "b", SynthConfig(seed=7, **SMALL))
    files_a, files_b = _files(a), _files(b)
    assert len([n for n in files_a if n.endswith(".png")]) == 36
    assert files_a == files_b
    c = generate_rs_synth(tmp_path / "a", seed=8, **SMALL)
    assert c != a and _files(c)["dataset.json"] != files_a["dataset.json"]


def test_cache_is_reused_and_keyed_by_config(tmp_path):
    first = generate_rs_synth(tmp_path, **SMALL)
    stamp = (first / "dataset.json").stat().st_mtime_ns
    start = time.perf_counter()
    assert generate_rs_synth(tmp_path, **SMALL) == first
    assert time.perf_counter() - start < 0.1 and (first / "dataset.json").stat().st_mtime_ns == stamp
    assert first.name == SynthConfig(**SMALL).key and (first / ".complete").is_file()
    other = generate_rs_synth(tmp_path, **{**SMALL, "image_size": 32})
    assert other != first and sorted(p.name for p in tmp_path.iterdir()) == sorted([first.name, other.name])


def test_release_layout_is_karpathy_json(tmp_path):
    root = generate_rs_synth(tmp_path, **SMALL)
    document = json.loads((root / "dataset.json").read_text())
    images = document["images"]
    assert [e["split"] for e in images] == ["train"] * 24 + ["val"] * 4 + ["test"] * 8
    entry = images[5]
    assert entry["imgid"] == 5 and entry["filename"] == f"{entry['scene']}_5.png"
    assert [s["sentid"] for s in entry["sentences"]] == list(range(25, 30)) == entry["sentids"]
    assert entry["sentences"][0]["tokens"] == entry["sentences"][0]["raw"].lower().rstrip(".").replace(",", "").split()
    assert (root / "images" / entry["filename"]).is_file()


def test_schema_and_splits(tmp_path):
    dsdict = load_dataset("rs_synth", cache_dir=tmp_path, **SMALL)
    assert {s: len(ds) for s, ds in dsdict.items()} == {"train": 24, "val": 4, "test": 8}
    train = dsdict["train"]
    assert train.features["scene"].names == list(SYNTH_SCENES)
    assert set(train.column_names) == {"image", "filename", "image_id", "captions", "scene", "keywords", "objects"}
    assert train[0]["image"].size == (64, 64) and train[0]["image"].mode == "RGB"
    # balanced scenes: every class appears three times among 24 training images
    assert sorted(train["scene"][:]) == sorted(list(range(8)) * 3)
    assert dsdict["test"]["image_id"][:] == list(range(28, 36))


def test_captions_are_distinct_and_true(tmp_path):
    dsdict = load_dataset("rs_synth", cache_dir=tmp_path, seed=3, image_check="none", **SMALL)
    all_captions = []
    for ds in dsdict.values():
        for captions, objects, keywords, filename in zip(
            ds["captions"][:], ds["objects"][:], ds["keywords"][:], ds["filename"][:]
        ):
            assert len(set(captions)) == 5, captions
            all_captions += captions
            for obj in objects:
                x0, y0, x1, y1 = obj["bbox"]
                assert 0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0
            counted = [o for o in objects if o["category"] in CATEGORIES]
            assert {o["category"] for o in counted} <= set(keywords)
            # caption 0: "<count> <colour> <noun> <verb> <position> of the <scene>."
            words = captions[0].rstrip(".").lower().split()
            count, color = _NUMBERS.index(words[0]), words[1]
            category = next(
                c for c in CATEGORIES.values() if " ".join(words[2:]).startswith((c.plural + " ", c.name + " "))
            )
            group = [o for o in counted if o["category"] == category.name and o["color"] == color]
            assert len(group) == count, (filename, captions[0], objects)
            cx = sum(o["bbox"][0] + o["bbox"][2] for o in group) / (2 * count)
            cy = sum(o["bbox"][1] + o["bbox"][3] for o in group) / (2 * count)
            near = {
                _POSITIONS[min(int(y * 3), 2)][min(int(x * 3), 2)]
                for x in (cx - 1e-4, cx + 1e-4)
                for y in (cy - 1e-4, cy + 1e-4)
            }
            assert any(position in captions[0] for position in near), (captions[0], cx, cy)
            # caption 3 states the total per category
            for name in {o["category"] for o in counted}:
                n = sum(o["category"] == name for o in counted)
                assert f"{_NUMBERS[n]} {name if n == 1 else CATEGORIES[name].plural}" in captions[3].lower()
    assert len(set(all_captions)) > 0.8 * len(all_captions)  # images of one scene are told apart by their facts


def test_synth_options_are_validated(tmp_path):
    with pytest.raises(ValueError, match="image_size must be an int >= 32"):
        generate_rs_synth(tmp_path, image_size=8)
    with pytest.raises(ValueError, match="split sizes"):
        generate_rs_synth(tmp_path, train_size=0, val_size=0, test_size=0)
    with pytest.raises(FileExistsError):
        write_rs_synth(tmp_path, SynthConfig(**SMALL))
    root = generate_rs_synth(tmp_path, **SMALL)
    with pytest.raises(TypeError, match="unexpected arguments for rs_synth"):
        load_dataset("rs_synth", data_dir=root, train_size=3)
    assert len(load_dataset("rs_synth", data_dir=root, split="val")) == 4


@pytest.mark.slow
def test_default_generation_is_fast(tmp_path):
    start = time.perf_counter()
    root = generate_rs_synth(tmp_path)
    assert time.perf_counter() - start < 10.0
    assert len(list((root / "images").iterdir())) == 550
