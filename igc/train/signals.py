"""SIGINT and SIGTERM during training: a flag the loop polls between steps, and the
exception a stopped run ends with after saving its checkpoint."""

from __future__ import annotations

import signal
import threading
from typing import Any


class Interrupted(Exception):
    """SIGINT/SIGTERM stopped the run after saving a checkpoint; ``code`` is 130 or 143."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class StopFlag:
    """Set by SIGINT/SIGTERM (the step in progress finishes, then the run saves and stops);
    a second SIGINT interrupts at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def _handle(self, signum: int, frame: object) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def request(self, signum: int = signal.SIGINT) -> None:
        self.signum = signum


__all__ = ["Interrupted", "StopFlag"]
