"""The statistical tests: a paired randomization (sign-flip) test on per-query values, Mann-Whitney U on speed
samples (scipy), and Holm's step-down adjustment across the metrics of one run."""

from __future__ import annotations

import itertools

import numpy as np
from scipy import stats

EXACT_LIMIT = 16  # at most 2**16 sign patterns: enumerate them all


def paired_randomization_p(base: np.ndarray, head: np.ndarray, permutations: int = 10000, seed: int = 0) -> float:
    """Two-sided p of the mean paired difference under random sign flips (exact for few nonzero differences).

    Zero differences do not change the statistic under a flip, so only nonzero ones are permuted. The p-value
    counts the observed assignment (``(hits + 1) / (n + 1)`` when sampled), so it is never 0.
    """
    diff = np.asarray(head, dtype=float) - np.asarray(base, dtype=float)
    nonzero = diff[diff != 0]
    if nonzero.size == 0:
        return 1.0
    observed = abs(nonzero.sum())
    eps = 1e-12 * max(1.0, observed)
    if nonzero.size <= EXACT_LIMIT:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=nonzero.size)))
        sums = np.abs(signs @ np.abs(nonzero))
        return float(np.mean(sums >= observed - eps))
    rng = np.random.default_rng(seed)
    signs = rng.choice((1.0, -1.0), size=(permutations, nonzero.size))
    hits = int(np.sum(np.abs(signs @ np.abs(nonzero)) >= observed - eps))
    return (hits + 1) / (permutations + 1)


def mann_whitney_p(base: list[float], head: list[float]) -> float | None:
    """Two-sided Mann-Whitney U p (scipy), None with fewer than 2 samples a side or all samples equal."""
    if len(base) < 2 or len(head) < 2:
        return None
    if len(set(base) | set(head)) == 1:
        return 1.0
    return float(stats.mannwhitneyu(head, base, alternative="two-sided").pvalue)


def holm(pvalues: list[float | None]) -> list[float | None]:
    """Holm-adjusted p-values (step-down, monotone), None kept in place."""
    order = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    m = len(order)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out
