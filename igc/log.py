"""igc's messages go through :mod:`logging`; the command line shows them.

Library modules log to loggers under ``"igc"`` (:func:`get_logger`): progress and
information at INFO, things a user must see (a resumed run's changed settings) at WARNING.
An application that embeds igc controls them as any library's (``logging.getLogger("igc")
.setLevel(...)``, its own handlers); with no configuration Python shows WARNING and above.
The ``igc`` command installs :func:`cli_handler` for the duration of a command: each
message one line on stderr, as the command printed it before (a record logged with
``extra={"stdout": True}`` goes to stdout: a command's result shown as it arrives).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["ROOT", "cli_handler", "get_logger"]

#: The logger every igc logger is a child of.
ROOT = "igc"


def get_logger(name: str) -> logging.Logger:
    """The logger of module ``name`` (``__name__``), under :data:`ROOT`."""
    return logging.getLogger(name if name == ROOT or name.startswith(ROOT + ".")
                             else f"{ROOT}.{name}")


class _ConsoleHandler(logging.Handler):
    """Writes a record's message as one line to the *current* ``sys.stderr`` (or
    ``sys.stdout``), so that redirections made after it was installed are followed."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stdout if getattr(record, "stdout", False) else sys.stderr
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:  # a broken pipe must not turn into a traceback here
            self.handleError(record)


@contextmanager
def cli_handler(level: int = logging.INFO) -> Iterator[logging.Handler]:
    """Show igc's messages at ``level`` and above on the console while the block runs
    (what the ``igc`` command does); the logger's previous state is restored after."""
    logger = logging.getLogger(ROOT)
    handler = _ConsoleHandler(level)
    handler.setFormatter(logging.Formatter("%(message)s"))
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
