"""Speed figures of a leaderboard: per scenario, the median pairs/s over the timed passes with a 95% bootstrap
interval and the VALID / INVALID verdict (``harness.run.verdict``); the ratio of two runs' medians with its
bootstrap interval (an MLX run against its PyTorch twin). Files written before repeats were recorded show the
pooled figure alone.

A run's scenarios: a schema-3 run keeps one record per scenario (``run.scenarios[name]``: ``pairs_per_s`` of each
pass, its verdict); older runs measured the single-query protocol only (``perf.pass_s``, ``run.verdict``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel
from scipy.stats import bootstrap

from ..scenarios import SINGLE_QUERY

CONFIDENCE = 0.95
RESAMPLES = 2000


class Speed(BaseModel):
    """One scenario's throughput in one run: the figures every printer shows."""

    scenario: str
    pairs_per_s: float | None  # the median over passes (pooled figure when there are fewer than 2)
    low: float | None = None  # 95% bootstrap interval of the median (None under 2 passes)
    high: float | None = None
    passes: list[float] = []  # pairs/s of each timed pass
    verdict: str | None = None  # VALID | INVALID
    reasons: list[str] = []


def pass_rates(perf: dict[str, Any]) -> list[float]:
    """pairs/s of each timed repeat (``perf.pass_s``)."""
    pairs = perf.get("pairs")
    return [pairs / s for s in perf.get("pass_s") or [] if pairs and s and s > 0]


def _bootstrap(samples: tuple, statistic) -> tuple[float, float]:
    res = bootstrap(
        samples,
        statistic,
        confidence_level=CONFIDENCE,
        n_resamples=RESAMPLES,
        method="percentile",
        vectorized=True,
        axis=-1,
        random_state=np.random.default_rng(0),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def median_interval(values: list[float]) -> tuple[float, float, float] | None:
    """Median and its 95% percentile-bootstrap interval (seeded: the report is reproducible); None under 2 values."""
    if len(values) < 2:
        return None
    arr = np.asarray(values, dtype=np.float64)
    if np.all(arr == arr[0]):
        return float(arr[0]), float(arr[0]), float(arr[0])
    low, high = _bootstrap((arr,), lambda x, axis: np.median(x, axis=axis))
    return float(np.median(arr)), low, high


def ratio_interval(head: list[float], base: list[float]) -> tuple[float, float, float] | None:
    """median(head) / median(base) and its 95% bootstrap interval (both samples resampled independently)."""
    if len(head) < 2 or len(base) < 2:
        return None
    a, b = np.asarray(head, dtype=np.float64), np.asarray(base, dtype=np.float64)
    ratio = float(np.median(a) / np.median(b))
    if np.all(a == a[0]) and np.all(b == b[0]):
        return ratio, ratio, ratio
    low, high = _bootstrap((a, b), lambda x, y, axis: np.median(x, axis=axis) / np.median(y, axis=axis))
    return ratio, low, high


def _speed(scenario: str, passes: list[float], pooled: float | None, verdict: dict | None) -> Speed:
    interval = median_interval(passes)
    figure = interval[0] if interval else pooled
    return Speed(
        scenario=scenario,
        pairs_per_s=figure,
        low=interval[1] if interval else None,
        high=interval[2] if interval else None,
        passes=passes,
        verdict=(verdict or {}).get("status"),
        reasons=list((verdict or {}).get("reasons") or []),
    )


def run_speeds(run: dict[str, Any]) -> dict[str, Speed]:
    """Scenario name -> its speed, for an ok measured run ({} otherwise)."""
    if run.get("status", "ok") != "ok":
        return {}
    out = {}
    for name, rec in (run.get("scenarios") or {}).items():
        passes = [x for x in rec.get("pairs_per_s") or [] if x]
        pooled = float(np.median(passes)) if passes else None
        out[name] = _speed(name, passes, pooled, rec.get("verdict"))
    perf = run.get("perf") or {}
    if SINGLE_QUERY not in out and perf.get("pairs_per_s") is not None:
        out[SINGLE_QUERY] = _speed(SINGLE_QUERY, pass_rates(perf), perf["pairs_per_s"], run.get("verdict"))
    return out


def speed_text(speed: Speed | None, verdict: bool = True) -> str:
    """``median [low, high] VERDICT``, or the pooled figure."""
    if speed is None or speed.pairs_per_s is None:
        return ""
    if speed.low is None:
        text = f"{speed.pairs_per_s:.1f}"
    else:
        text = f"{speed.pairs_per_s:.1f} [{speed.low:.1f}, {speed.high:.1f}]"
    return f"{text} {speed.verdict}" if verdict and speed.verdict else text


def speed_cell(run: dict[str, Any], scenario: str = SINGLE_QUERY) -> str:
    """The leaderboard cell of one scenario of a run (the single-query protocol by default)."""
    return speed_text(run_speeds(run).get(scenario))
