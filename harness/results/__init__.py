"""Results files: one JSON document per ``harness run`` (schema 3, see docs/results-schema.md).

``models`` holds the typed records (``ResultsFile``, ``Run``, ``Protocol``, ``Perf``, ``TrainBlock``,
``Environment``); ``store`` reads and writes them so that they cannot be lost (atomic writes, a lock per output
file, unique default names, a fallback path when a save fails); ``schema`` gives their JSON Schema. Schema-1 and
schema-2 files are still read (``store.upgrade``).
"""

from .models import (
    FIRST_STAGE,
    SCHEMA_VERSION,
    STATUSES,
    Environment,
    Perf,
    Protocol,
    ResultsFile,
    Run,
    ScenarioRecord,
    TrainBlock,
)
from .store import (
    OutputLock,
    ResultsError,
    ResultsWriter,
    check_writable,
    claim_default_output,
    default_output,
    finite_or_none,
    load_results,
    read_results,
    save_results,
    upgrade,
    validate,
    write_atomically,
)

__all__ = [
    "FIRST_STAGE",
    "SCHEMA_VERSION",
    "STATUSES",
    "Environment",
    "OutputLock",
    "Perf",
    "Protocol",
    "ResultsError",
    "ResultsFile",
    "ResultsWriter",
    "Run",
    "ScenarioRecord",
    "TrainBlock",
    "check_writable",
    "claim_default_output",
    "default_output",
    "finite_or_none",
    "load_results",
    "read_results",
    "save_results",
    "upgrade",
    "validate",
    "write_atomically",
]
