"""Results files: one JSON document per ``harness run`` (schema version 1, see docs/results-schema.md)."""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
FIRST_STAGE = "first_stage"  # the ``backend`` of a dataset's first-stage run
STATUSES = ("ok", "error")
PERF_KEYS = ("pairs_per_s", "tokens_per_s", "latency_ms", "peak_memory_mb")
LATENCY_KEYS = ("p50", "p95", "p99")
TRAIN_NUMBERS = ("wall_time_s", "train_time_s", "tokens_per_s", "peak_memory_mb")  # ok train blocks: number or null


class ResultsError(ValueError):
    """A results file is missing, unreadable or does not follow the schema."""


def default_output(suite_name: str, now: _dt.datetime | None = None, directory: str | Path = "results") -> Path:
    """``results/<suite>-<UTC timestamp>.json``."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", suite_name) or "suite"
    return Path(directory) / f"{safe}-{now.strftime('%Y%m%dT%H%M%SZ')}.json"


def finite_or_none(value):
    """JSON has no NaN/inf: non-finite floats are stored as null (``None``), recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number_or_null(value) -> bool:
    return value is None or _number(value)


def validate(obj: Any) -> None:
    """Raise ResultsError naming the first place where ``obj`` departs from schema 1."""
    if not isinstance(obj, dict):
        raise ResultsError(f"expected a JSON object at the top level, got {type(obj).__name__}")
    if "schema" not in obj:
        raise ResultsError("no 'schema' key: not a harness results file")
    if obj["schema"] != SCHEMA_VERSION:
        raise ResultsError(
            f"schema {obj['schema']!r} is not supported: this harness reads schema {SCHEMA_VERSION}"
        )
    for key, kind in (("suite", str), ("environment", dict), ("runs", list)):
        if not isinstance(obj.get(key), kind):
            raise ResultsError(f"'{key}' must be a {kind.__name__}, got {type(obj.get(key)).__name__}")
    if obj.get("baseline") is not None and not isinstance(obj["baseline"], str):
        raise ResultsError("'baseline' must be a string or null")
    for i, run in enumerate(obj["runs"]):
        _validate_run(run, f"runs[{i}]")
    train = obj.get("train")
    if train is not None:  # optional: suites with a train: section
        if not isinstance(train, dict) or not isinstance(train.get("models"), list):
            raise ResultsError("'train' must be an object with a 'models' list")
        for i, block in enumerate(train["models"]):
            _validate_train_block(block, f"train.models[{i}]")


def _validate_train_block(block: Any, where: str) -> None:
    if not isinstance(block, dict):
        raise ResultsError(f"{where}: the train block must be an object")
    for key in ("model", "backend"):
        if not isinstance(block.get(key), str) or not block[key]:
            raise ResultsError(f"{where}: train.{key} must be a non-empty string")
    if block.get("status") not in STATUSES:
        raise ResultsError(f"{where}: train.status must be one of {STATUSES}, got {block.get('status')!r}")
    if block["status"] == "error":
        if not isinstance(block.get("error"), str) or not block["error"]:
            raise ResultsError(f"{where}: a failed training needs a non-empty train.error")
        return
    for key in TRAIN_NUMBERS:
        if key not in block or not _number_or_null(block[key]):
            raise ResultsError(f"{where}: train.{key} must be a number or null")
    if not isinstance(block.get("steps"), int) or isinstance(block.get("steps"), bool):
        raise ResultsError(f"{where}: train.steps must be an integer")


def _validate_run(run: Any, where: str) -> None:
    if not isinstance(run, dict):
        raise ResultsError(f"{where}: expected an object, got {type(run).__name__}")
    for key in ("dataset", "reranker", "backend"):
        if not isinstance(run.get(key), str) or not run[key]:
            raise ResultsError(f"{where}: '{key}' must be a non-empty string")
    where = f"{where} ({run['reranker']} on {run['dataset']})"
    if run.get("status") not in STATUSES:
        raise ResultsError(f"{where}: 'status' must be one of {STATUSES}, got {run.get('status')!r}")
    if not isinstance(run.get("protocol"), dict):
        raise ResultsError(f"{where}: 'protocol' must be an object")
    if "train" in run:
        _validate_train_block(run["train"], where)
    if run["status"] == "error":
        if not isinstance(run.get("error"), str) or not run["error"]:
            raise ResultsError(f"{where}: an error run needs a non-empty 'error' message")
        return
    metrics = run.get("metrics")
    if not isinstance(metrics, dict) or not all(_number_or_null(v) for v in metrics.values()):
        raise ResultsError(f"{where}: 'metrics' must map metric names to numbers")
    per_query = run.get("per_query")
    if not isinstance(per_query, dict) or not all(
        isinstance(v, dict) and all(_number_or_null(x) for x in v.values()) for v in per_query.values()
    ):
        raise ResultsError(f"{where}: 'per_query' must map metric -> qid -> number")
    if run["backend"] == FIRST_STAGE:
        return
    perf = run.get("perf")
    if not isinstance(perf, dict):
        raise ResultsError(f"{where}: 'perf' must be an object")
    for key in PERF_KEYS:
        if key not in perf:
            raise ResultsError(f"{where}: perf is missing '{key}'")
    for key in ("pairs_per_s", "tokens_per_s", "peak_memory_mb"):
        if not _number_or_null(perf[key]):
            raise ResultsError(f"{where}: perf.{key} must be a number or null")
    latency = perf["latency_ms"]
    if not isinstance(latency, dict) or not all(_number_or_null(latency.get(k, "missing")) for k in LATENCY_KEYS):
        raise ResultsError(f"{where}: perf.latency_ms must hold numbers {', '.join(LATENCY_KEYS)}")
    samples = run.get("latency_samples_ms")
    if not isinstance(samples, list) or not all(_number(x) for x in samples):
        raise ResultsError(f"{where}: 'latency_samples_ms' must be a list of numbers")


def save_results(obj: dict, path: str | Path) -> Path:
    """Validate and write ``obj`` atomically (temporary file + rename: a reader never sees half a file)."""
    obj = finite_or_none(obj)
    validate(obj)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1, allow_nan=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_results(path: str | Path) -> dict:
    """Read and validate a results file; ResultsError (one line, with the path) for anything wrong."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such results file") from None
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not valid JSON ({exc})") from None
    try:
        validate(obj)
    except ResultsError as exc:
        raise ResultsError(f"{path}: {exc}") from None
    return obj
