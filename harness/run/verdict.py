"""VALID / INVALID for one measured run's speed figures, from the suite's ``measure:`` thresholds.

A run is INVALID when it has too few latency samples, when its repeats' pass times vary too much (coefficient
of variation = sample sd / mean over ``perf.pass_s``), when the repeats gave different scores (the backend is
not deterministic), or when the machine was loaded (1-minute load average per core, before or after the timed
passes, above the limit). Every reason is recorded; quality figures are computed once, from the first pass."""

from __future__ import annotations

from typing import Any

import numpy as np


def coefficient_of_variation(values: list[float]) -> float | None:
    """Sample standard deviation / mean; None for fewer than two values."""
    if len(values) < 2:
        return None
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.std(ddof=1) / arr.mean())


def judge(perf: dict[str, Any], samples: int, measure) -> dict[str, Any]:
    """The verdict record of a run (``harness.results.models.Verdict``) under ``measure`` (a MeasureSpec)."""
    reasons = []
    if samples < measure.min_samples:
        reasons.append(f"too few samples: {samples} latency samples < min_samples {measure.min_samples}")
    cv = coefficient_of_variation(perf.get("pass_s") or [])
    if cv is not None and cv > measure.max_cv:
        reasons.append(f"pass times vary too much: coefficient of variation {cv:.3f} > max_cv {measure.max_cv}")
    if perf.get("repeats_identical") is False:
        reasons.append(f"scores differ between repeats (max |diff| {perf.get('max_repeat_abs_diff', 0.0):.3g})")
    cores = perf.get("cpu_count") or 1
    for when in ("before", "after"):
        load = perf.get(f"load_avg_{when}")
        if load is not None and load / cores > measure.max_load_per_core:
            reasons.append(
                f"machine loaded {when} the timed passes: load average {load:.2f} on {cores} cores "
                f"> max_load_per_core {measure.max_load_per_core}"
            )
    return {"status": "INVALID" if reasons else "VALID", "reasons": reasons, "cv": cv}
