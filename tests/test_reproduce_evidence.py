"""Issue 18's evidence rules: Holm's correction and the paired interval (against hand
computations and the step-down procedure), set-claim verdicts, seeds per target chosen in
budgets.toml, and honest accounting (wall time summed over sessions, every commit, runs
that used more threads than their budget named)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_reproduce_stats import FakeResult

from igc.reproduce import stats
from igc.reproduce.budgets import get_budget, parse_budgets
from igc.reproduce.claims import Claim, check_claim, claims
from igc.reproduce.config import Config
from igc.reproduce.empirical import accounted

RESULTS = Path(__file__).parents[1] / "results" / "fashion-mnist-medium"


# ------------------------------------------------------------------------------ Holm
def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 3 x 0.01, max(., 2 x 0.03), max(., 1 x 0.04)
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert stats.holm([]) == []


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=12), st.floats(0.001, 0.2))
def test_holm_rejects_what_the_step_down_procedure_rejects(p, alpha):
    adjusted = stats.holm(p)
    assert all(a >= x - 1e-12 and a <= 1.0 for a, x in zip(adjusted, p))
    # the procedure: walk the sorted p-values, reject while p_(k) <= alpha / (m - k)
    m, rejected = len(p), set()
    for k, i in enumerate(sorted(range(m), key=lambda i: p[i])):
        if p[i] > alpha / (m - k):
            break
        rejected.add(i)
    near = [i for i in range(m) if abs(adjusted[i] - alpha) < 1e-9]
    assert {i for i in range(m) if adjusted[i] <= alpha} - set(near) == rejected - set(near)


def test_paired_interval_by_hand():
    # d = 1, 2, 3: mean 2, sd 1, se 1/sqrt(3), t(0.975, 2) = 4.302653
    w = stats.paired([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    half = 4.302652729911275 / math.sqrt(3)
    assert (w.diff, w.df) == (pytest.approx(2.0), 2.0)
    assert (w.low, w.high) == (pytest.approx(2 - half), pytest.approx(2 + half))
    flat = stats.paired([1.0, 2.0], [0.0, 1.0])  # differences without spread
    assert math.isinf(flat.low) and stats.p_value(flat) == 1.0
    with pytest.raises(ValueError):
        stats.paired([1.0], [0.0])


def test_p_value_matches_the_t_table():
    # |t| = 2.228 at 10 degrees of freedom is the two-sided 5 % point
    w = stats.Welch(2.228, 1.0, 10.0, 0, 0, 0.95, 6, 6)
    assert stats.p_value(w) == pytest.approx(0.05, abs=2e-4)


# ------------------------------------------------------------------------------ claims
class Fake(FakeResult):
    """test_reproduce_stats' stand-in for an ``ArmResult``, with seeds and runs."""

    @property
    def seeds(self):
        return list(range(len(self.top1)))

    @property
    def runs(self):
        return {s: {"top1": v} for s, v in enumerate(self.top1)}



def _set(values: dict[str, list[float]]):
    return {k: Fake(k, v) for k, v in values.items()}


def test_a_set_claim_needs_one_better_network_to_beat_every_worse_one():
    claim = Claim("figure2", ("b1", "b2"), ("w1", "w2"), "set", "Figure 2(a)")
    clear = _set({"w1": [80.0, 80.1, 79.9], "b1": [85.0, 85.1, 84.9],
                  "b2": [79.0, 79.1, 78.9], "w2": [81.0, 81.1, 80.9]})
    test = check_claim(claim, clear)
    assert test.verdict == stats.AGREES and len(test.pairs) == 4
    assert (test.better.label, test.worse.label) == ("b1", "w2")
    # b1 beats w1 clearly but not w2 (overlapping noise): not resolved
    noisy = _set({"w1": [80.0, 80.1, 79.9], "b1": [85.0, 84.0, 86.0],
                  "b2": [79.0, 79.1, 78.9], "w2": [84.0, 86.5, 84.5]})
    assert check_claim(claim, noisy).verdict == stats.UNRESOLVED
    reverse = _set({"w1": [90.0, 90.1, 89.9], "b1": [85.0, 85.1, 84.9],
                    "b2": [79.0, 79.1, 78.9], "w2": [81.0, 81.1, 80.9]})
    assert check_claim(claim, reverse).verdict == stats.CONTRADICTS


