"""What reaches the model is what a viewer shows (docs/inputs.md): EXIF orientation on every path,
transparency composited on black, tiny images warned about, every readable file kind searched and
the others named, scene strides of 0 refused."""

import logging

import numpy as np
import pytest
import torch
from clip_helpers import tiny_clip
from fixtures_data import make_release
from PIL import Image

from rs_retrieval.cli import main
from rs_retrieval.imagery import IMAGE_EXTENSIONS, image_to_array, read_image
from rs_retrieval.models.clip import as_retrieval_processor
from rs_retrieval.models.common.processing import RSImageProcessor

QUERY = "two ships in a harbour"


def exif_rotated_jpeg(path) -> np.ndarray:
    """A JPEG stored 128 x 64 with EXIF orientation 6 (as phones and drones write them); returns
    the upright 64 x 128 pixels a viewer shows."""
    stored = np.zeros((64, 128, 3), np.uint8)
    stored[:, :40] = 255
    stored[:16, :, 0] = 200
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(path, exif=exif.tobytes(), quality=95)
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").transpose(Image.Transpose.ROTATE_270))


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    """A tiny random CLIP saved as a plain transformers folder (the CLI loads it in any process)."""
    folder = tmp_path_factory.mktemp("clip") / "model"
    model, processor = tiny_clip(seed=3)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def search_scores(capsys, folder, model, tmp_path) -> dict[str, float]:
    assert (
        main(
            [
                "search",
                QUERY,
                "--images",
                str(folder),
                "--model",
                str(model),
                "--top-k",
                "50",
                "--cache-dir",
                str(tmp_path / "cache"),
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()[1:]
    return {line.split()[2].rsplit("/", 1)[-1]: float(line.split()[1]) for line in lines}


def test_read_image_and_pil_images_are_upright(tmp_path):
    upright = exif_rotated_jpeg(tmp_path / "drone.jpg")
    assert upright.shape == (128, 64, 3)
    assert np.array_equal(read_image(tmp_path / "drone.jpg"), upright)
    with Image.open(tmp_path / "drone.jpg") as image:  # a PIL image handed in by a user
        assert np.array_equal(image_to_array(image), upright)


def test_processors_see_the_picture_upright(tmp_path):
    upright = exif_rotated_jpeg(tmp_path / "drone.jpg")
    sideways = np.asarray(Image.open(tmp_path / "drone.jpg").convert("RGB"))
    rs = RSImageProcessor(size=32)
    expected = rs.preprocess([upright])["pixel_values"]
    assert torch.equal(rs.preprocess([str(tmp_path / "drone.jpg")])["pixel_values"], expected)
    assert torch.equal(rs.preprocess([Image.open(tmp_path / "drone.jpg")])["pixel_values"], expected)
    assert not torch.equal(rs.preprocess([sideways])["pixel_values"], expected)
    clip = as_retrieval_processor(tiny_clip()[1])
    expected = clip.image_inputs({"image": [upright]})["pixel_values"]
    for given in (str(tmp_path / "drone.jpg"), Image.open(tmp_path / "drone.jpg")):
        assert torch.equal(clip.image_inputs({"image": [given]})["pixel_values"], expected)


def test_dataset_images_are_upright_decoded_or_by_path(tmp_path):
    from rs_retrieval.data import load_dataset
    from rs_retrieval.index.sources import FileSource

    root = make_release(tmp_path / "rsicd", "rsicd")
    upright = exif_rotated_jpeg(root / "images" / "port_9.jpg")
    rs = RSImageProcessor(size=32)
    expected = rs.preprocess([upright])["pixel_values"]
    rows = load_dataset("rsicd", data_dir=root, split="test")
    row = next(r for r in rows if r["filename"] == "port_9.jpg")
    assert torch.equal(rs.preprocess([row["image"]])["pixel_values"], expected)
    source = FileSource.from_dataset("rsicd", split="test", data_dir=root)  # what `index build --dataset` encodes
    index = next(i for i, path in enumerate(source.paths) if path.name == "port_9.jpg")
    assert torch.equal(rs.preprocess(source.processor_row(index)["image"])["pixel_values"], expected)


def test_search_scores_a_rotated_jpeg_as_its_upright_twin(tmp_path, capsys, clip_folder):
    folder = tmp_path / "images"
    folder.mkdir()
    upright = exif_rotated_jpeg(folder / "drone.jpg")
    Image.fromarray(upright).save(folder / "upright.png")
    Image.fromarray(np.ascontiguousarray(np.rot90(upright))).save(folder / "sideways.png")
    scores = search_scores(capsys, folder, clip_folder, tmp_path)
    assert scores["drone.jpg"] == pytest.approx(scores["upright.png"], abs=1e-6)
    assert scores["drone.jpg"] != pytest.approx(scores["sideways.png"], abs=1e-6)


def test_every_readable_kind_is_searched_and_other_files_are_named(tmp_path, capsys, caplog, clip_folder):
    from rs_retrieval.index.sources import FileSource

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for suffix in IMAGE_EXTENSIONS:
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / f"a{suffix}")
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden").write_text("dotfiles are not reported")
    with caplog.at_level(logging.WARNING):
        scores = search_scores(capsys, folder, clip_folder, tmp_path)
    assert sorted(scores) == sorted(f"a{suffix}" for suffix in IMAGE_EXTENSIONS) and "a.gif" in scores
    left_out = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert (
        len(left_out) == 1
        and "left out 1 file(s)" in left_out[0]
        and "notes.txt" in left_out[0]
        and ".hidden" not in left_out[0]
    )
    assert sorted(p.name for p in FileSource.from_folder(folder).paths) == sorted(scores)  # `index build --images`


def test_transparent_and_tiny_images_are_reported(tmp_path, capsys, caplog, clip_folder):
    import rs_retrieval.imagery as imagery

    folder = tmp_path / "images"
    folder.mkdir()
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., :3], rgba[:, :20, 3] = 180, 255  # right half transparent
    Image.fromarray(rgba, "RGBA").save(folder / "masked.png")
    Image.fromarray(rgba[..., :3] * (rgba[..., 3:] // 255)).save(folder / "on_black.png")
    Image.new("RGB", (1, 1), (200, 30, 30)).save(folder / "dot.png")
    imagery._WARNED.discard("alpha")
    with caplog.at_level(logging.WARNING):
        scores = search_scores(capsys, folder, clip_folder, tmp_path)
    messages = " | ".join(r.getMessage() for r in caplog.records)
    assert scores["masked.png"] == pytest.approx(scores["on_black.png"], abs=1e-6)
    assert "masked.png has transparent pixels: composited on black" in messages
    assert "dot.png is only 1 x 1 pixels" in messages and "masked.png is only" not in messages


def test_scene_stride_zero_is_refused_like_tile_size_zero(tmp_path, capsys, clip_folder):
    rasterio = pytest.importorskip("rasterio")
    scene = tmp_path / "scene.tif"
    with rasterio.open(scene, "w", driver="GTiff", width=64, height=64, count=3, dtype="uint8") as dataset:
        dataset.write(np.zeros((3, 64, 64), np.uint8))
    for option, value in (("--stride", "0"), ("--tile-size", "0")):
        args = [
            "index",
            "build",
            "--scene",
            str(scene),
            option,
            value,
            "--model",
            str(clip_folder),
            "--out",
            str(tmp_path / "index"),
        ]
        assert main(args) == 2
        last = capsys.readouterr().err.splitlines()[-1]  # after the weight-loading progress bar
        assert last.startswith("error: tile size and stride must be >= 1, got") and last.endswith(" 0")
