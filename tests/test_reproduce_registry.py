"""The registry of reproduction targets (issue 21): a target is one object; a new one,
built in a registry of its own (not the shipped one), runs through compute, render, its
arms, its claims (data, keyed by its name) and the empirical pipeline."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from igc.errors import IGCError
from igc.reproduce import cache, stats
from igc.reproduce.arms import Arm, arms_for, eight_layer_args
from igc.reproduce.budgets import Budget, get_budget
from igc.reproduce.config import Config
from igc.reproduce.empirical import collect
from igc.reproduce.registry import ANALYTIC, EMPIRICAL, Registry, Target
from igc.reproduce.render_empirical import render_target
from igc.reproduce.report import Section, Table, write_section
from igc.reproduce.targets import GROUPS, REGISTRY, TARGETS


@dataclass
class Squares:
    """A toy analytic result."""

    rows: list[tuple[int, int]]


def squares(n: int = 4) -> Squares:
    return Squares([(i, i * i) for i in range(1, n + 1)])


def render_squares(r: Squares) -> Section:
    table = Table(["n", "n^2"], [[str(a), str(b)] for a, b in r.rows], "squares")
    return Section("toy-squares", "Squares", "A toy target.", [table], [], [],
                   {"rows": r.rows})


def toy_arms(budget: Budget) -> list[Arm]:
    return [Arm(name, f"IGCV2 C{width}", "igcv2_8l_c144", "igcv2", "toy",
                eight_layer_args(budget)) for name, width in (("narrow", 64), ("wide", 144))]


CLAIMS = """
[[claim]]
target = "toy-sweep"
better = ["wide"]
worse = ["narrow"]
claim = "the wide network beats the narrow one"
where = "Toy table"
"""


def toy_registry(claims: str = CLAIMS) -> Registry:
    registry = Registry(claims, "toy-claims.toml")
    registry.add(Target("toy-squares", ANALYTIC, "Toy 1", "squares of 1..4", squares,
                        render_squares))
    registry.add(Target("toy-sweep", EMPIRICAL, "Toy 2", "two toy networks", arms=toy_arms,
                        title="Toy sweep (accuracy)", intro="Two networks.", plot="pareto"))
    return registry


def test_a_new_analytic_target_computes_and_renders(tmp_path):
    registry = toy_registry()
    target = registry.get("toy-squares")
    assert target.registry is registry and target.claims() == ()
    section = target.section()
    write_section(section, tmp_path)
    text = (tmp_path / "toy-squares.md").read_text()
    assert "| 3 | 9 |" in text and "| 4 | 16 |" in text
    assert "toy-squares" not in TARGETS and "toy-sweep" not in GROUPS[EMPIRICAL]


def test_a_new_empirical_target_trains_its_arms_and_tests_its_claims(tmp_path):
    registry = toy_registry()
    target = registry.get("toy-sweep")
    assert [c.claim for c in target.claims()] == ["the wide network beats the narrow one"]
    config = Config("fashion-mnist", get_budget("smoke"), seeds=3)
    specs = cache.plan([target], config, tmp_path)
    assert [(s.target, s.arm.id, s.seed) for s in specs] == [
        ("toy-sweep", arm, seed) for seed in range(3) for arm in ("narrow", "wide")]
    top1 = {"narrow": [80.0, 80.2, 80.1], "wide": [82.0, 82.3, 82.1]}
    machine = {"cpu": "toy", "cores": 1, "device": "cpu", "torch": "x"}
    states = [cache.RunState(s, cache.DONE, {"top1": top1[s.arm.id][s.seed], "seconds": 2.0,
                                             "machine": machine, "key": s.key})
              for s in specs]
    result = collect(target, config, states)
    assert result.spec is target and result.done_runs == 6
    [test] = result.tests
    assert test.verdict == stats.AGREES
    assert test.interval.diff == pytest.approx(82.1333 - 80.1, abs=1e-3)
    section = render_target(result, "igc reproduce toy-sweep")
    assert section.target == "toy-sweep" and section.title == "Toy sweep (accuracy)"
    assert "the wide network beats the narrow one" in section.markdown(str(tmp_path))


def test_a_registry_checks_its_targets_and_claims():
    registry = toy_registry()
    with pytest.raises(IGCError, match="already exists"):
        registry.add(Target("toy-squares", ANALYTIC, "x", "y", squares, render_squares))
    with pytest.raises(IGCError, match="needs arms"):
        Target("toy-bad", EMPIRICAL, "x", "y", title="t", plot="pareto")
    with pytest.raises(IGCError, match="needs compute and render"):
        Target("toy-bad", ANALYTIC, "x", "y", squares)
    assert [t.name for t in registry.resolve(["all"])] == ["toy-squares", "toy-sweep"]
    with pytest.raises(IGCError, match="unknown reproduction target"):
        registry.resolve(["table2"])  # the shipped targets are not in it
    other = toy_registry(CLAIMS.replace('"toy-sweep"', '"table2"'))
    with pytest.raises(IGCError, match=r"empirical target of toy-claims\.toml claim 1"):
        other.claims()


def test_the_shipped_targets_are_one_registry():
    assert list(TARGETS) == GROUPS["all"] and REGISTRY.targets is not None
    for name in GROUPS[EMPIRICAL]:
        target = TARGETS[name]
        assert target.arms is not None and arms_for(name, get_budget("smoke"))
        assert all(c.target == name for c in target.claims())
    for name in GROUPS[ANALYTIC]:
        assert TARGETS[name].compute is not None and TARGETS[name].render is not None
    assert sum(len(TARGETS[n].claims()) for n in GROUPS[EMPIRICAL]) == len(REGISTRY.claims())


def test_the_old_names_still_work():
    """arms.SPECS, arms.table2_arms & co., arms.EmpiricalSpec and claims.claims() read the
    registry now."""
    from igc.reproduce import arms
    from igc.reproduce.claims import claims

    assert list(arms.SPECS) == GROUPS[EMPIRICAL]
    assert arms.table2_arms is TARGETS["table2"].arms and arms.EmpiricalSpec is Target
    assert claims() == REGISTRY.claims()
    with pytest.raises(AttributeError):
        arms.table99_arms  # noqa: B018
