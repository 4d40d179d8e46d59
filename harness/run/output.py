"""The results file of a suite run: opened once (lock; an existing file refused unless ``--overwrite``, or read for
``--resume``), headed with the suite's settings and the environment, written as the keys each record was given,
and saved as incomplete with the reason when the run stops.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ..environment import capture_environment
from ..results import (
    SCHEMA_VERSION,
    OutputLock,
    ResultsError,
    ResultsFile,
    ResultsWriter,
    Run,
    check_writable,
    claim_default_output,
    load_results,
)
from .interrupt import stop_reason


def open_output(
    suite_name: str,
    output: str | Path | None,
    fingerprint: str,
    overwrite: bool = False,
    resume: bool = False,
    shard: str | None = None,
) -> tuple[Path, OutputLock, dict[tuple[str, str], Run], dict[tuple[str, str], dict]]:
    """The locked results path and, with ``resume``, the file's runs (by (dataset, reranker)) and training blocks
    (by (model, backend)): an ok run is kept instead of measuring its step again; one outside this selection
    (``--only``) is carried over as it is; an ok training whose folder is unchanged is not trained again.

    An existing file is refused unless ``overwrite`` (replace it) or ``resume`` (keep its ok runs: only for a
    file of the same suite fingerprint). Without ``output`` the default name is claimed exclusively."""
    if overwrite and resume:
        raise ResultsError("--overwrite and --resume exclude each other")
    if output is None:
        if resume:
            raise ResultsError("--resume needs --output (the results file to complete)")
        path = claim_default_output(suite_name)
        return path, OutputLock(path).acquire(), {}, {}
    path = Path(output)
    check_writable(path, "--output")
    lock = OutputLock(path).acquire()
    try:
        if not path.exists() or path.stat().st_size == 0 or overwrite:
            return path, lock, {}, {}
        if not resume:
            raise ResultsError(f"{path} already exists; use --overwrite to replace it or --resume to complete it")
        old = load_results(path)
        if old["suite"] != suite_name or old.get("fingerprint") != fingerprint:
            raise ResultsError(
                f"{path}: cannot --resume it: it was written by suite {old['suite']!r} with other "
                "settings or selection; use --overwrite or another --output"
            )
        if (old.get("selection") or {}).get("shard") != shard:
            raise ResultsError(
                f"{path}: cannot --resume it: selection.shard is {(old.get('selection') or {}).get('shard')!r}, "
                f"this run's is {shard!r}"
            )
        runs = {(r["dataset"], r["reranker"]): Run.model_validate(r) for r in old["runs"]}
        trained = {(b["model"], b["backend"]): b for b in (old.get("train") or {}).get("models") or []}
        return path, lock, runs, trained
    except BaseException:
        lock.release()
        raise


def document(results: ResultsFile) -> dict[str, Any]:
    """The results file as JSON data: the keys each record was given (``exclude_unset``), ``schema`` by name."""
    return results.model_dump(mode="json", by_alias=True, exclude_unset=True)


def document_of(value: Any) -> Any:
    """A record or a plain mapping as the JSON data a results file holds (for comparing the two)."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return json.loads(json.dumps(value))


def header(suite, selection: dict, fingerprint: str, environment: dict | None, plan) -> ResultsFile:
    results: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "suite": suite.name,
        "suite_path": str(suite.path) if suite.path else None,
        "baseline": suite.baseline,
        "metrics": list(suite.metrics),
        "measure": suite.measure.model_dump(mode="json"),
        "gate": suite.gate.model_dump(mode="json"),  # harness compare reads it (verdict)
        "seed": suite.seed,
        "selection": selection,
        "fingerprint": fingerprint,
        "complete": False,
        "incomplete_reason": "in progress (or stopped without a chance to say so: killed, power cut)",
        "environment": environment if environment is not None else capture_environment(),
        "runs": [],
    }
    if plan is not None:
        results["train"] = plan.summary
    return ResultsFile.model_validate(results)


def stopped(exc: BaseException, results: ResultsFile | None, writer: ResultsWriter, path: Path) -> None:
    """Save what was measured, marked incomplete with the reason; tell the caller where it is."""
    if results is None:  # stopped before anything was written: leave no empty claimed file behind
        if path.is_file() and path.stat().st_size == 0:
            path.unlink()
        return
    results.complete, results.incomplete_reason = False, stop_reason(exc)
    try:
        writer.save(document(results))
    except Exception as save_exc:  # already on the fallback and it failed too: say so, keep the first error
        print(f"harness: could not save the results ({save_exc})", file=sys.stderr)
    try:
        exc.results_path = writer.path  # type: ignore[attr-defined]
    except AttributeError:
        pass
