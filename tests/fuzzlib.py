"""A small command-line fuzzer, independent of igc: argument lists from an argparse parser's
own definitions, hostile values, mutated files, and a contract checked on every run.

* :func:`commands` reads a parser: every subcommand, its flags (``option_strings``,
  ``nargs``, ``choices``, the ``type`` converter's name) and positionals.
* :func:`argv_strategy` draws argument lists from them with hypothesis: a subcommand, some of
  its flags (a value from :func:`value_strategy` for each: type-guided edges plus hostile
  strings and paths of a sandbox), its positionals.
* :func:`mutations` draws damaged versions of a valid file's bytes (truncated, bits flipped,
  junk inserted, numbers replaced by edges, nesting deepened).
* :func:`run_forked` runs ``main(argv)`` in a forked child (the parent's imports are
  inherited, so a run costs milliseconds of start-up) with its own working folder,
  environment, stdout/stderr files, an address-space limit (``resource.setrlimit``) and a
  wall-clock limit (the parent kills it).
* :func:`violations` checks the contract: exit 0, or exit 2 with exactly one stderr line
  starting with ``prefix``; no traceback; finished in time; not killed by a signal.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import strategies as st


# ------------------------------------------------------------------------------ the parser
@dataclass
class Flag:
    """One argparse action: its option strings (empty for a positional), how many values
    it takes (0 for a switch), its choices and the name of its ``type`` converter."""

    options: tuple[str, ...]
    nargs: object
    choices: tuple[str, ...] | None
    kind: str
    required: bool
    dest: str

    @property
    def positional(self) -> bool:
        return not self.options

    @property
    def takes_value(self) -> bool:
        return self.nargs != 0


@dataclass
class Command:
    name: str
    flags: list[Flag] = field(default_factory=list)


def commands(parser: argparse.ArgumentParser) -> list[Command]:
    """Every subcommand of ``parser`` with its flags and positionals."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                command = Command(name)
                for a in sub._actions:
                    if isinstance(a, argparse._HelpAction):
                        continue
                    nargs = 0 if isinstance(a, (argparse._StoreTrueAction,
                                                argparse._StoreFalseAction,
                                                argparse._StoreConstAction,
                                                argparse._CountAction)) else a.nargs
                    kind = getattr(a.type, "__name__", "str") if a.type else "str"
                    command.flags.append(Flag(tuple(a.option_strings), nargs,
                                              tuple(map(str, a.choices)) if a.choices else None,
                                              kind, bool(a.required), a.dest))
                found.append(command)
    return found


# ------------------------------------------------------------------------------ values
#: Strings that break naive code: empty, whitespace, line breaks, control and odd Unicode
#: characters, format and shell syntax, huge and deeply nested text.
HOSTILE = ("", " ", "\n", "a\nb", "\t", "\r\n", "-", "--", "-1", "0", "nan", "inf", "-inf",
           "1e308", "-1e308", "1e-320", "0x10", "1_000", "9" * 40, "3.5", "true", "None",
           "null", "{}", "[]", "[" * 300 + "]" * 300, "{a}", "%s%n", "$(touch x)", "`id`",
           "*", "?", "~", "..", ".", "\u00e9\u00e8", "\u202e", "\ufeff", "x" * 5000,
           "a=b", "=", "a.b.c=1", "http://", "http://example.com:abc/w.pt",
           "http://exa mple.com/x", "http://[::1/x", "file:///", "ftp://x/y")

EDGE_INTS = (0, 1, 2, 3, -1, 7, 8, 16, 64, 255, 256, 4096, 65536, 2**31 - 1, 2**31, 2**63 - 1,
             2**63, 2**64, 10**9)
EDGE_FLOATS = ("0", "-0.0", "1e-9", "0.5", "1", "1.5", "100", "1e9", "1e308", "nan", "inf",
               "-1")


