"""VALID / INVALID for one measured run's speed figures, per scenario and for the run, from the suite's ``measure:``
thresholds.

A scenario (``judge_scenario``, on its ``ScenarioRecord``) is INVALID when it has too few timed calls, when its
passes' times vary too much (coefficient of variation = sample sd / mean over ``pass_s``), when its passes' scores
differ from each other or from the evaluated scores (the first scenario's first pass) beyond the dtype's
tolerance (``SCORE_TOLERANCE``), when ``min_time_s`` was not reached within ``max_repeats`` passes, or when the
machine was loaded (1-minute load average per core, before or after the timed passes, above the limit). A run
(``judge_run``) is INVALID when any of its scenarios is. Every reason is recorded; quality figures are computed
once, from the evaluated scores."""

from __future__ import annotations

from typing import Any

import numpy as np

#: how far a score may be from the evaluated score (another pass, another scenario's batching) before the run is
#: INVALID: |a - b| <= atol + rtol * |b| (numpy.allclose), by the run's dtype. Batches of other widths change
#: the reduction order of matmuls and softmax; these bounds are a few ulps of the dtype amplified by depth.
SCORE_TOLERANCE: dict[str, dict[str, float]] = {
    "float32": {"atol": 1e-4, "rtol": 1e-4},
    "tf32": {"atol": 1e-2, "rtol": 1e-2},  # TF32 inputs keep float16's 10-bit mantissa
    "float16": {"atol": 1e-2, "rtol": 1e-2},
    "bfloat16": {"atol": 5e-2, "rtol": 5e-2},
}


def score_check(passes: list[list[np.ndarray]], reference: list[np.ndarray], dtype: str) -> tuple[float, bool]:
    """Largest |score - reference| over every pass, and whether every pass is within ``dtype``'s tolerance.
    Non-finite scores agree only with the same non-finite value."""
    tol = SCORE_TOLERANCE.get(dtype, SCORE_TOLERANCE["float32"])
    diff, agree = 0.0, True
    for scores in passes:
        for a, b in zip(scores, reference):
            if len(a) != len(b):
                return float("inf"), False
            if not len(a):
                continue
            with np.errstate(invalid="ignore"):
                d = np.abs(a.astype(np.float64) - b.astype(np.float64))
            finite = np.isfinite(d)
            diff = max(diff, float(d[finite].max()) if finite.any() else 0.0)
            agree = agree and bool(np.allclose(a, b, equal_nan=True, **tol))
    return diff, agree


def coefficient_of_variation(values: list[float]) -> float | None:
    """Sample standard deviation / mean; None for fewer than two values."""
    if len(values) < 2:
        return None
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.std(ddof=1) / arr.mean())


def judge_scenario(record: dict[str, Any], measure) -> dict[str, Any]:
    """The verdict of one scenario's timed passes (``ScenarioRecord`` as JSON) under ``measure``."""
    reasons = []
    if (record.get("samples") or 0) < measure.min_samples:
        reasons.append(f"too few samples: {record.get('samples')} timed calls < min_samples {measure.min_samples}")
    cv = coefficient_of_variation(record.get("pass_s") or [])
    if cv is not None and cv > measure.max_cv:
        reasons.append(f"pass times vary too much: coefficient of variation {cv:.3f} > max_cv {measure.max_cv}")
    tol = record.get("score_tolerance") or {}
    bound = f"atol {tol.get('atol')} + rtol {tol.get('rtol')} x |score|"
    if record.get("repeats_agree") is False:
        reasons.append(
            f"scores differ between repeats (max |diff| {record.get('max_repeat_abs_diff', 0.0):.3g}; "
            f"tolerance {bound})"
        )
    elif record.get("scores_agree") is False:
        reasons.append(
            f"scores differ from the evaluated scores (max |diff| {record.get('max_abs_diff', 0.0):.3g}; "
            f"tolerance {bound})"
        )
    if record.get("min_time_reached") is False:
        reasons.append(
            f"min_time_s {record.get('min_time_s')} not reached in max_repeats {record.get('repeats')} "
            f"passes ({sum(record.get('pass_s') or []):.3g} s)"
        )
    reasons += list(record.get("invalid_reasons") or [])  # the scenario's own rules (server: p99 bound, rate)
    cores = record.get("cpu_count") or 1
    for when in ("before", "after"):
        load = record.get(f"load_avg_{when}")
        if load is not None and load / cores > measure.max_load_per_core:
            reasons.append(
                f"machine loaded {when} the timed passes: load average {load:.2f} on {cores} cores "
                f"> max_load_per_core {measure.max_load_per_core}"
            )
    return {"status": "INVALID" if reasons else "VALID", "reasons": reasons, "cv": cv}


def judge_run(scenarios: dict[str, dict[str, Any]], measure) -> dict[str, Any]:
    """Each scenario's verdict (set on its record) and the run's: INVALID when any scenario is, its reasons
    prefixed by the scenario's name; ``cv`` is the first scenario's."""
    reasons, cvs = [], []
    for name, record in scenarios.items():
        record["verdict"] = judge_scenario(record, measure)
        reasons += [f"{name}: {r}" for r in record["verdict"]["reasons"]]
        cvs.append(record["verdict"]["cv"])
    return {"status": "INVALID" if reasons else "VALID", "reasons": reasons, "cv": cvs[0] if cvs else None}


def judge_records(scenarios: dict, measure) -> tuple:
    """``judge_run`` on typed ``ScenarioRecord``s: (the run's ``Verdict``, the records with their verdicts)."""
    from ..results.models import ScenarioRecord, Verdict

    records = {name: rec.model_dump(mode="json", exclude_unset=True) for name, rec in scenarios.items()}
    verdict = judge_run(records, measure)
    return Verdict.model_validate(verdict), {name: ScenarioRecord.model_validate(r) for name, r in records.items()}
