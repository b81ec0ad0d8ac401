"""``igc design`` on the command line: the issue's examples and its bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from igc.cli import main


def run_json(capsys, *argv: str) -> dict:
    assert main(["design", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_design_64_three_layers(capsys):
    out = run_json(capsys, "--channels", "64", "--layers", "3")
    assert out["branch_sizes"] == [1, 8, 8]
    assert out["params"] == 1600
    assert out["condition"] == "strict"
    assert out["min_paths"] == out["max_paths"] == 1
    assert out["alternatives"] and all(a["params"] >= 1600 for a in out["alternatives"])


def test_check_1024_loose_is_dense_with_16_paths(capsys):
    out = run_json(capsys, "--check", "--channels", "1024", "--branch-sizes", "1,128,128")
    assert out["condition"] == "dense"
    assert out["min_paths"] == out["max_paths"] == 16


def test_check_sparse_design(capsys):
    out = run_json(capsys, "--check", "--channels", "64", "--branch-sizes", "1,4,4")
    assert out["condition"] == "sparse" and out["min_paths"] == 0


def test_human_output_names_the_choice(capsys):
    assert main(["design", "--channels", "67", "--layers", "3", "--channelwise"]) == 0
    text = capsys.readouterr().out
    assert "no strictly complementary" in text and "nearby" in text


def test_draw_writes_a_png(tmp_path, capsys):
    png = tmp_path / "block.png"
    assert main(["design", "--channels", "24", "--layers", "3", "--draw", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--channels", "0"], "--channels must be at least 1"),
        (["--channels", "-4"], "--channels must be at least 1"),
        (["--channels", "6.5"], "expected an integer"),
        (["--channels", "12", "--check", "--branch-sizes", "1,5"], "does not divide"),
        (["--channels", "64", "--check", "--branch-sizes", "1,16,16", "--strict"],
         "not C=64"),
        (["--channels", "64", "--check"], "needs --branch-sizes"),
        (["--channels", "64", "--check", "--branch-sizes", "1,a"], "comma-separated"),
        (["--channels", "64", "--frobnicate"], "unrecognized arguments"),
        (["--channels", "100", "--branch-size", "8"], "does not divide"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    assert main(["design", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("igc: error:") and message in err
    assert "\n" not in err and "Traceback" not in err


def test_console_script_exit_status():
    proc = subprocess.run([sys.executable, "-m", "igc", "design", "--channels", "0"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("igc: error:") and "Traceback" not in proc.stderr
