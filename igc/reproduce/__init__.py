"""Reproduce the IGCV2 paper's figures and tables: ``igc reproduce TARGET``.

:mod:`~igc.reproduce.targets` holds every target, each one object of
:mod:`~igc.reproduce.registry`. Analytic targets are computed exactly
(:mod:`~igc.reproduce.analytic`, :mod:`~igc.reproduce.counts`, on the sweeps of
:mod:`~igc.reproduce.sweeps`); empirical ones train the networks of
:mod:`~igc.reproduce.arms` under a budget (:mod:`~igc.reproduce.budgets`) into a cache of
runs (:mod:`~igc.reproduce.cache`, :mod:`~igc.reproduce.runner`), and their results
(:mod:`~igc.reproduce.empirical`) test the paper's claims (:mod:`~igc.reproduce.claims`,
:mod:`~igc.reproduce.stats`). :mod:`~igc.reproduce.render` and
:mod:`~igc.reproduce.render_empirical` write markdown, :mod:`~igc.reproduce.plots` draws,
:mod:`~igc.reproduce.document` heads ``docs/reproduction.md``. :func:`reproduce` is the
Python API behind the command.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from igc.errors import IGCError
from igc.log import get_logger
from igc.reproduce.registry import ANALYTIC, EMPIRICAL, Target
from igc.reproduce.report import Section, write_document, write_section

log = get_logger(__name__)


def __getattr__(name: str) -> Any:
    # The shipped registry imports the zoo (torch): ``igc reproduce --help`` reads the
    # budgets of this package without it, so the registry is imported when first used.
    if name in ("GROUPS", "TARGETS", "resolve"):
        import igc.reproduce.targets as targets

        return getattr(targets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["ANALYTIC", "EMPIRICAL", "GROUPS", "TARGETS", "Stopped", "Target", "command_line",
           "default_out", "parse_shard", "reproduce", "resolve"]


class Stopped(Exception):
    """SIGINT/SIGTERM stopped the runs after saving their checkpoints (``code`` 130/143)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def default_out(data: str, budget: str) -> Path:
    """``runs/reproduce/<data>-<budget>`` in the working directory."""
    return Path("runs") / "reproduce" / f"{data}-{budget}"


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"i/n"`` (1 <= i <= n) as ``(i, n)``; IGCError otherwise."""
    if text is None:
        return None
    try:
        i, n = (int(x) for x in str(text).split("/"))
    except ValueError:
        i = n = 0
    if not 1 <= i <= n:
        raise IGCError(f"--shard must be i/n with 1 <= i <= n (e.g. 1/2), got {text!r}")
    return i, n


def command_line(names: Sequence[str], data: str, budget: str, seeds: int | None,
                 epochs: int | None, out: Path | None, docs: Path | None = None,
                 train: bool = True, data_dir: str | None = None, jobs: int = 1,
                 threads: int | None = None, shard: tuple[int, int] | None = None,
                 device: str = "auto") -> str:
    """The ``igc reproduce`` command that regenerates these results."""
    parts = ["igc", "reproduce", *names, "--data", data, "--budget", budget]
    for flag, value in (("--seeds", seeds), ("--epochs", epochs), ("--data-dir", data_dir),
                        ("--out", out), ("--docs", docs), ("--threads", threads)):
        if value is not None:
            parts += [flag, str(value)]
    if jobs != 1:
        parts += ["--jobs", str(jobs)]
    if shard:
        parts += ["--shard", f"{shard[0]}/{shard[1]}"]
    if device != "auto":
        parts += ["--device", device]
    if not train:
        parts.append("--report-only")
    return shlex.join(parts)


def _positive(name: str, value: int | None, low: int = 1) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or value < low):
        raise IGCError(f"{name} must be an integer >= {low}, got {value!r}")


def reproduce(*args: Any, **kwargs: Any) -> list[Section]:
    """See :func:`_reproduce`; the output folder is locked while it runs."""
    with ExitStack() as stack:
        return _reproduce(*args, **kwargs, _stack=stack)


def _reproduce(names: Sequence[str], data: str = "fashion-mnist", budget: str = "short",
               epochs: int | None = None, seeds: int | None = None,
               out: str | Path | None = None, data_dir: str | None = None,
               docs: str | Path | None = None, train: bool = True, device: str = "auto",
               echo: bool = False, jobs: int = 1, threads: int | None = None,
               shard: str | tuple[int, int] | None = None,
               estimate_only: bool = False, *, _stack: ExitStack) -> list[Section]:
    """Reproduce the targets ``names`` (target or group names).

    Analytic targets are computed exactly; empirical ones train into ``out`` (default
    :func:`default_out`) what is not there yet, with ``jobs`` worker processes of
    ``threads`` torch threads each, only shard ``i`` of ``n`` of the runs when ``shard``
    says (``train=False``: report only what is there). Each target's ``<name>.md``,
    ``.json`` and plots go into ``out``; ``docs`` also joins every section into one
    markdown document. Returns the sections. ``estimate_only``: only say how many runs are
    done and how long the rest would take (nothing is trained or written). Raises
    :class:`Stopped` when interrupted (after saving) and IGCError on bad input or failed
    runs. ``out`` is locked (:class:`~igc.files.lock.FolderLock`) until it returns: a
    second ``igc reproduce`` on it is refused; a call that fails before any run started
    leaves no ``reproduce.json`` that would refuse the corrected command.
    """
    # imported here, not with the package: see __getattr__ (torch, the data sets)
    from igc.data import canonical_name
    from igc.reproduce.budgets import get_budget
    from igc.reproduce.config import Config, check_out_dir, own_out_dir
    from igc.reproduce.document import header
    from igc.reproduce.session import Session
    from igc.reproduce.targets import resolve

    start = time.monotonic()
    plan = get_budget(budget)
    data = canonical_name(data)
    _positive("--epochs", epochs)
    _positive("--seeds", seeds)
    _positive("--jobs", jobs)
    _positive("--threads", threads, 0)
    where = parse_shard(shard) if isinstance(shard, str) or shard is None else shard
    if where is not None:
        parse_shard(f"{where[0]}/{where[1]}")
    if train and not estimate_only and threads is not None and plan.threads and \
            (threads == 0 or threads > plan.threads):
        raise IGCError(f"the {plan.name} budget trains with {plan.threads} torch thread(s) "
                       f"per run and its records are compared so; --threads {threads} would "
                       "train runs that break it: drop --threads (or use --report-only)")
    targets = resolve(names, plan.targets)
    out = Path(out) if out is not None else default_out(data, plan.name)
    config = Config(data, plan, epochs, data_dir, seeds, device, threads)
    given = list(dict.fromkeys(n.strip().lower() for n in names))
    command = command_line(given, data, plan.name, seeds, epochs, out,
                           Path(docs) if docs else None, train, data_dir, jobs, threads,
                           where, device)
    empirical_names = [t.name for t in targets if t.kind == EMPIRICAL]
    if estimate_only:
        if not empirical_names:
            raise IGCError("--estimate-only needs an empirical target (see `igc reproduce "
                           "--list`)")
        config.recipe()
        check_out_dir(out, config, create=False)
        Session(empirical_names, config, out, command, jobs, where).estimate_only()
        return []
    if empirical_names:
        config.recipe()  # validates the recipe before anything is written
        _stack.enter_context(own_out_dir(out, config, shared=where is not None))
    else:
        out.mkdir(parents=True, exist_ok=True)
    sections: dict[str, Section] = {}
    for target in targets:
        if target.kind == ANALYTIC:
            sections[target.name] = target.section()
            write_section(sections[target.name], out)
            if echo:
                log.info(sections[target.name].markdown(str(out)), extra={"stdout": True})
    results: list[Any] = []
    failures: list[str] = []
    stopped = None
    if empirical_names:
        session = Session(empirical_names, config, out, command, jobs, where)
        results, stopped, failures = session.run(train)
        for r in results:
            sections[r.target] = session.section(r)
            write_section(sections[r.target], out)
            if echo:
                log.info(sections[r.target].markdown(str(out)), extra={"stdout": True})
    ordered = [sections[t.name] for t in targets]
    if docs is not None:
        analytic = [sections[t.name] for t in targets if t.kind == ANALYTIC]
        wall = time.monotonic() - start if train else None  # --report-only: not a run's time
        write_document(ordered, docs, header(analytic, results, config, command, train, wall),
                       drawn=out)
    if stopped is not None:
        raise Stopped(stopped.code, stopped.message)
    if failures:
        raise IGCError(f"{len(failures)} run(s) failed; first: {failures[0]}")
    return ordered
