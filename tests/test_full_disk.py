"""A full disk in each command that writes: one `error:` line naming what was not written and what
is intact, nothing half-written left behind, and (where it resumes) the same command finishes later.

The disk fills inside the real code paths: the library call that writes the bytes raises ENOSPC
after writing part of them, as it would on a full device.
"""

import errno
import logging
import os
import shutil

import pytest
from app_fixtures import save_tiny_amfmn, synth_images

from rs_retrieval.cli import main


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("error: ")
    return err[-1]


@pytest.fixture(scope="module")
def model_and_images(tmp_path_factory):
    root = tmp_path_factory.mktemp("full_disk")
    return save_tiny_amfmn(root / "model"), synth_images(root / "synth", num_images=4)


def test_export_onnx(model_and_images, tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnxruntime")
    import torch

    model, _ = model_and_images

    def partial_then_full(module, args, path, **kwargs):
        with open(path, "wb") as handle:
            handle.write(b"\0" * 100)
        disk_full()

    monkeypatch.setattr(torch.onnx, "export", partial_then_full)
    out = tmp_path / "onnx"
    assert main(["export", "onnx", "--model", str(model), "--out", str(out)]) == 2
    assert (
        error_line(capsys)
        == f"error: no space left on the device to write {out.resolve()}; no partial folder was left"
    )
    assert not list(tmp_path.iterdir())


def test_index_build_keeps_what_was_encoded_and_finishes_later(model_and_images, tmp_path, monkeypatch, capsys):
    import pyarrow.parquet as pq

    model, images = model_and_images
    out = tmp_path / "index"
    argv = ["index", "build", "--images", str(images), "--out", str(out), "--model", str(model)]
    monkeypatch.setattr(pq, "write_table", disk_full)
    assert main(argv) == 2
    assert error_line(capsys) == (
        f"error: no space left on the device to write the index {out}; no index was published; "
        "what was encoded is kept: run the same build again once there is space"
    )
    monkeypatch.undo()
    assert main(argv) == 0
    assert "encoded 0" in capsys.readouterr().out.replace(",", "")  # nothing encoded twice


def test_search_cache_warns_and_the_results_still_come(model_and_images, tmp_path, monkeypatch, capsys, caplog):
    model, images = model_and_images
    monkeypatch.setattr(os, "fsync", disk_full)  # the cache file's bytes never reach the disk
    cache = tmp_path / "cache"
    with caplog.at_level(logging.WARNING, logger="rs_retrieval.search.folder_search"):
        assert (
            main(
                [
                    "search",
                    "planes",
                    "--images",
                    str(images),
                    "--model",
                    str(model),
                    "--cache-dir",
                    str(cache),
                    "--top-k",
                    "2",
                ]
            )
            == 0
        )
    assert len(capsys.readouterr().out.strip().splitlines()) >= 2
    warnings = [r.getMessage() for r in caplog.records if "no space left" in r.getMessage()]
    assert len(warnings) == 1 and str(cache) in warnings[0]
    assert warnings[0].endswith("no partial file was left; the results are complete, only the cache was not updated")
    assert not list(cache.rglob(".*.tmp"))  # no temporaries left


def tiny_synth_build(tmp_path, out) -> list[str]:
    """`rs-retrieval data build rs_synth` at 4/2/2 images of 32 px, cached under tmp_path/cache."""
    build = ["data", "build", "rs_synth", "--synth-sizes", "4", "2", "2", "--image-size", "32"]
    return [*build, "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]


def test_data_build(tmp_path, monkeypatch, capsys):
    import datasets

    monkeypatch.setattr(datasets.Dataset, "to_parquet", disk_full)
    out = tmp_path / "out"
    argv = tiny_synth_build(tmp_path, out)
    assert main(argv) == 2
    assert (
        error_line(capsys)
        == f"error: no space left on the device to write {out.resolve()}; no partial folder was left"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


def test_rs_synth_generation(tmp_path, monkeypatch, capsys):
    from PIL import Image

    monkeypatch.setattr(Image.Image, "save", disk_full)
    argv = tiny_synth_build(tmp_path, tmp_path / "out")
    assert main(argv) == 2
    line = error_line(capsys)
    assert line.startswith(
        f"error: no space left on the device to write {(tmp_path / 'cache').resolve()}"
    ) and line.endswith("; no partial folder was left")
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)
