"""``igc reproduce``'s statistics and data files: the t distribution against published
tables and closed forms, Welch's interval against known examples, the verdict rule, the
paper's claims (``claims.toml``) and the budgets (``budgets.toml``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from igc.errors import IGCError
from igc.reproduce import stats, sweeps
from igc.reproduce.arms import SPECS, Arm, arms_for
from igc.reproduce.budgets import budgets, get_budget, parse_budgets
from igc.reproduce.claims import Claim, check_claim, claims, parse_claims

# ------------------------------------------------------------------ the t distribution

#: Two-sided 95 % (p = 0.975), 90 % (0.95) and 99 % (0.995) critical values of Student's t,
#: as printed in every statistics textbook's t table (three decimals).
T_TABLE = [(0.975, 1, 12.706), (0.975, 2, 4.303), (0.975, 3, 3.182), (0.975, 4, 2.776),
           (0.975, 5, 2.571), (0.975, 10, 2.228), (0.975, 20, 2.086), (0.975, 30, 2.042),
           (0.975, 120, 1.980), (0.95, 1, 6.314), (0.95, 5, 2.015), (0.95, 10, 1.812),
           (0.995, 10, 3.169), (0.995, 3, 5.841)]


@pytest.mark.parametrize("p, df, value", T_TABLE)
def test_t_quantile_matches_the_t_table(p, df, value):
    assert stats.t_quantile(p, df) == pytest.approx(value, abs=5e-4)
    assert stats.t_quantile(1 - p, df) == pytest.approx(-value, abs=5e-4)


def test_t_quantile_tends_to_the_normal():
    assert stats.t_quantile(0.975, math.inf) == pytest.approx(1.959964, abs=1e-6)
    assert stats.t_quantile(0.975, 1e7) == pytest.approx(1.959964, abs=1e-5)
    assert stats.t_quantile(0.5, 3.7) == 0.0


@settings(max_examples=60, deadline=None)
@given(st.floats(-60, 60))
def test_t_cdf_closed_forms(t):
    # df = 1 is the Cauchy distribution, df = 2 has an algebraic CDF
    assert stats.t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-12)
    assert stats.t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.floats(0.001, 0.999), st.floats(0.5, 1000))
def test_t_quantile_inverts_the_cdf(p, df):
    q = stats.t_quantile(p, df)
    assert stats.t_cdf(q, df) == pytest.approx(p, abs=1e-9)
    assert stats.t_cdf(-q, df) == pytest.approx(1 - p, abs=1e-9)


def test_bad_arguments_raise():
    for call in (lambda: stats.t_quantile(1.0, 3), lambda: stats.t_quantile(0.5, 0),
                 lambda: stats.t_cdf(1.0, -1), lambda: stats.welch([1.0], [1.0, 2.0]),
                 lambda: stats.betainc(1, 1, 1.5)):
        with pytest.raises(ValueError):
            call()


# ------------------------------------------------------------------ Welch's interval

def test_welch_on_the_textbook_example():
    # Welch's t-test, Wikipedia "Examples", first pair: t = -2.46, nu = 24.99;
    # the interval as scipy.stats.ttest_ind(equal_var=False).confidence_interval() gives it
    a = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7,
         21.4]
    b = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5,
         24.4]
    w = stats.welch(a, b)
    assert w.diff / w.se == pytest.approx(-2.46, abs=0.005)
    assert w.df == pytest.approx(24.99, abs=0.01)
    assert (w.low, w.high) == (pytest.approx(-3.98410, abs=1e-4),
                               pytest.approx(-0.34924, abs=1e-4))
    assert stats.verdict(w) == stats.CONTRADICTS  # "a beats b" is contradicted


def test_welch_with_equal_spreads_is_students_interval():
    # equal variances and sizes: Welch's df is exactly 2 (n - 1) = 4, and the interval
    # is diff +- t(0.975, 4) * sqrt(2 s^2 / n), s^2 = 0.28 / 3
    w = stats.welch([90.1, 90.5, 89.9], [89.0, 89.6, 89.2])
    assert w.df == pytest.approx(4.0, abs=1e-9)
    half = 2.776 * math.sqrt(2 * (0.28 / 3) / 3)
    assert w.diff == pytest.approx(0.9)
    assert w.low == pytest.approx(0.9 - half, abs=1e-3)
    assert w.high == pytest.approx(0.9 + half, abs=1e-3)
    assert stats.verdict(w) == stats.AGREES


@pytest.mark.parametrize("a, b, expected", [
    ([80.0, 80.2, 80.1], [79.0, 79.1, 79.2], stats.AGREES),
    ([79.0, 79.1, 79.2], [80.0, 80.2, 80.1], stats.CONTRADICTS),
    ([80.0, 81.0, 79.0], [80.1, 79.5, 80.6], stats.UNRESOLVED),
    ([80.0, 80.0], [79.0, 79.0], stats.UNRESOLVED),  # no spread: no interval
])
def test_verdicts(a, b, expected):
    assert stats.verdict(stats.welch(a, b)) == expected


def test_verdict_without_interval_is_untested():
    assert stats.verdict(None) == stats.UNTESTED


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 100), min_size=2, max_size=6),
       st.lists(st.floats(0, 100), min_size=2, max_size=6))
@example([0.0, 0.0], [0.0, 1.0524558120616256e-83])  # variance underflows when squared
def test_welch_interval_is_symmetric_and_antisymmetric(a, b):
    w, v = stats.welch(a, b), stats.welch(b, a)
    if w.se > 0:
        assert w.low <= w.diff <= w.high
        assert w.high - w.diff == pytest.approx(w.diff - w.low, rel=1e-9, abs=1e-9)
        assert (v.low, v.high) == (pytest.approx(-w.high, abs=1e-9),
                                   pytest.approx(-w.low, abs=1e-9))


# ------------------------------------------------------------------------- the claims

@dataclass
class FakeResult:
    """Stands in for an ``empirical.ArmResult``."""

    label: str
    top1: list[float] = field(default_factory=list)

    @property
    def mean(self):
        return stats.mean_std(self.top1)[0]

    @property
    def arm(self):
        return Arm(self.label, self.label, "m", "f")


def test_a_pairwise_claim_is_tested_with_welch():
    claim = Claim("table2", ("b",), ("a",), "b beats a", "Table 2", "cifar100")
    results = {"a": FakeResult("a", [70.0, 71.0, 70.5]), "b": FakeResult("b", [72.0, 72.4, 71.9])}
    test = check_claim(claim, results, {"a": 60.0, "b": 62.5})
    assert test.verdict == stats.AGREES and test.paper_diff == pytest.approx(2.5)
    assert test.interval.diff == pytest.approx(72.1 - 70.5)
    results["b"].top1 = [69.0, 69.5, 69.2]
    assert check_claim(claim, results).verdict == stats.CONTRADICTS
    results["b"].top1 = [72.0]
    assert check_claim(claim, results).verdict == stats.UNTESTED
    results["b"].top1 = []
    assert check_claim(claim, results).verdict == stats.NOT_RUN
    assert check_claim(claim, {"a": results["a"]}) is None  # not trained at this budget


def test_a_set_claim_compares_the_best_of_each_side():
    claim = Claim("figure3", ("interior",), ("ends",), "inside", "Figure 3")
    results = {f"L{n}": FakeResult(f"L{n}", [v, v + 0.1, v - 0.1])
               for n, v in ((2, 80.0), (3, 85.0), (4, 86.0), (5, 81.0))}
    test = check_claim(claim, results)
    assert (test.better.label, test.worse.label) == ("L4", "L5")
    assert test.verdict == stats.AGREES


def test_the_shipped_claims_name_real_networks():
    shipped = claims()
    assert {c.target for c in shipped} <= set(SPECS)
    full = get_budget("full")
    for c in shipped:
        ids = [a.id for a in arms_for(c.target, full)]
        for x in (*c.better, *c.worse):
            assert x in ids or x in ("interior", "ends"), (c.claim, x)
    medium = [c for c in shipped if all(
        x in [a.id for a in arms_for(c.target, get_budget("medium"))]
        for x in (*c.better, *c.worse))]
    # the orderings issue 10 asks the medium budget to test
    pairs = {(c.better, c.worse) for c in medium}
    assert {(("igcv2_c64_d8",), ("xception_c35_d8",)), (("igcv2_c80_d8",), ("igcv1_c48_d8",)),
            (("igcv2_8l_c144",), ("xception_8l_c64",))} <= pairs
    assert any(c.target == "figure2" for c in medium)


def test_figure2_claims_agree_with_the_computed_colours():
    # "the best K is the red one or next to it": the better side must be exactly the red
    # bar of the panel and its neighbours, as the sweep computes them
    points = sweeps.figure2_points()
    for c in claims():
        if c.target != "figure2" or len(c.better) == 1:
            continue
        layers = int(c.better[0].split("-")[0][1:])
        panel = [p for p in points if p.layers == layers]
        red = next(i for i, p in enumerate(panel) if p.colour == "red")
        near = {f"L{layers}-K{p.branch}" for i, p in enumerate(panel) if abs(i - red) <= 1}
        assert set(c.better) == near
        assert set(c.worse) == {f"L{layers}-K{p.branch}" for p in panel} - near


@pytest.mark.parametrize("text, message", [
    ("[[claim]]\ntarget = 'table2'\nbetter = ['a']\nworse = ['b']\nclaim = 'x'\nwhere = 'y'\n"
     "colour = 1\n", "unknown key"),
    ("[[claim]]\ntarget = 'table9'\nbetter = ['a']\nworse = ['b']\nclaim = 'x'\nwhere = 'y'\n",
     "unknown empirical target"),
    ("[[claim]]\ntarget = 'table2'\nbetter = ['a']\nworse = ['a']\nclaim = 'x'\nwhere = 'y'\n",
     "both sides"),
    ("[[claim]]\ntarget = 'table2'\nbetter = []\nworse = ['b']\nclaim = 'x'\nwhere = 'y'\n",
     "non-empty list"),
    ("[[claim]]\ntarget = 'table2'\nbetter = ['a']\nworse = ['b']\nclaim = 'x'\nwhere = 'y'\n"
     "paper = 'mnist'\n", "paper must be"),
    ("claim = 3\n", "must hold [[claim]] tables"),
    ("[[claim\n", "not valid TOML"),
])
def test_bad_claims_files_are_one_line_errors(text, message):
    with pytest.raises(IGCError, match=message.replace("[", r"\[")) as info:
        parse_claims(text, list(SPECS))
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------- the budgets

def test_the_shipped_budgets():
    from igc.train import load_recipe

    known = budgets()
    assert list(known) == ["smoke", "short", "medium", "full"]
    for b in known.values():
        load_recipe(b.recipe)  # every budget names a shipped recipe
        assert b.figure3_budget in (sweeps.FIGURE2_BUDGET, sweeps.FIGURE3_BUDGET)
        for target in b.targets or ():
            assert target in SPECS
    medium = known["medium"]
    assert medium.seeds >= 3 and medium.train_size is None and medium.test_size is None
    assert set(medium.targets) == {"table4", "table2", "figure2"} and medium.depths == (8,)
    assert medium.figure2_panels == 1 and medium.groups == 1 and medium.eval_every == 1


@pytest.mark.parametrize("text, message", [
    ("[x]\ndescription = 'd'\nrecipe = 'cifar'\n", "lacks seeds"),
    ("[x]\ndescription = 'd'\nrecipe = 'cifar'\nseeds = 0\n", "seeds must be an integer >= 1"),
    ("[x]\ndescription = 'd'\nrecipe = 'cifar'\nseeds = 1\nepochs = true\n", "epochs must be"),
    ("[x]\ndescription = 'd'\nrecipe = 'cifar'\nseeds = 1\nepoch = 3\n", "unknown key"),
    ("[x]\ndescription = 'd'\nrecipe = 'cifar'\nseeds = 1\ndepths = [9]\n", "depths must be"),
    ("[x]\ndescription = 'd'\nrecipe = 'cifar'\nseeds = 1\nstem_stride_8l = 3\n", "1 or 2"),
    ("[x]\ndescription = ''\nrecipe = 'cifar'\nseeds = 1\n", "non-empty string"),
    ("x = 1\n", "is not a table"),
    ("", "defines no budget"),
])
def test_bad_budgets_files_are_one_line_errors(text, message):
    with pytest.raises(IGCError, match=message) as info:
        parse_budgets(text)
    assert "\n" not in str(info.value)
