"""SIGTERM and SIGHUP handled like Ctrl-C: they raise ``Interrupted`` in the main thread.

An ssh drop (SIGHUP) or a CI cancel (SIGTERM) then unwinds ``harness run`` exactly as Ctrl-C does: the worker's
process group is killed (``harness.run.spawn``), temporary folders are removed, and the results file is saved
with ``"complete": false`` and the reason (``harness.run.executor``).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None)


class Interrupted(BaseException):  # noqa: N818 - a BaseException, like KeyboardInterrupt
    """The run was stopped by a signal; ``signum`` says which."""

    def __init__(self, signum: int):
        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(f"interrupted by {self.name}")


def _raise(signum, frame) -> None:
    raise Interrupted(signum)


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM/SIGHUP raise ``Interrupted`` (main thread only; elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def stop_reason(exc: BaseException) -> str:
    if isinstance(exc, Interrupted):
        return f"interrupted by {exc.name}"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted by SIGINT (Ctrl-C)"
    return f"harness error: {type(exc).__name__}: {exc}"
