"""The ``igc`` command line: :func:`main` runs one subcommand.

Each subcommand is a module ``igc.cli.NAME`` with ``register(subparsers)`` (argparse-level
imports only; see :mod:`igc.cli.parser`) and ``run(args)`` (the library's work). User
errors (:class:`~igc.errors.IGCError`, bad arguments) print one line and exit 2.
"""

from __future__ import annotations

import sys

from igc.cli.parser import COMMANDS, build_parser
from igc.errors import IGCError
from igc.log import cli_handler


def one_line(message: str) -> str:
    """``message`` on one line: line breaks (a path may hold them) are written ``\\n``."""
    return message.replace("\r", "\\r").replace("\n", "\\n")


def main(argv: list[str] | None = None) -> int:
    """Run ``igc ARGV`` and return its exit status (2 for a user error, 130 for Ctrl-C)."""
    try:
        args = build_parser().parse_args(argv)
        with cli_handler():
            return int(args.run(args) or 0)
    except IGCError as exc:
        print(f"igc: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("igc: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


__all__ = ["COMMANDS", "build_parser", "main", "one_line"]

if __name__ == "__main__":
    sys.exit(main())
