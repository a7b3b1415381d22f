"""Small edges: warnings that used to be missing and messages that used to point the wrong way."""

import logging

import datasets
import pytest
from hub_server import import_tiny_package, make_tiny_model

from rs_retrieval.data.views import warn_blank_captions
from rs_retrieval.search.folder_search import SearchError, rank_captions, warn_unknown_words
from rs_retrieval.training.data import select_splits
from rs_retrieval.training.recipe import DataSpec, RecipeError


@pytest.fixture(scope="module", autouse=True)
def tiny_package(tmp_path_factory):
    import_tiny_package(tmp_path_factory.mktemp("pkg"))


def test_a_query_of_unknown_words_warns(caplog):
    _, processor = make_tiny_model()
    with caplog.at_level(logging.WARNING, logger="rs_retrieval.search"):
        assert warn_unknown_words(processor, "zebra xylophone")
        assert not warn_unknown_words(processor, "two ships in a harbour")
    assert len(caplog.records) == 1 and "no word of the query 'zebra xylophone'" in caplog.text


def test_rank_captions_refuses_an_empty_caption():
    model, processor = make_tiny_model()
    from PIL import Image

    with pytest.raises(SearchError, match=r"caption\(s\) \[2\] are empty"):
        rank_captions(Image.new("RGB", (32, 32)), ["a ship", "  "], model, processor)


def test_blank_captions_are_counted_in_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="rs_retrieval.data.views"):
        assert warn_blank_captions(["a ship", "", " ", "a port"], "the test split") == 2
    assert "2 of 4 captions in the test split are blank" in caplog.text


def test_a_named_validation_split_that_does_not_exist_is_named():
    rows = {"image_id": [0, 1, 2, 3], "captions": [["a"]] * 4}
    data = datasets.DatasetDict({name: datasets.Dataset.from_dict(rows) for name in ("train", "val", "test")})
    with pytest.raises(
        RecipeError, match=r"data.validation_split: dataset 'x' has no split 'dev'; it has \['train', 'val', 'test'\]"
    ):
        select_splits(data, DataSpec(name="x", validation_split="dev"))


def test_evaluate_warns_about_blank_captions(caplog):
    from PIL import Image

    from rs_retrieval.evaluation.evaluator import evaluate_retrieval

    model, processor = make_tiny_model()
    data = datasets.Dataset.from_dict(
        {
            "image": [Image.new("RGB", (32, 32), c) for c in ("red", "blue")],
            "captions": [["a ship", ""], ["a port", "ships"]],
        }
    )
    with caplog.at_level(logging.WARNING, logger="rs_retrieval.data.views"):
        evaluate_retrieval(model, processor, data, progress=False)
    assert "1 of 4 captions in the evaluated split are blank" in caplog.text


def test_evaluation_names_the_image_file_that_fails(tmp_path):
    import numpy as np
    from PIL import Image

    from rs_retrieval.evaluation.evaluator import evaluate_retrieval
    from rs_retrieval.imagery import ImageReadError

    model, processor = make_tiny_model()
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"scene_{i}.jpg")
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(
            paths[-1], quality=95
        )
    paths[1].write_bytes(paths[1].read_bytes()[:-400])  # truncated after the dataset check
    data = datasets.Dataset.from_dict(
        {"image": [str(p) for p in paths], "filename": [p.name for p in paths], "captions": [["a ship"], ["a port"]]}
    )
    data = data.cast_column("image", datasets.Image())
    with pytest.raises(ImageReadError, match=r"cannot read image scene_1.jpg \(row 1\): image file is truncated"):
        evaluate_retrieval(model, processor, data, progress=False)


def test_training_names_the_image_file_that_fails():
    import io

    import numpy as np
    from PIL import Image

    from rs_retrieval.imagery import ImageReadError
    from rs_retrieval.training.data import build_train_loader

    _, processor = make_tiny_model()
    encoded = []
    for i in range(4):
        buffer = io.BytesIO()
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(
            buffer, format="JPEG", quality=95
        )
        encoded.append(buffer.getvalue())
    encoded[2] = encoded[2][:-300]
    flat = datasets.Dataset.from_dict(
        {
            "image": [{"bytes": b, "path": None} for b in encoded],
            "filename": [f"f{i}.jpg" for i in range(4)],
            "caption": ["a ship"] * 4,
            "image_index": list(range(4)),
            "caption_index": [0] * 4,
        },
        features=datasets.Features(
            {
                "image": datasets.Image(),
                "filename": datasets.Value("string"),
                "caption": datasets.Value("string"),
                "image_index": datasets.Value("int64"),
                "caption_index": datasets.Value("int32"),
            }
        ),
    )
    loader, _, _ = build_train_loader(flat, processor, batch_size=4, seed=0)
    with pytest.raises(ImageReadError, match=r"cannot read image f2.jpg \(row 2\): image file is truncated"):
        next(iter(loader))
