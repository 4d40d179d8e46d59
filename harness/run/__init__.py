"""Running a suite: ``plan`` (what runs) -> ``executor`` (one loop, results saved after each step) -> ``spawn``
(one worker process per measurement, failures become error runs) -> ``worker`` (measures in its own process);
``prepare`` resolves inputs once in the parent, ``interrupt`` turns SIGTERM/SIGHUP into a clean stop."""

from .executor import DEFAULT_TIMEOUT_S, run_suite  # noqa: F401
