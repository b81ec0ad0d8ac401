"""The paper's reported numbers (igc/models/paper_results.toml) parse and are well formed."""

from __future__ import annotations

import math
import re
from collections import Counter

import pytest

from igc.models.paper import PAPER_DATASETS, TABLES, paper_reference, paper_rows

CIFAR_RE = re.compile(r"^(xception|igcv1|igcv2|igcv2star)_c(\d+)_d(\d+)(_tiny)?$")
EIGHT_LAYER_RE = re.compile(r"^(xception|igcv1|igcv2|igcv2i|igcv2ii)_8l_c(\d+)$")
IMAGENET_RE = re.compile(
    r"^(?:(?:igcv2|mobilenetv1)_(?:100|050|025)|(?:igcv3|mobilenetv2)_(?:100|070))$"
)

ROWS_PER_TABLE = {"2": 12, "3": 18, "4": 12, "5": 18, "6": 12, "7": 36, "9": 6, "11": 6}
ALLOWED_FIELDS = {
    "table", "network", "model", "dataset", "depth", "width", "scope", "params", "macs",
    "top1", "top1_std", "error", "approx", "note",
}  # fmt: skip


def _one(model: str, table: str, dataset: str) -> dict:
    rows = paper_rows(model=model, table=table, dataset=dataset)
    assert len(rows) == 1, rows
    return rows[0]


def test_every_row_is_well_formed():
    rows = paper_rows()
    assert len(rows) == sum(ROWS_PER_TABLE.values())
    for row in rows:
        assert set(row) <= ALLOWED_FIELDS, row
        for field in ("table", "network", "dataset", "scope", "params", "top1"):
            assert field in row, (field, row)
        assert row["table"] in TABLES
        assert row["dataset"] in PAPER_DATASETS
        assert row["scope"] in ("network", "block")
        assert (row["scope"] == "block") == (row["table"] in ("2", "5"))
        assert isinstance(row["params"], int | float) and row["params"] > 0
        if "macs" in row:
            assert isinstance(row["macs"], int | float) and row["macs"] > 0
        assert 0 < row["top1"] < 100
        if "top1_std" in row:
            assert 0 <= row["top1_std"] < 5
        if "error" in row:
            assert math.isclose(row["top1"] + row["error"], 100.0, abs_tol=1e-9)
        if "depth" in row:
            assert isinstance(row["depth"], int) and row["depth"] > 0


def test_all_tables_present_with_their_row_counts():
    assert Counter(row["table"] for row in paper_rows()) == ROWS_PER_TABLE
    for table, n in ROWS_PER_TABLE.items():
        assert len(paper_rows(table=table)) == n
        assert len(paper_rows(table=int(table))) == n


def test_model_names_follow_the_convention():
    for row in paper_rows():
        model = row.get("model")
        if model is None:
            assert row["table"] == "7", row  # other authors' networks only
            continue
        if m := CIFAR_RE.match(model):
            depth = int(m.group(3))
            assert (depth - 2) % 3 == 0 and depth == row["depth"], row
            assert bool(m.group(4)) == (row["dataset"] == "tiny-imagenet"), row
            assert row["dataset"] in ("cifar10", "cifar100", "tiny-imagenet")
        elif m := EIGHT_LAYER_RE.match(model):
            assert row["table"] in ("2", "5") and row["depth"] == 8, row
            assert int(m.group(2)) == row["width"], row
        else:
            assert IMAGENET_RE.match(model), model
            assert row["dataset"] == "imagenet", row
    # Table 7's only own network
    assert {r.get("model") for r in paper_rows(table=7)} == {
        None, "igcv2star_c416_d20", "igcv2star_c416_d20_tiny",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("model", "table", "dataset", "params", "macs", "top1", "std"),
    [
        ("igcv2_100", "9", "imagenet", 4_100_000, 564_000_000, 70.7, None),
        ("mobilenetv1_025", "9", "imagenet", 500_000, 41_000_000, 50.6, None),
        ("igcv3_100", "11", "imagenet", 3_500_000, 320_000_000, 72.2, None),
        ("igcv3_070", "11", "imagenet", 2_000_000, 170_000_000, 68.46, None),
        ("igcv2star_c216_d20", "3", "cifar100", 320_000, 76_000_000, 75.35, 0.56),
        ("igcv1_c150_d20_tiny", "3", "tiny-imagenet", 790_000, 172_000_000, 60.73, 0.50),
        ("xception_c35_d26", "4", "cifar100", 223_000, 35_500_000, 72.48, 0.18),
        ("igcv2_c80_d20", "6", "cifar100", 144_000, 32_000_000, 72.63, 0.07),
        ("igcv2_8l_c144", "2", "cifar10", 4700, 4_800_000, 89.12, 0.15),
        ("igcv2ii_8l_c169", "5", "cifar100", 6000, 6_100_000, 66.00, 0.78),
    ],
)
def test_spot_values(model, table, dataset, params, macs, top1, std):
    row = _one(model, table, dataset)
    assert row["params"] == params
    assert row["macs"] == macs
    assert row["top1"] == pytest.approx(top1)
    if std is None:
        assert "top1_std" not in row
    else:
        assert row["top1_std"] == pytest.approx(std)


def test_table7_errors():
    row = _one("igcv2star_c416_d20", "7", "cifar100")
    assert row["error"] == pytest.approx(22.95)
    assert row["top1"] == pytest.approx(77.05)
    assert row["params"] == 650_000 and "macs" not in row
    wrn = [r for r in paper_rows(table=7) if r["network"].startswith("WRN-32-4")]
    assert {r["dataset"]: r["error"] for r in wrn} == {
        "cifar10": 5.43, "cifar100": 23.55, "tiny-imagenet": 39.63,
    }  # fmt: skip


def test_paper_reference():
    # counts with multiply-adds win over Table 7 (params only); CIFAR-100 over CIFAR-10
    ref = paper_reference("igcv2star_c416_d20")
    assert ref["table"] == "3" and ref["dataset"] == "cifar100"
    assert ref["params"] == 650_000 and ref["macs"] == 152_000_000
    ref = paper_reference("igcv2_8l_c256")
    assert ref["scope"] == "block" and ref["dataset"] == "cifar100" and ref["params"] == 10_000
    ref = paper_reference("igcv2star_c304_d20_tiny")
    assert ref["dataset"] == "tiny-imagenet"
    ref = paper_reference("mobilenetv1_100")
    assert ref["table"] == "9" and ref["macs"] == 569_000_000
    assert paper_reference("igcv2star_c64_d38") is None
    assert paper_reference("no_such_model") is None


def test_rows_are_copies():
    rows = paper_rows(model="igcv3_100")
    rows[0]["params"] = -1
    assert paper_rows(model="igcv3_100")[0]["params"] == 3_500_000
    ref = paper_reference("igcv3_100")
    ref["macs"] = -1
    assert paper_reference("igcv3_100")["macs"] == 320_000_000