def value_strategy(flag: Flag, paths: Sequence[str], extra: Sequence[str] = (),
                   hostile: bool = True) -> st.SearchStrategy[str]:
    """Values for ``flag``: its choices (and near misses) when it has some, integer or
    number edges for ``integer``/``number``-like converters, sandbox ``paths`` for
    path-like ones, ``extra`` (e.g. ``KEY=VALUE`` settings) and, with ``hostile``,
    :data:`HOSTILE` strings (without, the values look valid, so a run gets past the
    parser)."""
    options: list[st.SearchStrategy[str]] = [st.sampled_from(HOSTILE)] if hostile else []
    kind = flag.kind.lower()
    if flag.choices:
        choices = st.sampled_from(flag.choices)
        options += [choices, choices] + ([choices.map(lambda c: c.upper()),
                                          choices.map(lambda c: c[:-1] or "x")]
                                         if hostile else [])
    if "int" in kind:
        ints = st.sampled_from(EDGE_INTS) | st.integers(-10, 300) if hostile else \
            st.sampled_from((1, 2, 3, 4, 8, 16, 24, 32, 64))
        options += [ints.map(str), ints.map(str),
                    st.lists(ints, min_size=1, max_size=5).map(lambda v: ",".join(map(str, v)))]
    if "number" in kind or "float" in kind:
        options += [st.sampled_from(EDGE_FLOATS), st.floats(-1e3, 1e3).map(repr)] if hostile \
            else [st.sampled_from(("0.01", "0.1", "0.5", "1"))]
    if any(w in kind for w in ("path", "dir", "file", "existing", "out", "text")) or \
            flag.positional or kind == "str":
        options += [st.sampled_from(tuple(paths)), st.sampled_from(tuple(paths))]
    if extra:
        options += [st.sampled_from(tuple(extra))] * 3
    return st.one_of(options or [st.sampled_from(HOSTILE)])


@st.composite
def argv_strategy(draw: st.DrawFn, cmds: Sequence[Command], paths: Sequence[str],
                  extra: Callable[[Command, Flag], Sequence[str]] = lambda c, f: (),
                  base: Callable[[str], list[str]] = lambda name: [],
                  max_flags: int = 4) -> list[str]:
    """An argument list: a subcommand, ``base(name)`` (arguments that keep a run short),
    up to ``max_flags`` of its flags with values, and its positionals (sometimes left out
    or doubled)."""
    command = draw(st.sampled_from(tuple(cmds)))
    hostile = draw(st.booleans())  # half the lists look valid, to get past the parser
    argv = [command.name, *base(command.name)]
    optional = [f for f in command.flags if not f.positional]
    for flag in draw(st.lists(st.sampled_from(optional), max_size=max_flags)) if optional \
            else []:
        argv.append(draw(st.sampled_from(flag.options)))
        if flag.takes_value:
            argv.append(draw(value_strategy(flag, paths, extra(command, flag), hostile)))
    for flag in (f for f in command.flags if f.positional):
        count = draw(st.sampled_from((1, 1, 1, 0, 2))) if flag.nargs in ("*", "+", "?") \
            else draw(st.sampled_from((1, 1, 1, 1, 0)))
        argv += [draw(value_strategy(flag, paths, extra(command, flag), hostile))
                 for _ in range(count)]
    return argv


# ------------------------------------------------------------------------------ files
EDGE_TOKENS = (b"0", b"-1", b"1e308", b"NaN", b"Infinity", b"null", b'""', b"[]", b"{}",
               b"true", b"99999999999999999999", b'"' + b"x" * 3000 + b'"',
               b"[" * 400 + b"]" * 400)


@st.composite
def mutations(draw: st.DrawFn, data: bytes) -> bytes:
    """A damaged copy of ``data``: truncated, bits flipped, bytes inserted or removed, a
    number replaced by an edge value, or its first bracket nested hundreds deep."""
    kind = draw(st.sampled_from(("truncate", "flip", "insert", "delete", "token", "nest",
                                 "empty", "append")))
    n = len(data)
    if kind == "empty" or n == 0:
        return b""
    at = draw(st.integers(0, n - 1))
    if kind == "truncate":
        return data[:at]
    if kind == "flip":
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, n - 1))
            out[i] ^= 1 << draw(st.integers(0, 7))
        return bytes(out)
    if kind == "insert":
        return data[:at] + draw(st.binary(min_size=1, max_size=64)) + data[at:]
    if kind == "delete":
        return data[:at] + data[at + draw(st.integers(1, 64)):]
    if kind == "append":
        return data + draw(st.binary(min_size=1, max_size=64))
    if kind == "nest":
        i = max(data.find(b"["), data.find(b"{"))
        return data if i < 0 else data[:i] + b"[" * 500 + data[i:] + b"]" * 500
    digits = [i for i in range(n) if data[i:i + 1].isdigit()
              and (i == 0 or not data[i - 1:i].isdigit())]
    if not digits:
        return data + draw(st.sampled_from(EDGE_TOKENS))
    i = draw(st.sampled_from(digits))
    j = i
    while j < n and data[j:j + 1] in b"0123456789.eE+-":
        j += 1
    return data[:i] + draw(st.sampled_from(EDGE_TOKENS)) + data[j:]