def test_holm_is_stricter_than_the_uncorrected_best_of_each_side():
    # each pair alone is significant at 5 % (p = 0.019-0.029), none after Holm (3 pairs)
    claim = Claim("figure2", ("b",), ("w1", "w2", "w3"), "set", "x")
    results = _set({"w1": [80.0, 81.0, 80.5], "w2": [80.1, 81.1, 80.4],
                    "w3": [80.2, 80.9, 80.3], "b": [81.5, 82.5, 81.8]})
    test = check_claim(claim, results)
    assert test.interval.low > 0  # the best of each side, uncorrected, would agree
    assert all(0.01 < p.p < 0.05 for p in test.pairs)
    assert all(p.p_holm > 0.05 for p in test.pairs)
    assert test.verdict == stats.UNRESOLVED


def test_the_paired_claim_uses_common_seeds():
    claim = next(c for c in claims() if c.paired)
    assert (claim.better, claim.worse) == (("L3-K8",), ("L3-K12",))
    results = _set({"L3-K8": [90.0, 91.0, 92.0], "L3-K12": [89.5, 90.4, 91.6]})
    test = check_claim(claim, results)
    assert test.interval.df == 2.0 and test.interval.diff == pytest.approx(0.5)
    assert test.interval.low > 0  # the seeds' shared part cancels; Welch would straddle 0
    assert stats.welch(results["L3-K8"].top1, results["L3-K12"].top1).low < 0


# ------------------------------------------------------------------------------ budgets
def test_medium_gives_tables_4_and_2_five_seeds_and_table4s_pair_twelve():
    medium = get_budget("medium")
    assert (medium.seeds_for("table4"), medium.seeds_for("table2"),
            medium.seeds_for("figure2")) == (5, 5, 3)
    from igc.reproduce.cache import plan

    specs = plan(["table4", "table2", "figure2"], Config("fashion-mnist", medium), Path("x"))
    count = {t: len({s.seed for s in specs if s.target == t}) for t in ("table4", "table2",
                                                                        "figure2")}
    assert count == {"table4": 12, "table2": 5, "figure2": 3}
    per_arm = {a: sorted(s.seed for s in specs if s.arm.id == a)
               for a in ("xception_c35_d8", "igcv2_c64_d8", "igcv1_c48_d8", "igcv2_c80_d8")}
    assert per_arm["xception_c35_d8"] == per_arm["igcv2_c64_d8"] == list(range(12))
    assert per_arm["igcv1_c48_d8"] == per_arm["igcv2_c80_d8"] == list(range(5))
    assert len(specs) == 2 * 12 + 2 * 5 + 2 * 5 + 5 * 3
    assert "12 for igcv2_c64_d8" in Config("fashion-mnist", medium).seeds_text("table4")
    override = Config("fashion-mnist", medium, seeds=2)  # --seeds wins over arm_seeds too
    assert {s.seed for s in plan(["table4"], override, Path("x"))} == {0, 1}


_BUDGET = "[b]\ndescription = 'x'\nrecipe = 'cifar'\nseeds = 1\n"


@pytest.mark.parametrize("bad", ["target_seeds = 3", "target_seeds = { table4 = 0 }",
                                 "target_seeds = { table4 = true }"])
def test_bad_target_seeds(bad):
    from igc.errors import IGCError

    with pytest.raises(IGCError, match="target_seeds"):
        parse_budgets(_BUDGET + bad + "\n")


@pytest.mark.parametrize("bad", ["arm_seeds = 3", "arm_seeds = { table4 = 2 }",
                                 "arm_seeds = { table4 = {} }",
                                 "arm_seeds = { table4 = { igcv2_c64_d8 = 0 } }",
                                 "arm_seeds = { table4 = { igcv2_c64_d8 = true } }",
                                 "arm_seeds = { table4 = { igcv2_c64_d8 = 'x' } }"])
