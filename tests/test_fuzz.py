"""The ``igc`` command line under a fuzzer (issue 20; the harness is ``tests/fuzzlib.py``).

Argument lists come from the parser's own definitions (every subcommand, flag and ``--set``
key; values from their types, edges and hostile strings, paths of a sandbox); files come
from mutating valid ones (a checkpoint, its metrics, run record and summary, a state dict, a
recipe, the count cache, an image). Every example runs ``igc.cli.main`` in a forked child
with the sandbox as its working folder, ``HOME``, ``XDG_CACHE_HOME`` and ``TORCH_HOME``, an
address-space limit and a time limit, and must keep the contract: exit 0, or exit 2 with
exactly one ``igc: error:`` line; no traceback; a refused command changes nothing in the
sandbox; igc's own inputs are never replaced (a FIFO stays a FIFO, a device node a device).

The fast profile (the normal test run) draws a fixed sequence (``derandomize``) of
:data:`EXAMPLES` argument lists and :data:`FILE_EXAMPLES` damaged files. A long run::

    IGC_FUZZ_EXAMPLES=2000 IGC_FUZZ_SEED=7 OMP_NUM_THREADS=1 pytest tests/test_fuzz.py

draws that many of each from a random sequence (seeded by ``IGC_FUZZ_SEED`` when set); every
failure it finds is reported with its argv and becomes a row of ``tests/test_hostile*.py``.
``IGC_FUZZ_SECONDS=S`` makes a long run by time instead: each of the two fuzz tests draws
examples (up to ``IGC_FUZZ_EXAMPLES``, a million when unset) until S seconds have passed.
``IGC_FUZZ_LOG=FILE`` appends one JSON line per example (argv, exit status, seconds) and
keeps each damaged file that broke the contract in ``FILE.files/``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import time
from contextlib import ExitStack, suppress
from pathlib import Path

import pytest
import torch
from conftest import FIXED, TINY, TINY_OTHER, FixedInput, make_tiny_splits, snapshot
from fuzzlib import argv_strategy, commands, describe, mutations, run_forked, violations
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from PIL import Image

SECONDS = float(os.environ.get("IGC_FUZZ_SECONDS", "0"))  # a time budget per test
LONG = "IGC_FUZZ_EXAMPLES" in os.environ or SECONDS > 0
EXAMPLES = int(os.environ.get("IGC_FUZZ_EXAMPLES", "1000000" if SECONDS else "30"))
FILE_EXAMPLES = int(os.environ.get("IGC_FUZZ_EXAMPLES", "1000000" if SECONDS else "15"))
SEED = int(os.environ.get("IGC_FUZZ_SEED", "20"))
LOG = os.environ.get("IGC_FUZZ_LOG")  # a file: one JSON line per example
FOUND: list[str] = []  # failures of a long run (it goes on after each)
LIMIT_S = 90.0  # per example: a hang is a failure, not a blocked suite
#: Files others write into the sandbox's home: onnxruntime its device id, matplotlib its
#: font cache.
NOT_OURS = ("cache/Microsoft", "cache/matplotlib", ".config", ".cache")


# ------------------------------------------------------------------------------ sandbox
def _images(root: Path) -> None:
    g = torch.Generator().manual_seed(0)
    for split, n in (("train", 4), ("val", 2)):
        for c in range(2):
            folder = root / split / f"c{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = (torch.rand(8, 8, 3, generator=g) * 255).to(torch.uint8).numpy()
                Image.fromarray(pixels).save(folder / f"{i}.png")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The parent's state every child inherits (tiny models, tiny data, no network) and a
    template sandbox: a finished run, a state dict, a recipe, an image folder, a FIFO named
    like an image, a device node (as root), a user's own files, a warm count cache."""
    import igc.train.splits as splits_mod
    from igc.cli import main
    from igc.data import sources
    from igc.models import registry
    from igc.models.cifar import cifar_net
    from igc.train.recipe import load_recipe, override
    from igc.train.trainer import RunConfig, train

    with ExitStack() as stack, pytest.MonkeyPatch.context() as mp:
        specs = {TINY: dict(block="igcv2", width=4, depth=5,
                            branch_sizes=((2, 2), (2, 4), (4, 4)), stem_stride=2),
                 TINY_OTHER: dict(block="igcv2", width=8, depth=5,
                                  branch_sizes=((2, 4), (4, 4), (4, 8)))}
        for name, kwargs in specs.items():
            stack.enter_context(registry.temporary_model(
                name, cifar_net, family="igcv2", table="test", dataset="fashion-mnist",
                input_size=8, num_classes=10, in_chans=1, **kwargs))
        stack.enter_context(registry.temporary_model(
            FIXED, FixedInput, family="test", table="test", dataset="cifar10", input_size=32,
            num_classes=10))
        splits = make_tiny_splits()
        real_load = splits_mod.load_dataset
        mp.setattr(splits_mod, "load_dataset", lambda name, data_dir=None, download=True, **kw:
                   splits if data_dir is None else real_load(name, data_dir, download, **kw))

        def offline(url, out):
            raise OSError("no network in the fuzzer")

        mp.setattr(sources, "_fetch", offline)
        root = tmp_path_factory.mktemp("fuzz-template")
        for name in ("work", "cache", "empty", "outside", "data", "torch"):
            (root / name).mkdir()
        mp.setenv("XDG_CACHE_HOME", str(root / "cache"))
        recipe = override(load_recipe("fashion-mnist-cpu"), [
            ("epochs", 1), ("batch_size", 16), ("eval_batch_size", 32), ("threads", 1),
            ("model", TINY), ("log_every", 1), ("channels_last", False)])
        train(RunConfig(model=TINY, data="fashion-mnist", recipe=recipe, out=root / "run",
                        quiet=True, device="cpu"))
        recipe.save(root / "recipe.toml")
        torch.save(registry.create_model(TINY).state_dict(), root / "weights.pt")
        _images(root / "images")
        os.mkfifo(root / "fifo.png")
        shutil.copytree(root / "images", root / "images-fifo")
        os.mkfifo(root / "images-fifo" / "train" / "c0" / "f.png")
        if os.geteuid() == 0:  # a device node of our own (the null device), never /dev's
            os.mknod(root / "devnode", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        (root / "work" / "notes.txt").write_text("a user's notes\n")
        (root / "work" / "model.onnx").write_bytes(b"a user's own file")
        (root / "outside" / "keep.txt").write_text("never touched\n")
        assert main(["models", "test_tiny*", "--json"]) == 0  # the count cache, warm
        yield {"root": root, "main": _single_threaded(main)}


def _single_threaded(main):
    """``main`` run with one torch thread that igc cannot raise: a forked child must not
    start an OpenMP team when its parent (this test process, after other tests) had one,
    or the child hangs (fork + OpenMP); a harness matter, not igc's."""
    def run(argv: list[str]) -> int:
        torch.set_num_threads(1)
        torch.set_num_threads = lambda n: None
        return main(argv)

    return run


def _paths() -> list[str]:
    names = ["run", "run/checkpoint.pt", "run/metrics.jsonl", "run/summary.json", "weights.pt",
             "recipe.toml", "images", "images-fifo", "fifo.png", "devnode", "work/notes.txt",
             "work/model.onnx", "empty", "missing/x", "work/notes.txt/sub", "new", "out.png",
             "out.onnx", "out.pt2", "out.md", "d/e/f.png", "a\nb", "x" * 300, "cache",
             "outside"]
    return ["{root}/" + n for n in names] + [".", "..", "~", "", "run", "notes.txt"]


def _copy(src: str, dst: str) -> None:
    """shutil.copy2, but a FIFO or device node is made anew (opening one would block)."""
    mode = os.lstat(src).st_mode
    if stat.S_ISFIFO(mode):
        os.mkfifo(dst)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        os.mknod(dst, mode, os.lstat(src).st_rdev)
    else:
        shutil.copy2(src, dst)


def _sandbox(template: Path, box: Path) -> Path:
    shutil.copytree(template, box, symlinks=True, copy_function=_copy)
    return box


SET_VALUES = ("0", "1", "-1", "2", "64.5", "1e308", "nan", "inf", '"abc"', '""', "true",
              "[]", "[1, 2]", "[3, 2]", "{}", "{a = 1}", "[" * 330 + "]" * 330, '"x"' * 2,
              "99999999999999999999")
MODEL_ARGS = ("width", "depth", "branch_sizes", "num_classes", "in_chans", "stem_stride",
              "k", "skip", "nope", "block")
AUGMENTS = ('["scale_crop:3000,4000,3000"]', '["pad_crop:99999"]', '["blur"]',
            '["center_crop:0"]', '["erase:2,0,1"]', '[{op = "hflip", p = 5}]')


MODELS = (TINY, TINY_OTHER, FIXED, "igcv2_fmnist", "igcv3_100", "mobilenetv1_025",
          "xception_c35_d8", "igcv2_c64_d20", "igcv2_fmnits", "test_tiny*", "*")
TARGETS = ("table2", "table2-counts", "figure2", "all", "analytic", "tabel2", "table99")


def _extra(command, flag) -> list[str]:
    """Valid-looking values the parser's definitions cannot tell: model names and run
    folders for positionals, targets for ``reproduce``, ``--set KEY=VALUE`` from the
    recipe's own keys (and model_args keys)."""
    if flag.positional:
        names = TARGETS if command.name == "reproduce" else MODELS
        return [*names, "{root}/run", "{root}/run/checkpoint.pt"]
    if flag.dest == "pretrained":
        return ["{root}/weights.pt", "{root}/run/checkpoint.pt", "file:///dev/zero",
                "http://example.com:abc/w.pt", "file://{root}/weights.pt", "{root}/fifo.png"]
    if flag.dest != "assignments":
        return []
    from dataclasses import fields

    from igc.train.recipe import Recipe

    keys = [f.name for f in fields(Recipe)]
    return ([f"{k}={v}" for k in keys for v in SET_VALUES[:8]]
            + [f"model_args.{k}={v}" for k in MODEL_ARGS for v in SET_VALUES]
            + [f"{k}={v}" for k in ("train_augment", "eval_augment") for v in AUGMENTS])


def _base(name: str) -> list[str]:
    """Arguments that keep a run short (a tiny model, one epoch, one repeat)."""
    return {"train": ["--quiet", "--model", TINY, "--epochs", "1", "--threads", "1"],
            "bench": ["--repeats", "1", "--threads", "1"],
            "reproduce": ["--budget", "smoke", "--quiet", "--threads", "1"],
            "export": ["--calibration", "8", "--eval-images", "8"]}.get(name, [])


_LONG_FLAGS = {"--epochs": 2, "--seeds": 2, "--repeats": 2, "--calibration": 8,
               "--eval-images": 8, "--alternatives": 20, "--jobs": 1}


def _short(argv: list[str]) -> list[str]:
    """``argv`` with counts that only make a run long (epochs, seeds, repeats) capped: the
    fuzzer looks for broken contracts, not for long runs."""
    out = list(argv)
    for i, a in enumerate(out[:-1]):
        if a in _LONG_FLAGS and out[i + 1].lstrip("-").isdigit():
            out[i + 1] = str(min(int(out[i + 1]), _LONG_FLAGS[a]))
    if out and out[0] == "reproduce" and "--list" not in out:
        out.append("--report-only")
        # every analytic table at once counts hundreds of networks: minutes, by design
        out = [a for a in out if a not in ("all", "analytic")]
    if out and out[0] == "train" and "--compile" in out:
        out.remove("--compile")  # torch.compile: a minute or more by itself (as bench's)
    if out and out[0] == "models":
        out = [a for a in out if a != "--no-cache"]  # recounts the whole zoo: minutes
    if out and out[0] == "bench":  # an ImageNet network at batch 16 times for minutes
        for i, a in enumerate(out[:-1]):
            if a in ("--batch", "--input-size") and out[i + 1].isdigit():
                out[i + 1] = str(min(int(out[i + 1]), 4 if a == "--batch" else 64))
        if "--calibrate" in out:
            out.remove("--calibrate")  # minutes of measuring; its cache check has a row
        # torch.compile takes a minute by itself (docs: 25-50 s) and prints its progress
        out = [a.replace("compiled", "naive") for a in out] + ["--forms", "naive,optimized"]
    return out


def _kinds(box: Path) -> dict[str, int]:
    """The file types igc must never change: the FIFOs and the device node."""
    found = {}
    for name in ("fifo.png", "images-fifo/train/c0/f.png", "devnode"):
        try:
            found[name] = stat.S_IFMT((box / name).lstat().st_mode)
        except FileNotFoundError:
            found[name] = 0
    return found


def check_run(main, template: Path, tmp_path: Path, argv: list[str]) -> None:
    """Run ``igc ARGV`` in a fresh copy of ``template`` and assert the contract (see the
    module); ``{root}`` in ``argv`` names the copy."""
    box = _sandbox(template, tmp_path / "box")
    argv = [a.replace("{root}", str(box)) for a in argv]
    env = {"HOME": str(box), "XDG_CACHE_HOME": str(box / "cache"), "PATH": "/usr/bin:/bin",
           "TORCH_HOME": str(box / "torch"), "IGC_DATA": str(box / "data"),
           "OMP_NUM_THREADS": "1", "LANG": "C.UTF-8"}
    kinds, outside = _kinds(box), snapshot(box / "outside")
    before = {k: v for k, v in snapshot(box).items() if not k.startswith(NOT_OURS)}
    outcome = run_forked(main, argv, box / "work", env, LIMIT_S)
    problems = violations(outcome, "igc: error: ")
    if outcome.code == 2:
        after = {k: v for k, v in snapshot(box).items() if not k.startswith(NOT_OURS)}
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        if changed:
            problems.append(f"refused, yet changed {changed[:5]}")
    if _kinds(box) != kinds:
        problems.append(f"replaced a FIFO or device node: {kinds} -> {_kinds(box)}")
    if snapshot(box / "outside") != outside or (box / "work" / "notes.txt").read_text() \
            != "a user's notes\n":
        problems.append("changed a user's own file")
    shutil.rmtree(box, ignore_errors=True)
    if LOG:
        with open(LOG, "a", encoding="utf-8") as log:
            log.write(json.dumps({"argv": outcome.argv, "code": outcome.code,
                                  "seconds": round(outcome.seconds, 2), "problems": problems,
                                  "err": outcome.err[-300:]}) + "\n")
    if LONG and problems:  # a long run records every failure and goes on
        FOUND.append(describe(outcome, problems))
        return
    assert not problems, describe(outcome, problems)


class _TimeUp(Exception):
    """Raised by an example drawn after ``IGC_FUZZ_SECONDS`` have passed: it ends the run."""


def _budget(case) -> None:
    """Run the hypothesis test ``case`` until its examples or its time budget run out (the
    first example past the budget raises :class:`_TimeUp`, which ends it here)."""
    with suppress(_TimeUp):
        case()


def _on_time(start: float) -> None:
    if SECONDS and time.monotonic() - start > SECONDS:
        raise _TimeUp


def _settings(n: int):
    phases = (Phase.generate,) if LONG else (Phase.generate, Phase.shrink)
    return settings(max_examples=n, deadline=None, derandomize=not LONG, database=None,
                    suppress_health_check=list(HealthCheck), print_blob=True, phases=phases)


@pytest.fixture(scope="module")
def cli_commands():
    from igc.cli import build_parser

    return commands(build_parser())


def test_the_parser_is_read_whole(cli_commands):
    """Every subcommand and flag of the parser reaches the fuzzer (so a new flag is fuzzed
    without anyone listing it)."""
    from igc.cli.parser import COMMANDS

    names = {c.name for c in cli_commands}
    assert set(COMMANDS) - {"evaluate"} | {"eval"} <= names  # the module evaluate is `igc eval`
    train = next(c for c in cli_commands if c.name == "train")
    assert {"--out", "--set", "--resume", "--lr"} <= {o for f in train.flags for o in f.options}
    assert sum(len(c.flags) for c in cli_commands) > 80


@pytest.mark.usefixtures("one_thread")
def test_fuzz_command_lines(world, cli_commands, tmp_path_factory):
    paths = _paths()

    @seed(SEED)
    @_settings(EXAMPLES)
    @given(argv=argv_strategy(cli_commands, paths, _extra, _base))
    def case(argv):
        _on_time(start)
        check_run(world["main"], world["root"], tmp_path_factory.mktemp("cli"),
                  _short(argv))

    FOUND.clear()
    start = time.monotonic()
    _budget(case)
    assert not FOUND, "\n\n".join(FOUND)


#: Files a command reads, and the commands that read them.
READERS = {
    "run/checkpoint.pt": (["eval", "{run}", "--batch-size", "64"],
                          ["train", "--quiet", "--out", "{run}", "--resume", "--epochs", "2"],
                          ["export", "{run}", "--format", "pt2", "--out", "m.pt2"]),
    "run/metrics.jsonl": (["plot", "{run}", "--out", "p.png"],
                          ["train", "--quiet", "--out", "{run}", "--resume", "--epochs", "2"]),
    "run/run.json": (["plot", "{run}", "--out", "p.png"], ["summarize", "{run}"]),
    "run/summary.json": (["summarize", "{run}"],),
    "run/recipe.toml": (["train", "--quiet", "--out", "{run}", "--resume", "--epochs", "2"],),
    "recipe.toml": (["train", "--quiet", "--recipe", "{root}/recipe.toml", "--out", "new"],),
    "weights.pt": (["eval", TINY, "--pretrained", "{root}/weights.pt", "--batch-size", "64"],
                   ["export", TINY, "--format", "pt2", "--out", "m.pt2"]),
    "images/train/c0/0.png": (["train", "--quiet", "--data", "imagefolder", "--data-dir",
                               "{root}/images", "--model", TINY, "--set", "image_size=8",
                               "--set", "resize_size=8", "--batch-size", "2", "--out", "new",
                               "--epochs", "1"],),  # the imagenet recipe: 120 epochs
}


@pytest.mark.usefixtures("one_thread")
def test_fuzz_damaged_files(world, tmp_path_factory):
    root = world["root"]
    cache = sorted((root / "cache").rglob("*.json"))
    readers = dict(READERS)
    if cache:
        readers[str(cache[0].relative_to(root))] = (["models", "test_tiny*", "--json"],)

    @seed(SEED)
    @_settings(FILE_EXAMPLES)
    @given(data=st.data())
    def case(data):
        name = data.draw(st.sampled_from(sorted(readers)))
        argv = data.draw(st.sampled_from(readers[name]))
        damaged = data.draw(mutations((root / name).read_bytes()))
        _on_time(start)  # after the draws: hypothesis replays the last example the same
        tmp = tmp_path_factory.mktemp("file")
        template = _sandbox(root, tmp / "template")
        (template / name).write_bytes(damaged)
        found = len(FOUND)
        check_run(world["main"], template, tmp, [a.format(run="{root}/run", root="{root}")
                                                 for a in argv])
        if LOG and len(FOUND) > found:  # keep the damaged file that broke the contract
            kept = Path(LOG + ".files") / f"{len(FOUND)}-{Path(name).name}"
            kept.parent.mkdir(exist_ok=True)
            kept.write_bytes(damaged)
        shutil.rmtree(template, ignore_errors=True)

    FOUND.clear()
    start = time.monotonic()
    _budget(case)
    assert not FOUND, "\n\n".join(FOUND)


# ------------------------------------------------------------------------------ the harness
def _broken_main(argv: list[str]) -> int:
    """A command line with the faults the fuzzer must catch."""
    import argparse

    parser = argparse.ArgumentParser(prog="toy")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("go")
    p.add_argument("--n", type=int, default=1)
    try:
        args = parser.parse_args(argv)
    except SystemExit:
        print("toy: error: bad arguments", file=__import__("sys").stderr)  # + argparse's 2
        return 2
    if args.n == 3:
        raise ValueError("three")  # a traceback
    if args.n == 4:
        os.kill(os.getpid(), signal.SIGKILL)
    if args.n == 5:
        __import__("time").sleep(30)  # a hang
    if args.n == 6:
        bytearray(8 << 30)  # more memory than allowed
    if args.n == 7:
        print("toy: error: two\nlines", file=__import__("sys").stderr)
        return 2
    return 0


@pytest.mark.parametrize("n, problem", [
    ("1", None), ("x", "stderr lines"), ("3", "traceback"), ("4", "signal 9"),
    ("5", "time limit"), ("6", "traceback"), ("7", "2 stderr lines")])
def test_the_harness_catches_each_kind_of_fault(n, problem, tmp_path):
    outcome = run_forked(_broken_main, ["go", "--n", n], tmp_path, {"PATH": "/usr/bin"},
                         timeout_s=3, extra_memory=1 << 30)
    found = "; ".join(violations(outcome, "toy: error: "))
    assert (problem in found) if problem else not found, found
