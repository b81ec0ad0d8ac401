"""The ``igc`` command line: one module per subcommand, each with ``register(subparsers)``.

User errors (:class:`~igc.errors.IGCError`, bad arguments) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from igc.errors import IGCError

#: Subcommand modules under ``igc.cli``, in the order ``igc --help`` lists them.
COMMANDS = ("design", "models", "train", "evaluate", "plot", "summarize", "export", "bench",
            "reproduce")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage dump
        raise IGCError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="igc", description=__doc__.splitlines()[0])
    from igc import __version__

    parser.add_argument("--version", action="version", version=f"igc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"igc.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"igc.cli.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.run(args) or 0)
    except IGCError as exc:
        print(f"igc: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("igc: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
