import random

import numpy as np
import pytest
import torch
from PIL import Image

from rs_retrieval.models.common.processing import IMAGENET_MEAN, IMAGENET_STD, RSImageProcessor


def _image(size=40, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def test_eval_preprocess_matches_hand_computation():
    image = _image(40)
    processor = RSImageProcessor(size=32)
    pixel_values = processor.preprocess([image, image])["pixel_values"]
    assert pixel_values.shape == (2, 3, 32, 32) and pixel_values.dtype == torch.float32
    resized = np.asarray(image.resize((32, 32), Image.BILINEAR), dtype=np.float32) / 255.0
    expected = (resized - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(pixel_values[0].permute(1, 2, 0).numpy(), expected, atol=1e-5)


def test_preprocess_accepts_grey_arrays_and_tensors():
    processor = RSImageProcessor(size=16)
    grey = Image.fromarray(np.full((20, 20), 128, dtype=np.uint8), mode="L")
    array = np.full((20, 20, 3), 128, dtype=np.uint8)
    tensor = torch.full((3, 20, 20), 128, dtype=torch.uint8)
    out = processor.preprocess([grey, array, tensor])["pixel_values"]
    assert torch.allclose(out[0], out[1]) and torch.allclose(out[1], out[2])
    with pytest.raises(TypeError, match="PIL image"):
        processor.preprocess([{"not": "an image"}])


def test_eval_path_never_augments():
    processor = RSImageProcessor(size=32, train_resize=40, train_rotation_degrees=90, train_hflip=True)
    image = _image(40)
    first = processor.preprocess(image)["pixel_values"]
    assert all(torch.equal(first, processor.preprocess(image)["pixel_values"]) for _ in range(3))
    random.seed(0)
    trained = processor.preprocess(image, train=True)["pixel_values"]
    assert trained.shape == first.shape and not torch.equal(trained, first)


def test_amfmn_style_augment_is_a_crop_of_the_resized_image():
    processor = RSImageProcessor(size=32, train_resize=40)
    image = _image(40)
    view = np.asarray(processor.augment(image, random.Random(3)))
    source = np.asarray(image)
    matches = [
        (top, left)
        for top in range(9)
        for left in range(9)
        if np.array_equal(source[top : top + 32, left : left + 32], view)
    ]
    assert len(matches) == 1


def test_rotation_fills_black_corners_and_hflip_mirrors():
    rotated = RSImageProcessor(size=64, train_rotation_degrees=90).augment(
        Image.new("RGB", (64, 64), "white"), random.Random(1)
    )
    corners = np.asarray(rotated)[[0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners == 0).all(axis=1).any()  # rotated by a non-multiple of 90 degrees -> black corners
    image = _image(16)
    flip = RSImageProcessor(size=16, train_hflip=True)
    views = {np.asarray(flip.augment(image, random.Random(seed))).tobytes() for seed in range(10)}
    assert views == {np.asarray(image).tobytes(), np.asarray(image)[:, ::-1].tobytes()}


def test_random_resized_crop_and_randaugment_produce_target_size():
    processor = RSImageProcessor(
        size=24, resample="bicubic", train_scale=(0.5, 1.0), train_hflip=True, train_randaugment=(2, 7)
    )
    for seed in range(5):
        assert processor.augment(_image(50, seed), random.Random(seed)).size == (24, 24)


def test_bad_resample_rejected():
    with pytest.raises(ValueError, match="resample"):
        RSImageProcessor(resample="lanczos-ish")
