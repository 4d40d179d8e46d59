"""What the parent resolves once, so that every system gets identical inputs, and how it turns scores into runs.

* ``prepare_reranker``: model directory, truncation length, dtype and weights fingerprint of one reranker.
* ``dataset_protocol`` / ``write_dataset_file``: the candidates every reranker's worker gets (no qrels).
* ``first_stage_run``: the first stage evaluated in its stored order.
* ``scored_run``: a worker's scores evaluated here (``harness.metrics.evaluate``) into an ok run.
* ``error_run``: every failed run, whatever failed, is made here.

Runs are typed records (``harness.results.Run``); the executor writes them with ``exclude_unset`` so a file holds
the keys each run was given.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import backends
from ..results import FIRST_STAGE, Protocol, Run


def error_run(dataset: str, reranker: str, backend: str, protocol: dict[str, Any], message: str, **extra) -> Run:
    """A run with ``status: "error"`` (``extra``: exit_code, signal, traceback, log_tail, warnings, train)."""
    return Run(
        dataset=dataset,
        reranker=reranker,
        backend=backend,
        device=None,
        status="error",
        error=message,
        metrics={},
        per_query={},
        protocol=Protocol.model_validate(protocol),
        **extra,
    )


@dataclass
class PreparedReranker:
    """One reranker as resolved once in the parent, for every dataset and every backend alike."""

    spec: dict[str, Any]  # the harness.suite.RerankerSpec as JSON, handed to the worker as is
    protocol: dict[str, Any]  # the reranker's part of each run's protocol
    error: str | None = None  # why it cannot run (each of its runs is then an error run)
    model_dir: str | None = None
    max_length: int | None = None
    module: str | None = None  # the backend's module (from the registry)


def prepare_reranker(spec) -> PreparedReranker:
    """Resolve once, in the parent: model directory (safetensors only), truncation length, dtype, weights
    fingerprint. A failure is kept as ``error``: its runs become error runs, the other rerankers go on."""
    fields = spec.model_dump(mode="json")
    protocol: dict[str, Any] = {
        "model": spec.model,
        "instruction": fields["instruction"],
        "dtype": fields["dtype"],
        "batch_size": fields["batch_size"],
        "device_requested": fields["device"],
        "options": fields["options"],
    }
    prepared = PreparedReranker(spec=fields, protocol=protocol)
    try:
        prepared.module = backends.backend_module(spec.backend)
        protocol["dtype"] = backends.canonical_dtype(fields["dtype"])
        model_dir = backends.resolve_model_dir(spec.model)
        backends.require_safetensors(model_dir)
        max_length, source = backends.resolve_max_length(model_dir, fields["max_length"])
        protocol.update(
            model_path=str(model_dir),
            model_fingerprint=backends.weights_fingerprint(model_dir),
            max_length=max_length,
            max_length_source=source,
        )
        prepared.model_dir, prepared.max_length = str(model_dir), max_length
    except Exception as exc:  # recorded as an error run per dataset; the other rerankers go on
        prepared.error = f"{type(exc).__name__}: {exc}"
    return prepared


def dataset_protocol(ds, spec, seed: int, fingerprint: str) -> dict[str, Any]:
    """How the candidates were made (the loader's own record first): identical for every system compared."""
    protocol = dict(ds.protocol or {})
    protocol["first_stage"] = ds.first_stage
    protocol["relevance_level"] = ds.relevance_level
    protocol.setdefault("top_k", spec.top_k)
    protocol.setdefault("add_judged_positives", spec.add_judged_positives)
    protocol.setdefault("max_queries", spec.max_queries)
    protocol.setdefault("seed", seed)
    protocol.setdefault("n_queries", len(ds.candidates))
    protocol.setdefault("n_pairs", sum(len(c) for c in ds.candidates.values()))
    protocol.setdefault("source", ds.source)
    protocol["dataset_fingerprint"] = fingerprint
    return protocol


def write_dataset_file(ds, fingerprint: str, path: Path) -> Path:
    """What a worker needs (no qrels): queries and candidate texts in first-stage order."""
    queries = [
        {"qid": qid, "query": ds.queries[qid], "docids": [c.docid for c in cands], "texts": [c.text for c in cands]}
        for qid, cands in ds.candidates.items()
        if cands
    ]
    path.write_text(json.dumps({"name": ds.name, "fingerprint": fingerprint, "queries": queries}))
    return path


def first_stage_run(ds, metrics: list[str], protocol: dict[str, Any]) -> Run:
    """The first stage evaluated in its stored order (score = candidates - position, so ties cannot reorder it)."""
    from ..metrics import evaluate

    run = {qid: {c.docid: float(len(cands) - i) for i, c in enumerate(cands)} for qid, cands in ds.candidates.items()}
    means, per_query = evaluate(ds.qrels, run, metrics, ds.relevance_level)
    return Run(
        dataset=ds.name,
        reranker=ds.first_stage,
        backend=FIRST_STAGE,
        device=None,
        status="ok",
        metrics=means,
        per_query=per_query,
        protocol=Protocol.model_validate({**protocol, "scoring": "first-stage order"}),
    )


def scored_run(
    ds, name: str, backend: str, protocol: dict[str, Any], result: dict[str, Any], metrics: list[str]
) -> Run:
    """A worker's result (``harness.run.worker.MeasureResult`` when ok) -> a run: its evaluated scores checked
    against the candidates and evaluated here against the qrels."""
    from ..metrics import evaluate
    from .spawn import WorkerFailure
    from .worker import MeasureResult

    if result.get("status") != "ok":  # spawn_worker's WorkerFailure: the error and its cause
        failure = WorkerFailure.model_validate(result)
        cause = failure.model_dump(include={"exit_code", "signal", "traceback", "log_tail"}, exclude_none=True)
        return error_run(ds.name, name, backend, protocol, failure.error, **cause)
    measured = MeasureResult.model_validate(result)
    scored = {}
    for qid, cands in ds.candidates.items():
        scores = measured.scores.get(qid, [])
        if len(scores) != len(cands):
            message = f"worker returned {len(scores)} scores for query {qid}, which has {len(cands)} candidates"
            return error_run(ds.name, name, backend, protocol, message)
        scored[qid] = {c.docid: s for c, s in zip(cands, scores)}
    try:
        means, per_query = evaluate(ds.qrels, scored, metrics, ds.relevance_level)
    except ValueError as exc:  # e.g. NaN scores
        return error_run(ds.name, name, backend, protocol, f"evaluation failed: {exc}", warnings=measured.warnings)
    return Run(
        dataset=ds.name,
        reranker=name,
        backend=backend,
        device=measured.device,
        status="ok",
        metrics=means,
        perf=measured.perf,
        scenarios=measured.scenarios,
        protocol=Protocol.model_validate(protocol),
        per_query=per_query,
        latency_samples_ms=measured.latency_samples_ms,
        system=measured.system,
        warnings=measured.warnings,
    )
