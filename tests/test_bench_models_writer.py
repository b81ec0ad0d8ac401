"""``benchmarks/models.py``'s table and plot writers on fake timings (issue 17, item 4):
the ratios and cells come from the rows given, and ``--load`` writes both without
timing anything. No timing happens in this file."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "models.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_models", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def row(model, role, runner, ms, iqr_ms=0.5, batch=1, threads=1, pair=0, macs=500e6):
    return {"model": model, "pair": pair, "role": role, "runner": runner, "batch": batch,
            "threads": threads, "median_s": ms / 1e3, "q1_s": (ms - iqr_ms / 2) / 1e3,
            "q3_s": (ms + iqr_ms / 2) / 1e3, "macs": macs, "input_size": 224,
            "matmul_macs_per_s": 30e9, "load": [1.5, 1.75]}


FAKE = [
    row("igcv2_100", "igc", "naive", 20.0), row("igcv2_100", "igc", "optimized", 12.0),
    row("igcv2_100", "igc", "onnxruntime", 15.0),
    row("mobilenetv1_100", "peer", "naive", 10.0, macs=569e6),
    row("mobilenetv1_100", "peer", "optimized", 9.0, macs=569e6),
    row("mobilenetv1_100", "peer", "onnxruntime", 8.0, macs=569e6),
    row("igcv3_100", "igc", "naive", 64.0, batch=32, threads=2, pair=1),
    row("igcv3_100", "igc", "openvino", 48.0, batch=32, threads=2, pair=1),
    row("mobilenetv2_100", "peer", "naive", 40.0, batch=32, threads=2, pair=1),
    row("mobilenetv2_100", "peer", "openvino", 30.0, batch=32, threads=2, pair=1),
]


def test_markdown_cells_and_ratios(bench):
    text = bench.markdown(FAKE, ["header line"])
    assert text.startswith("header line\n")
    assert "| igcv2_100 | 500.0 | 20.00 (0.50) | 12.00 (0.50) | 15.00 (0.50) | - | optimized " \
           "| 1.67x |" in text
    assert "| mobilenetv1_100 | 569.0 | 10.00 (0.50) | 9.00 (0.50) | 8.00 (0.50) | - " \
           "| onnxruntime | 1.25x |" in text
    # fastest 12 / 8, then path by path: 20/10, 12/9, 15/8, and no openvino row here
    assert "| igcv2_100 / mobilenetv1_100 | 1 | 1 | 1.50 | 2.00 | 1.33 | 1.88 | - |" in text
    assert "| igcv3_100 / mobilenetv2_100 | 32 | 2 | 1.60 | 1.60 | - | - | 1.60 |" in text
    assert "load average 1.50 -> 1.75; torch.mm 30.0 GMAC/s" in text


def test_a_lower_precision_runner_is_shown_but_never_the_fastest(bench):
    rows = [*FAKE[:6], row("igcv2_100", "igc", "openvino-bf16", 5.0),
            row("mobilenetv1_100", "peer", "openvino-bf16", 4.0, macs=569e6)]
    text = bench.markdown(rows, [])
    assert "| igcv2_100 | 500.0 | 20.00 (0.50) | 12.00 (0.50) | 15.00 (0.50) | 5.00 (0.50) " \
           "| optimized | 1.67x |" in text
    # fastest float32 12 / 8 as without the bf16 rows; the bf16 column's own ratio is 5 / 4
    assert "| igcv2_100 / mobilenetv1_100 | 1 | 1 | 1.50 | 2.00 | 1.33 | 1.88 | 1.25 |" in text


def test_the_peer_comes_second_whatever_the_row_order(bench):
    text = bench.markdown(list(reversed(FAKE[:6])), [])
    assert "| igcv2_100 / mobilenetv1_100 | 1 | 1 | 1.50 |" in text


def test_plot_writes_a_png(bench, tmp_path):
    png = tmp_path / "latency.png"
    bench.plot(FAKE, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_load_writes_table_and_plot_without_timing(bench, tmp_path, monkeypatch, capsys):
    saved = tmp_path / "rows.json"
    saved.write_text(json.dumps({"header": ["`uptime` before: load average: 1.50"],
                                 "rows": FAKE}))
    monkeypatch.setattr(bench, "measure", None)  # calling it would fail the test
    out, png = tmp_path / "t.md", tmp_path / "p.png"
    bench.main(["--load", str(saved), "--out", str(out), "--plot", str(png)])
    assert "| igcv2_100 / mobilenetv1_100 | 1 | 1 | 1.50 |" in out.read_text()
    assert "`uptime` before" in out.read_text() and png.exists()
    assert out.read_text() in capsys.readouterr().out


def test_unavailable_runners_are_one_line_each(bench, monkeypatch):
    monkeypatch.setattr(bench.importlib.util, "find_spec", lambda name: None)
    keep, notes = bench.available(["naive", "fused", "openvino", "onnxruntime"])
    assert keep[0] == "naive" and "openvino" not in keep and "onnxruntime" not in keep
    assert any(n.startswith("openvino runner skipped") for n in notes)
    assert all("\n" not in n for n in notes)
