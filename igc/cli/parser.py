"""The parser of the ``igc`` command line, built without importing the library.

:func:`build_parser` imports each subcommand module of :data:`COMMANDS` and calls its
``register(subparsers)``. A module's top level and its ``register`` import only
argparse-level code (:mod:`igc.cli.args`, :mod:`igc.checks` and the torch-free name lists
its options offer), so ``igc --help`` and the NumPy-only ``igc design`` start without
torch; the library is imported inside the module's ``run(args)``.
``tests/test_cli_startup.py`` builds the parser with torch made unimportable.

What a user reads comes from each subcommand module's docstring (:func:`add_command`): its
first line is the one-line summary ``igc --help`` lists, the whole docstring the
description of ``igc NAME --help``, shown as written.
"""

from __future__ import annotations

import argparse
import importlib
from typing import NoReturn

from igc import __version__
from igc.errors import IGCError

#: Subcommand modules under ``igc.cli``, in the order ``igc --help`` lists them (``models``
#: also registers ``info``).
COMMANDS = ("design", "models", "info", "train", "evaluate", "plot", "summarize", "export",
            "bench", "reproduce")

DESCRIPTION = """\
Interleaved group convolutions (IGCV1, IGCV2, IGCV3) and their baselines.

Design structured-sparse blocks, inspect the networks of the papers, train and
evaluate them, export them to ONNX and benchmark them, and reproduce the IGCV2
paper's tables and figures."""

EPILOG = """\
Run `igc COMMAND --help` for the options of a command.
Examples:
  igc design --channels 64 --layers 3
  igc models 'igcv3_*'
  igc train --epochs 3
  igc reproduce --list"""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` for users: one-line errors, descriptions as written.

    Its errors are :class:`IGCError` (one line, exit 2, no usage dump)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        """Raise ``message`` as an :class:`IGCError` (printed as one line, exit 2)."""
        raise IGCError(message)


def add_command(sub: argparse._SubParsersAction, name: str, doc: str | None,
                **kwargs: object) -> argparse.ArgumentParser:
    """A subcommand ``name`` described by ``doc``.

    Its summary is the first line of ``doc`` (the full stop dropped), its description the
    whole of ``doc``."""
    text = (doc or name).strip()
    return sub.add_parser(name, help=summary(text), description=text, **kwargs)


def summary(doc: str | None) -> str:
    """The first line of ``doc`` without its full stop: a command's one-line summary."""
    return (doc or "").strip().splitlines()[0].rstrip(".") if doc and doc.strip() else ""


def build_parser() -> argparse.ArgumentParser:
    """The ``igc`` parser with every subcommand registered (imports no torch)."""
    parser = Parser(prog="igc", description=DESCRIPTION,
                    usage="igc [-h] [--version] COMMAND [ARGS ...]")
    parser.add_argument("--version", action="version", version=f"igc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser, prog="igc",
                                metavar="COMMAND", help=argparse.SUPPRESS)
    for name in COMMANDS:
        importlib.import_module(f"igc.cli.{name}").register(sub)
    width = max(map(len, sub.choices))
    listing = [f"  {name:<{width}}  {summary(command.description)}"
               for name, command in sub.choices.items()]
    parser.epilog = "\n".join(["commands:", *listing, "", EPILOG])
    return parser


__all__ = ["COMMANDS", "Parser", "add_command", "build_parser", "summary"]