def test_bad_arm_seeds(bad):
    from igc.errors import IGCError

    with pytest.raises(IGCError, match="arm_seeds"):
        parse_budgets(_BUDGET + bad + "\n")


@pytest.mark.parametrize("line, named", [
    ("arm_seeds = { table4 = { igcv2_c64 = 4 } }", "igcv2_c64"),  # no such network
    ("arm_seeds = { tabel4 = { igcv2_c64_d8 = 4 } }", "tabel4"),  # no such target
    ("target_seeds = { tabel4 = 4 }", "tabel4")])
def test_a_budget_naming_an_unknown_network_or_target_is_refused(line, named):
    from igc.errors import IGCError
    from igc.reproduce.cache import plan

    budget = parse_budgets(_BUDGET + "stem_stride = 2\n" + line + "\n")["b"]
    with pytest.raises(IGCError, match=named):
        plan(["table4"], Config("fashion-mnist", budget), Path("x"))


# ------------------------------------------------------------------------------ accounting
def _run_folder(tmp_path: Path, epochs: list[tuple[float, float]]) -> Path:
    path = tmp_path / "run"
    path.mkdir()
    lines = [json.dumps({"epoch": i + 1, "seconds": s, "eval_seconds": e})
             for i, (s, e) in enumerate(epochs)]
    (path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return path


def test_an_old_resumed_record_gets_the_sum_of_its_epochs(tmp_path):
    path = _run_folder(tmp_path, [(900.0, 20.0), (3000.0, 60.0), (300.0, 15.0)])
    flags: list[str] = []
    record = {"seconds": 650.0, "resumed": True, "commit": "abc", "threads": 1}
    out = accounted(record, path, "t/a/seed-0", 1, flags)
    assert out["seconds"] == pytest.approx(4295.0) and out["session_seconds"] == 650.0
    assert record["seconds"] == 650.0  # the record itself is not changed
    assert len(flags) == 1 and "4,295 s" in flags[0] and "last" in flags[0]
    # a record that keeps its sessions, or was not resumed, is already right
    assert accounted({**record, "sessions": 2}, path, "x", 1, [])["seconds"] == 650.0
    assert accounted({**record, "resumed": False}, path, "x", 1, [])["seconds"] == 650.0


def test_a_run_with_more_threads_than_its_budget_is_named(tmp_path):
    flags: list[str] = []
    out = accounted({"seconds": 10.0, "threads": 2}, tmp_path, "f/L3-K2/seed-2", 1, flags)
    assert out["threads_over"] and "2 threads" in flags[0] and "f/L3-K2/seed-2" in flags[0]
    assert not accounted({"seconds": 10.0, "threads": 2}, tmp_path, "x", 0, [])\
        .get("threads_over")  # threads = 0: every core is the budget


@pytest.mark.skipif(not RESULTS.is_dir(), reason="the committed medium results are absent")
def test_the_committed_medium_records_are_accounted():
    """The audit's numbers: the two resumed runs' epochs sum to about 7,263 s and 6,482 s of
    training (plus evaluation), and figure2/L3-K2/seed-2 used two threads."""
    from igc.reproduce.cache import inspect, plan
    from igc.reproduce.empirical import collect

    config = Config("fashion-mnist", get_budget("medium"))
    specs = plan(["table2", "figure2"], config, RESULTS)
    states = [inspect(s) for s in specs]
    t2 = collect("table2", config, states)
    c144 = next(a for a in t2.arms if a.arm.id == "igcv2_8l_c144")
    assert c144.runs[0]["seconds"] > 7263
    assert any("igcv2_8l_c144/seed-0 was resumed" in f for f in t2.flags)
    f2 = collect("figure2", config, states)
    assert any("L3-K2/seed-2 trained with 2 threads" in f for f in f2.flags)
    k2 = next(a for a in f2.arms if a.arm.id == "L3-K2")
    assert len(k2.budget_seconds) == len(k2.seconds) - 1


@pytest.mark.usefixtures("tiny_models", "one_thread")
@pytest.mark.parametrize("legacy", [False, True])
def test_a_resumed_run_adds_up_its_sessions(tmp_path, tiny_splits, monkeypatch, legacy):
    """The trainer keeps every session in the checkpoint: summary.json's seconds are their
    sum and its commits every commit that trained part of the run."""
    import igc.train.trainer as trainer_mod
    from igc.train.recipe import load_recipe, override
    from igc.train.trainer import Interrupted, RunConfig, train

    splits = tiny_splits(n_train=96)
    recipe = override(load_recipe("fashion-mnist-cpu"), [
        ("epochs", 2), ("batch_size", 16), ("model", "test_tiny_igcv2"), ("threads", 1),
        ("log_every", 1), ("eval_every", 1)])

    def config(resume: bool) -> RunConfig:
        return RunConfig(model="test_tiny_igcv2", data=splits.name, recipe=recipe,
                         out=tmp_path / "r", quiet=True, device="cpu", resume=resume)

    def stop(trainer, event):
        if event == "step" and trainer.state.global_step == 3:
            trainer.stop.request()

    monkeypatch.setattr(trainer_mod, "git_commit", lambda: "aaaa")
    with pytest.raises(Interrupted):
        train(config(False), splits=splits, callbacks=[stop])
    if legacy:  # a checkpoint written before sessions were kept: run.json names its commit
        from igc.train.checkpoint import load_checkpoint, save_checkpoint

        state = load_checkpoint(tmp_path / "r" / "checkpoint.pt")
        for key in ("sessions", "path", "format", "version"):
            state.pop(key, None)
        save_checkpoint(state, tmp_path / "r" / "checkpoint.pt")
    monkeypatch.setattr(trainer_mod, "git_commit", lambda: "bbbb")
    result = train(config(True), splits=splits)
    assert [s["commit"] for s in result.sessions] == ["aaaa", "bbbb"]
    assert ("derived" in result.sessions[0]) == legacy
    assert result.commits == ["aaaa", "bbbb"]
    assert result.seconds == pytest.approx(sum(s["seconds"] for s in result.sessions))
    assert result.seconds > result.session_seconds > 0
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["commits"] == ["aaaa", "bbbb"] and len(summary["sessions"]) == 2
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    assert run["commits"] == ["aaaa", "bbbb"]


def test_a_checkpoint_without_sessions_counts_its_training_seconds():
    from igc.train.trainer import earlier_sessions

    assert earlier_sessions(None) == []
    old = earlier_sessions({"train_seconds": 1234.5})
    assert old[0]["seconds"] == 1234.5 and old[0]["commit"] is None
    assert earlier_sessions({"train_seconds": 1.0}, "cafe")[0]["commit"] == "cafe"
    kept = [{"commit": "x", "seconds": 3.0}]
    assert earlier_sessions({"sessions": kept, "train_seconds": 9.0}) == kept


def test_result_record_adds_earlier_sessions(tmp_path):
    from igc.reproduce.arms import arms_for
    from igc.reproduce.cache import RunSpec
    from igc.reproduce.runner import result_record

    config = Config("fashion-mnist", get_budget("smoke"))
    arm = arms_for("table2", config.budget)[0]
    spec = RunSpec("table2", arm, 0, "k", tmp_path)
    summary = {"top1": 50.0, "epochs": 1, "threads": 1,
               "sessions": [{"commit": "aaaa", "seconds": 100.0, "threads": 2},
                            {"commit": "bbbb", "seconds": 30.0, "threads": 1}],
               "commits": ["aaaa", "bbbb"]}
    record = result_record(spec, config, summary, 31.0, 0.0, resumed=True)
    assert record["seconds"] == pytest.approx(131.0) and record["session_seconds"] == 31.0
    assert record["commits"][:2] == ["aaaa", "bbbb"] and record["sessions"] == 2
    assert record["threads"] == 2  # the most any session used


def test_a_budget_of_one_thread_per_run_refuses_more(tmp_path, capsys):
    from igc.cli import main

    for threads in ("2", "0"):
        assert main(["reproduce", "table2", "--budget", "smoke", "--out", str(tmp_path / "o"),
                     "--threads", threads, "-q"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "1 torch thread(s) per run" in err
    assert not (tmp_path / "o").exists()
