"""Both results files, read through the harness's loader, and their runs paired by (dataset, reranker).

The loader is imported here only (``read_file``): if the harness moves it, this is the one line to change.
Runs are comparable when everything that decides the candidates and the truncation is equal; otherwise
``NotComparable`` names the run and the field.
"""

from __future__ import annotations

from pathlib import Path

from ..results import ResultsError, read_results
from ..results.models import FIRST_STAGE, ResultsFile, Run
from .errors import CompareInputError, NotComparable

# protocol fields that must be equal for two runs to be compared (same inputs, same truncation, same timing rule)
PROTOCOL_KEYS = (
    "dataset_fingerprint",
    "first_stage",
    "top_k",
    "max_queries",
    "seed",
    "relevance_level",
    "add_judged_positives",
    "max_length",
    "dtype",
    "batch_size",
    "warmup_queries",
)

__all__ = ["PROTOCOL_KEYS", "CompareInputError", "NotComparable", "check_comparable", "pair_runs", "read_file"]


def read_file(path: str | Path) -> ResultsFile:
    """The typed results file, or CompareInputError naming the file and the field."""
    try:
        return read_results(path)
    except ResultsError as exc:
        raise CompareInputError(str(exc)) from None


def run_key(run: Run) -> tuple[str, str]:
    return (run.dataset, run.reranker)


def runs_by_key(results: ResultsFile) -> dict[tuple[str, str], Run]:
    return {run_key(r): r for r in results.runs if r.backend != FIRST_STAGE}


def protocol_differences(base: Run, head: Run) -> list[str]:
    """``field: base -> head`` for each protocol field that differs."""
    out = []
    for key in PROTOCOL_KEYS:
        a, b = getattr(base.protocol, key, None), getattr(head.protocol, key, None)
        if a != b:
            out.append(f"protocol.{key}: {a!r} -> {b!r}")
    return out


def pair_runs(base: ResultsFile, head: ResultsFile) -> tuple[list[tuple[Run, Run]], list[str]]:
    """Runs present in both files (base order) and the (dataset, reranker) present in only one, as messages."""
    a, b = runs_by_key(base), runs_by_key(head)
    pairs = [(a[k], b[k]) for k in a if k in b]
    missing = [f"{k[1]} on {k[0]}: only in base" for k in a if k not in b]
    missing += [f"{k[1]} on {k[0]}: only in head" for k in b if k not in a]
    return pairs, missing


def check_comparable(base: ResultsFile, head: ResultsFile, base_name: str, head_name: str) -> None:
    """NotComparable naming every difference that makes the two files measure different things."""
    problems = []
    chip_a, chip_b = base.environment.chip.get("name"), head.environment.chip.get("name")
    if chip_a != chip_b:
        problems.append(f"environment.chip.name: {chip_a!r} -> {chip_b!r} (never compare across machines)")
    for run_a, run_b in pair_runs(base, head)[0]:
        for diff in protocol_differences(run_a, run_b):
            problems.append(f"{run_a.reranker} on {run_a.dataset}: {diff}")
    if problems:
        raise NotComparable(f"{base_name} and {head_name} are not comparable: " + "; ".join(problems))
