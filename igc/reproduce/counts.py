"""Analytic reproduction targets from the model zoo: parameters and multiply-adds counted
from modules, each beside the paper's printed number with the difference.

Two kinds of table, both described as data in :data:`COUNT_TABLES`:

* ``block`` (Tables 2 and 5): one block of the 8-layer networks, per block at 32x32, the
  way the paper counts them (weights of the convolutions, eq. 7);
* ``zoo`` (Tables 3, 4, 6, 7, 9, 11): whole networks, counted by
  :func:`igc.analysis.count.paper_counts` the way each table counts.

:func:`count_table` computes one; :mod:`igc.reproduce.render` writes it. Networks are built
on the ``meta`` device: shapes only, no weights to initialise, no arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import torch

from igc import create_model, list_models
from igc.analysis.count import paper_block_counts, paper_counts
from igc.layers.blocks import IGCBlock
from igc.models.paper import paper_rows
from igc.reproduce.report import relative
from igc.reproduce.sweeps import S
from igc.sparsity import KernelProduct


@dataclass(frozen=True)
class CountTable:
    """One counted table of the paper: which kind, and how the document presents it."""

    table: str  # the paper's table number ("2", "3", ...)
    kind: str  # "block" or "zoo"
    title: str
    intro: str
    notes: tuple[str, ...] = ()  # extra notes after the computed ones


#: Every counted table: the prose is data, the numbers are counted.
COUNT_TABLES: dict[str, CountTable] = {t.table: t for t in (
    CountTable(
        "2", "block", "Table 2: per-block parameters and FLOPs (Xception vs IGCV2)",
        "Table 2's '#Params / FLOPs' column is per block: Xception C64 has 9x64 + 64^2 = "
        "4,672 (≈4,700) weights and IGCV2 C144 9x144 + 2x144x12 = 4,752; FLOPs are "
        "multiply-adds of one block on a 32x32 map. Ours are counted from the block modules."),
    CountTable(
        "5", "block", "Table 5: per-block parameters and FLOPs (IGCV1 vs IGCV2-I vs IGCV2-II)",
        "IGCV1: group 3x3 with branches of 2 channels + group 1x1 with 2 branches; IGCV2-I: "
        "the same group 3x3 (K_1 = 2) then two group 1x1 (K = 7/9/11); IGCV2-II: channel-wise "
        "3x3 then two group 1x1 (K = 10/13/16). Counts per block, multiply-adds at 32x32."),
    CountTable(
        "3", "zoo", "Table 3: Xception vs IGCV1 vs IGCV2* at depth 20 (counts)",
        "The networks of Table 1 at D = 20 with CIFAR-100's 100-way classifier on 32x32 "
        "inputs. The paper gives one count per network for CIFAR-100 and Tiny ImageNet; we "
        "compare the CIFAR-100 network."),
    CountTable(
        "4", "zoo", "Table 4: Xception C35 vs IGCV2 C64 at depths 8, 20, 26 (counts)",
        "IGCV2 (C64) uses K_s = 8, 16, 32 in the three stages (8^2 = 64, 16^2 = 128, 32^2 = "
        "1024: only the first stage is exactly complementary)."),
    CountTable(
        "6", "zoo", "Table 6: IGCV1 C48 vs IGCV2 C80 at depths 8, 20, 26 (counts)",
        "IGCV2 (C80) uses K_s = 10, 16, 20 in the three stages; multiply-adds in Table 6 are "
        "printed in units of 10^7."),
    CountTable(
        "7", "zoo", "Table 7: IGCV2*-C416, the small-model entry (counts)",
        "Table 7 prints only the parameters of IGCV2*-C416 (D = 20) beside other authors' "
        "networks."),
    CountTable(
        "9", "zoo", "Tables 8-9: IGCV2-alpha vs MobileNetV1-alpha on ImageNet (counts)",
        "The networks of Table 8 at 224x224 with a 1000-way classifier; five 1024->1024 "
        "blocks (SPEC: the extracted 'x10' is read as 5, which reproduces MobileNetV1's "
        "structure)."),
    CountTable(
        "11", "zoo", "Tables 10-11: IGCV3-alpha vs MobileNetV2-alpha on ImageNet (counts)",
        "The networks of Table 10 at 224x224 with a 1000-way classifier.",
        ("Cross-check: the independent PyTorch port pytorchcv counts IGCV3-1.0 at 3,491,688 "
         "parameters and 340.79M multiply-adds, beside the paper's 3.5M / 320M.",)),
)}

#: How precisely each table prints its counts: (params unit, multiply-adds unit). A count is
#: "within rounding" when it is within half a unit of the printed number.
PRINT_UNITS = {
    "3": (10_000, 1_000_000),  # 0.44 (x M), 0.67 (x 10^8)
    "4": (1_000, 100_000),  # 0.056 (x M), 0.095 (x 10^8)
    "6": (1_000, 100_000),  # 0.046 (x M), 1.00 (x 10^7)
    "7": (10_000, None),  # 0.65 (M)
    "9": (100_000, 1_000_000),  # 4.2 (M), 569 (M)
    "11": (100_000, 1_000_000),  # 3.4 (M), 300 (M)
}

#: The group 1x1 branch size of each IGCV2 / IGCV2-I / IGCV2-II block of Tables 2 and 5.
BLOCK_K = {144: 12, 256: 16, 361: 19, 98: 7, 162: 9, 242: 11, 100: 10, 169: 13}


@cache
def zoo_counts(model: str) -> dict:
    """Counts of zoo network ``model`` by :func:`igc.analysis.count.paper_counts`: the whole
    network as built (``params``, ``macs``) and the way the paper's table counts
    (``params_counted``, ``macs_counted``, ``convention``)."""

    with torch.device("meta"):
        net = create_model(model)
    return paper_counts(model, net)


@cache
def block_counts(model: str) -> tuple[int, int]:
    """``(weights, multiply-adds at 32x32)`` of the first block of zoo network ``model``,
    counted by :func:`igc.analysis.count.paper_block_counts` as Tables 2 and 5 count."""

    with torch.device("meta"):
        net = create_model(model)
    block = next(m for m in net.modules() if isinstance(m, IGCBlock))
    weights, macs = paper_block_counts(block, 32)
    return int(weights), int(macs)


# ------------------------------------------------------------------------- block tables

@dataclass
class BlockRow:
    """One block of Table 2 or 5: ours (eq. 7 and counted) beside the paper's cell."""

    model: str
    network: str
    width: int
    branch_sizes: list[int]  # K_1..K_L; K_1 is the 3x3's channels per branch
    formula: int  # eq. 7
    params: int  # counted from the module
    macs: int
    paper_params: int
    paper_macs: int
    params_diff_pct: float | None
    macs_diff_pct: float | None
    condition: str