# ------------------------------------------------------------------------------ running
@dataclass
class Outcome:
    """What one run did: exit ``code`` (None when killed), ``signal`` that killed it,
    ``timed_out``, its ``out``/``err`` text and ``seconds``."""

    argv: list[str]
    code: int | None
    out: str
    err: str
    seconds: float
    timed_out: bool = False
    signal: int | None = None


def _child(main: Callable[[list[str]], int], argv: list[str], cwd: Path,
           env: dict[str, str], out: Path, err: Path, memory: int | None) -> None:
    code = 70
    try:
        fd_out = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        fd_err = os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fd_out, 1)
        os.dup2(fd_err, 2)
        # the parent's sys.stdout/err may be a test runner's capture: write to the fds
        sys.stdout = open(1, "w", buffering=1, closefd=False, errors="backslashreplace")  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False, errors="backslashreplace")  # noqa: SIM115
        os.environ.clear()
        os.environ.update(env)
        os.chdir(cwd)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        if memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            traceback.print_exc()
            code = 71
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code if isinstance(code, int) and 0 <= code < 256 else 72)


def address_space() -> int:
    """This process's virtual memory size in bytes (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def run_forked(main: Callable[[list[str]], int], argv: list[str], cwd: Path,
               env: dict[str, str], timeout_s: float = 60.0,
               extra_memory: int | None = 4 << 30) -> Outcome:
    """``main(argv)`` in a forked child (see the module); the child's address space may
    grow by ``extra_memory`` bytes over the parent's (None: no limit)."""
    memory = None if extra_memory is None else address_space() + extra_memory
    with tempfile.TemporaryDirectory(prefix="fuzz-io-") as io:
        out, err = Path(io) / "out", Path(io) / "err"
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:  # pragma: no cover (the child)
            _child(main, argv, cwd, env, out, err, memory)
        timed_out, status = False, 0
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() - start > timeout_s:
                os.kill(pid, signal.SIGKILL)
                _, status = os.waitpid(pid, 0)
                timed_out = True
                break
            time.sleep(0.01)
        seconds = time.monotonic() - start
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        read = lambda p: p.read_text(errors="replace") if p.exists() else ""  # noqa: E731
        return Outcome(list(argv), None if timed_out else code, read(out), read(err),
                       seconds, timed_out, None if timed_out else sig)


def violations(outcome: Outcome, prefix: str = "error: ") -> list[str]:
    """How ``outcome`` breaks the contract (empty when it keeps it): exit 0, or exit 2
    with exactly one stderr line holding ``prefix``; no traceback; in time; no signal."""
    problems = []
    if outcome.timed_out:
        problems.append(f"ran past its time limit ({outcome.seconds:.0f} s)")
    elif outcome.signal is not None:
        problems.append(f"killed by signal {outcome.signal}")
    elif outcome.code not in (0, 2):
        problems.append(f"exit status {outcome.code}")
    if "Traceback (most recent call last)" in outcome.err + outcome.out:
        problems.append("printed a traceback")
    if outcome.code == 2:
        lines = outcome.err.splitlines()
        if len(lines) != 1 or prefix not in lines[0]:
            problems.append(f"exit 2 with {len(lines)} stderr lines (want 1 with {prefix!r})")
    return problems


def describe(outcome: Outcome, problems: list[str]) -> str:
    """One report of a failing run: the problems, the argv, the end of its stderr."""
    return (f"{'; '.join(problems)}: argv={outcome.argv!r} exit={outcome.code} "
            f"in {outcome.seconds:.1f} s\nstderr (end):\n{outcome.err[-3000:]}")


__all__ = ["EDGE_FLOATS", "EDGE_INTS", "HOSTILE", "Command", "Flag", "Outcome",
           "address_space", "argv_strategy", "commands", "describe", "mutations",
           "run_forked", "value_strategy", "violations"]
