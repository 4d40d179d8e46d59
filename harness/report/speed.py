"""The speed cell of a leaderboard: median pairs/s over the repeats with a 95% bootstrap interval, and the run's
VALID / INVALID verdict (``harness.run.verdict``). Files written before repeats were recorded show the pooled
figure alone."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import bootstrap

CONFIDENCE = 0.95
RESAMPLES = 2000


def pass_rates(perf: dict[str, Any]) -> list[float]:
    """pairs/s of each timed repeat (``perf.pass_s``)."""
    pairs = perf.get("pairs")
    return [pairs / s for s in perf.get("pass_s") or [] if pairs and s and s > 0]


def median_interval(values: list[float]) -> tuple[float, float, float] | None:
    """Median and its 95% percentile-bootstrap interval (seeded: the report is reproducible); None under 2 values."""
    if len(values) < 2:
        return None
    arr = np.asarray(values, dtype=np.float64)
    if np.all(arr == arr[0]):
        return float(arr[0]), float(arr[0]), float(arr[0])
    res = bootstrap((arr,), np.median, confidence_level=CONFIDENCE, n_resamples=RESAMPLES, method="percentile",
                    random_state=np.random.default_rng(0))
    ci = res.confidence_interval
    return float(np.median(arr)), float(ci.low), float(ci.high)


def speed_cell(run: dict[str, Any]) -> str:
    """``median [low, high] VERDICT`` for a run with repeats, else its pooled pairs/s (and verdict if any)."""
    perf = run.get("perf") or {}
    if not perf or perf.get("pairs_per_s") is None:
        return ""
    interval = median_interval(pass_rates(perf))
    text = f"{perf['pairs_per_s']:.1f}" if interval is None else "{:.1f} [{:.1f}, {:.1f}]".format(*interval)
    verdict = run.get("verdict")
    return f"{text} {verdict['status']}" if verdict else text