def block_sizes(model: str, width: int) -> tuple[int, ...]:
    """``K_1..K_L`` of a Table 2/5 block: IGCV1 and IGCV2-I have a group 3x3 with branches
    of 2 channels; IGCV1's 1x1 has 2 branches of C/2 channels."""
    family = model.split("_")[0]
    if family == "xception":
        return (1, width)
    if family == "igcv1":
        return (2, width // 2)
    k = BLOCK_K[width]
    return (2 if family == "igcv2i" else 1, k, k)


def block_rows(table: str) -> list[BlockRow]:
    """The blocks of Table 2 or 5, counted."""
    rows = []
    for paper in paper_rows(table=table, dataset="cifar10"):
        name, c = paper["model"], paper["width"]
        sizes = block_sizes(name, c)
        weights, macs = block_counts(name)
        rows.append(BlockRow(
            name, paper["network"], c, list(sizes), c * S * sizes[0] + c * sum(sizes[1:]),
            weights, macs, paper["params"], paper["macs"], relative(weights, paper["params"]),
            relative(macs, paper["macs"]), KernelProduct.from_branch_sizes(c, sizes, S).condition))
    return rows


# --------------------------------------------------------------------------- zoo tables

@dataclass
class ZooRow:
    """One network of a zoo table: our counts beside the paper's, within its rounding?"""

    model: str
    networks: list[str]  # the paper's labels of this network (one per row it appears in)
    depth: int | None
    dataset: str
    params: int  # counted the paper's way
    macs: int
    all_params: int  # every parameter of the module
    convention: str
    paper_params: int
    paper_macs: int | None
    params_diff_pct: float | None
    macs_diff_pct: float | None
    params_within: str  # "yes" | "no" | "—"
    macs_within: str


def within(ours: int, paper: int | None, unit: int | None) -> str:
    """"yes" when ``ours`` is within half a printed ``unit`` of ``paper``."""
    if paper is None or unit is None:
        return "—"
    return "yes" if abs(ours - paper) <= unit / 2 else "no"


def zoo_rows(table: str) -> tuple[list[ZooRow], list[str]]:
    """The networks of a zoo table, counted, and the names the zoo does not have."""
    known = set(list_models())
    unit_p, unit_m = PRINT_UNITS[table]
    rows: list[ZooRow] = []
    missing: list[str] = []
    seen: dict[str, ZooRow] = {}
    for paper in paper_rows(table=table):
        name = paper.get("model")
        if not name or "params" not in paper or paper["dataset"] == "tiny-imagenet":
            continue
        if name not in known:
            missing.append(name)
            continue
        if name in seen:  # one count per network; later rows only add their labels
            seen[name].networks.append(paper["network"])
            continue
        counts = zoo_counts(name)
        params, macs = counts["params_counted"], counts["macs_counted"]
        paper_m = paper.get("macs")
        row = ZooRow(name, [paper["network"]], paper.get("depth"), paper["dataset"], params,
                     macs, counts["params"], counts["convention"], paper["params"], paper_m,
                     relative(params, paper["params"]), relative(macs, paper_m),
                     within(params, paper["params"], unit_p), within(macs, paper_m, unit_m))
        seen[name] = row
        rows.append(row)
    return rows, missing


# --------------------------------------------------------------------------- the result

@dataclass
class CountResult:
    """A counted table: its description and rows (``missing``: zoo names not built)."""

    spec: CountTable
    rows: list[BlockRow] | list[ZooRow]
    missing: list[str]


def count_table(table: str) -> CountResult:
    """Count the networks of the paper's table ``table`` (a key of :data:`COUNT_TABLES`)."""
    spec = COUNT_TABLES[table]
    if spec.kind == "block":
        return CountResult(spec, block_rows(table), [])
    rows, missing = zoo_rows(table)
    return CountResult(spec, rows, missing)
