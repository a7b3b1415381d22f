"""Fixtures of the trainer tests: the toy retrieval data and a saved toy processor."""

import pytest
from test_training_toy import toy_dataset_dict, toy_processor


@pytest.fixture(scope="module")
def toy_data():
    return toy_dataset_dict()


@pytest.fixture(scope="module")
def processor_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("toy") / "processor"
    toy_processor().save_pretrained(path)
    return path
