"""The command line answers fast and speaks in one-line messages for user errors."""

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rs_retrieval.cli import build_parser, main
from rs_retrieval.errors import InputNotFoundError

SRC = Path(__file__).resolve().parents[1] / "src"


def _run_cli(*args, **env):
    environment = {**os.environ, "PYTHONPATH": str(SRC), **env}
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "rs_retrieval.cli", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )


def test_help_and_argument_errors_do_not_import_torch():
    for args, code in (
        (["--help"], 0),
        (["search", "--help"], 0),
        (["zeroshot", "classify", "--help"], 0),
        (["evaluate"], 2),
    ):
        result = _run_cli(*args)
        imported = {
            line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")
        }
        assert result.returncode == code, result.stderr[-2000:]
        assert not {"torch", "transformers", "datasets"} & imported, args


def test_user_errors_are_one_line_with_a_nonzero_exit(tmp_path, capsys):
    assert main(["search", "ships", "--images", str(tmp_path / "nowhere"), "--model", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nowhere is not a folder" in err and "Traceback" not in err
    (tmp_path / "img.png").write_bytes(b"")
    assert (
        main(
            [
                "rank-captions",
                str(tmp_path / "img.png"),
                "--captions",
                "a ship",
                " ",
                "--model",
                str(tmp_path / "typo"),
            ]
        )
        == 2
    )
    assert capsys.readouterr().err == "error: caption(s) [2] are empty; every caption needs words to be scored\n"
    assert (
        main(["rank-captions", str(tmp_path / "img.png"), "--captions", "a ship", "--model", str(tmp_path / "typo")])
        == 2
    )
    assert capsys.readouterr().err == f"error: model folder {tmp_path / 'typo'} does not exist\n"


def test_input_errors_come_before_torch_is_imported(tmp_path):
    for args in (
        ["search", "ships", "--images", str(tmp_path / "nowhere"), "--model", "m"],
        ["rank-captions", str(tmp_path / "no.png"), "--captions", "a", "--model", "m"],
    ):
        result = _run_cli(*args)
        imported = {
            line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")
        }
        assert (
            result.returncode == 2 and result.stderr.splitlines()[-1].startswith("error: ") and "torch" not in imported
        )


def test_debug_flag_and_environment_show_the_traceback(tmp_path, monkeypatch):
    args = ["search", "ships", "--images", str(tmp_path / "nowhere"), "--model", str(tmp_path)]
    with pytest.raises(InputNotFoundError):
        main(["--debug", *args])
    monkeypatch.setenv("RS_RETRIEVAL_DEBUG", "1")
    with pytest.raises(InputNotFoundError):
        main(args)


def test_every_model_command_uses_one_device_rule():
    parser = build_parser()
    for argv in (
        ["search", "q", "--images", "x", "--model", "m"],
        ["rank-captions", "i", "--model", "m"],
        ["evaluate", "--model", "m", "--dataset", "d"],
    ):
        assert (
            parser.parse_args(argv).device is None
        )  # resolved by pretrained.resolve_device: cuda if available, else cpu


def test_old_command_spellings_work_with_a_warning_and_are_not_listed(capsys):
    """`classify` and `evaluate-zeroshot` became `zeroshot classify|evaluate` (one noun, its verbs)."""
    commands = build_parser()._subparsers._group_actions[0].choices
    assert {"zeroshot", "rank-captions", "recipes"} <= set(commands) and not {"classify", "evaluate-zeroshot"} & set(
        commands
    )
    assert set(commands["zeroshot"]._subparsers._group_actions[0].choices) == {"classify", "evaluate"}
    for old, new in (("classify", "zeroshot classify"), ("evaluate-zeroshot", "zeroshot evaluate")):
        with pytest.raises(SystemExit) as exit_info:
            main(["--debug", old, "--help"])
        printed = capsys.readouterr()
        assert exit_info.value.code == 0 and printed.out.startswith(f"usage: rs-retrieval {new} [-h]")
        assert printed.err == f"warning: 'rs-retrieval {old}' is deprecated; use 'rs-retrieval {new}'\n"
    listed = re.search(r"\{([a-z,-]+)\}", build_parser().format_help()).group(1).split(",")
    assert "zeroshot" in listed and "classify" not in listed and "evaluate-zeroshot" not in listed


def test_convert_set_values_are_yaml_like_train():
    parser = build_parser()
    args = parser.parse_args(
        [
            "convert",
            "--method",
            "galr",
            "--checkpoint",
            "c",
            "--out",
            "o",
            "--set",
            "mca_heads=8",
            "--set",
            "gcn_dims=[6, 3]",
            "--set",
            "flag=yes",
        ]
    )
    assert dict(args.overrides) == {"mca_heads": 8, "gcn_dims": [6, 3], "flag": True}


def test_outputs_follow_the_umask(tmp_path):
    from rs_retrieval.fileio import atomic_directory, write_json_atomic

    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "a.json", {"x": 1})
        folder = atomic_directory(tmp_path / "out", lambda work: (work / "f.txt").write_text("x"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755


def test_contact_sheet_title_is_truncated(tmp_path):
    from rs_retrieval.search import make_contact_sheet

    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "a.png")
    sheet = make_contact_sheet(" ".join(["harbour"] * 10_000), [(tmp_path / "a.png", 1.0)], tmp_path / "sheet.png")
    with Image.open(sheet) as image:
        assert image.height < 400


def test_output_into_a_closed_pipe_ends_quietly():
    """`rs-retrieval recipes | head -1`: the reader is gone before the listing is written."""
    environment = {**os.environ, "PYTHONPATH": str(SRC)}
    process = subprocess.Popen(
        [sys.executable, "-m", "rs_retrieval.cli", "recipes"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment,
    )
    process.stdout.close()  # no reader: every write of the child fails with EPIPE
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 1 and b"Traceback" not in stderr and b"BrokenPipeError" not in stderr, (
        stderr.decode()[-2000:]
    )
