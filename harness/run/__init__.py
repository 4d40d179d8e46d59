"""Running a suite: ``plan`` (what runs) -> ``executor`` (one loop, results saved after each step) -> ``spawn``
(one worker process per measurement, failures become error runs) -> ``worker`` (measures in its own process);
``prepare`` resolves inputs once in the parent, ``interrupt`` turns SIGTERM/SIGHUP into a clean stop."""

from typing import Any


def __getattr__(name: str) -> Any:
    """``run_suite`` / ``DEFAULT_TIMEOUT_S`` on first use: importing the package must not import ``worker``, or
    ``python -m harness.run.worker`` would load that module twice (runpy's RuntimeWarning in every worker log)."""
    if name in ("run_suite", "DEFAULT_TIMEOUT_S"):
        from . import executor

        return getattr(executor, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
