"""Interleaved rounds: ``harness compare B1 H1 B2 H2 ...`` judges each (BASE, HEAD) round, then combines them.

Why: passes inside one ``harness run`` share that process's machine state, so a same-commit pair on a shared or
drifting machine can differ by more than the speed factor with Mann-Whitney U at its floor (docs/ci.md, the
false-positive section). Between processes the drift is controlled by the order of the runs (bench-pr.sh runs
base/head, then head/base, ...: alternate order cancels a steady drift) and by asking every round to agree.

The rule, in this one place (``combine``); with one round it is that round's verdict unchanged:

- speed, per (dataset, reranker, scenario): ``slower`` only when EVERY round says ``slower`` (asv's rule in that
  round: ratio past the factor AND Mann-Whitney U p < alpha) AND the pooled ratio (median of all head samples /
  median of all base samples) passes the factor; ``faster`` the same way down. Otherwise the pooled ratio decides
  between ``no change`` and ``~ slower/faster, not significant``. It gates only when every run of every round is
  VALID (``speed_needs_valid_runs``). The pooled Mann-Whitney p is reported (it treats passes as independent:
  read it as a description, not as the test).
- memory, per (dataset, reranker): ``higher`` only when every round says ``higher`` AND the ratio of the median
  peaks passes the factor.
- quality, per (dataset, reranker, metric): a regression when it is one in ANY round (inference is deterministic:
  a drop is never timing noise; rounds that disagree are named in the notes).
- a run that was ok in base and failed in head fails the comparison in any round (a crash is not noise).

Speed and memory are measurements that move with the machine, so they must repeat; quality and crashes do not.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..results.models import ResultsFile
from .errors import NotComparable
from .gate import Gate
from .inputs import check_comparable
from .records import Comparison, MemoryVerdict, QualityVerdict, RoundSummary, SpeedRound, SpeedVerdict
from .stats import mann_whitney_p
from .verdicts import compare_results, speed_samples

Round = tuple[ResultsFile, ResultsFile, str, str]  # base, head, base name, head name


def check_rounds(rounds: Sequence[Round]) -> None:
    """Every round must measure what round 1 measured: same commits and comparable runs on each side."""
    if not rounds:
        raise ValueError("no round")
    base1, head1, base_name1, head_name1 = rounds[0]
    for base, head, base_name, head_name in rounds[1:]:
        for side, first, other, first_name, other_name in (
            ("base", base1, base, base_name1, base_name),
            ("head", head1, head, head_name1, head_name),
        ):
            check_comparable(first, other, first_name, other_name)
            a, b = (first.environment.git or {}).get("commit"), (other.environment.git or {}).get("commit")
            if a != b:
                raise NotComparable(f"{other_name}: {side} commit {b!r} differs from {first_name}'s {a!r}")


def compare_rounds(rounds: Sequence[Round], gate: Gate) -> Comparison:
    """Each round compared by ``compare_results``, then combined (``combine``)."""
    check_rounds(rounds)
    per_round = [compare_results(base, head, gate, bn, hn) for base, head, bn, hn in rounds]
    return combine(per_round, rounds, gate)


def _key(v) -> tuple:
    return (v.dataset, v.reranker, getattr(v, "scenario", None) or getattr(v, "metric", None))


def _by_key(rows) -> dict:
    return {_key(v): v for v in rows}


def _pooled_speed(rows: list[SpeedVerdict], rounds: Sequence[Round], gate: Gate) -> SpeedVerdict:
    """One speed verdict from every round's (same key): every round agrees AND the pooled ratio passes."""
    first = rows[0]
    if len(rows) == 1:
        return first
    base_all: list[float] = []
    head_all: list[float] = []
    for (base, head, _, _), _row in zip(rounds, rows, strict=True):
        run_a = next(r for r in base.runs if (r.dataset, r.reranker) == (first.dataset, first.reranker))
        run_b = next(r for r in head.runs if (r.dataset, r.reranker) == (first.dataset, first.reranker))
        base_all += speed_samples(run_a, gate.min_repeats_for_repeat_samples, first.scenario)[1]
        head_all += speed_samples(run_b, gate.min_repeats_for_repeat_samples, first.scenario)[1]
    med_a = float(np.median(base_all)) if base_all else None
    med_b = float(np.median(head_all)) if head_all else None
    ratio = med_b / med_a if med_a and med_b is not None else None
    verdicts = {v.verdict for v in rows}
    if ratio is not None and ratio > gate.speed_factor:
        label = "slower" if verdicts == {"slower"} else "~ slower, not significant"
    elif ratio is not None and ratio < 1 / gate.speed_factor:
        label = "faster" if verdicts == {"faster"} else "~ faster, not significant"
    else:
        label = "no change"
    invalid = [f"{side} {k}" for k, v in enumerate(rows, 1) for side in v.invalid]  # side and round
    return first.model_copy(
        update={
            "samples": first.samples if len({v.samples for v in rows}) == 1 else "per-query latency",
            "base_n": len(base_all),
            "head_n": len(head_all),
            "base_median_ms": med_a,
            "head_median_ms": med_b,
            "ratio": ratio,
            "p_value": mann_whitney_p(base_all, head_all),
            "verdict": label,
            "invalid": invalid,
            "regression": label == "slower" and gate.speed_gate and not (invalid and gate.speed_needs_valid_runs),
            "rounds": [SpeedRound(ratio=v.ratio, p_value=v.p_value, verdict=v.verdict) for v in rows],
        }
    )


def _pooled_memory(rows: list[MemoryVerdict], gate: Gate) -> MemoryVerdict:
    """Median peaks over the rounds; ``higher`` only when every round says so and the median ratio passes."""
    if len(rows) == 1:
        return rows[0]
    a = [v.base_mb for v in rows if v.base_mb is not None]
    b = [v.head_mb for v in rows if v.head_mb is not None]
    if len(a) < len(rows) or len(b) < len(rows) or min(a) <= 0:
        return rows[0].model_copy(update={"ratio": None, "verdict": "not measured", "regression": False})
    base_mb, head_mb = float(np.median(a)), float(np.median(b))
    ratio, labels = head_mb / base_mb, {v.verdict for v in rows}
    if ratio > gate.memory_factor:
        label = "higher" if labels == {"higher"} else "no change"
    elif ratio < 1 / gate.memory_factor:
        label = "lower" if labels == {"lower"} else "no change"
    else:
        label = "no change"
    return rows[0].model_copy(
        update={
            "base_mb": base_mb,
            "head_mb": head_mb,
            "ratio": ratio,
            "verdict": label,
            "regression": label == "higher" and gate.memory_gate,
        }
    )


def _pooled_quality(rows: list[QualityVerdict], notes: list[str]) -> QualityVerdict:
    """A regression when it is one in ANY round: scores are deterministic, so no round is noise (round 1's row,
    or the first round's regression); rounds that disagree are named in the notes (nondeterministic scores)."""
    if len({(v.verdict, v.delta) for v in rows}) > 1:
        first = rows[0]
        notes.append(
            f"{first.reranker} on {first.dataset} {first.metric}: rounds disagree on quality "
            f"({', '.join(v.verdict if v.delta is None else f'{v.verdict} {v.delta:+.4g}' for v in rows)}): "
            "scores are not deterministic"
        )
    return next((v for v in rows if v.regression), rows[0])


def _combined(per_round: list[Comparison], field: str) -> list[tuple[tuple, list]]:
    """Rows of ``field`` keyed as in round 1, with that key's row in every round; keys not in every round dropped."""
    maps = [_by_key(getattr(c, field)) for c in per_round]
    return [(k, [m[k] for m in maps]) for k in maps[0] if all(k in m for m in maps)]


def combine(per_round: list[Comparison], rounds: Sequence[Round], gate: Gate) -> Comparison:
    """The rounds' comparisons as one (see the module docstring for the rule)."""
    several = len(per_round) > 1
    first = per_round[0]
    notes: list[str] = []
    tag = (lambda k, text: f"round {k}: {text}") if several else (lambda k, text: text)
    for k, c in enumerate(per_round, 1):
        notes += [tag(k, n) for n in c.notes]
    out = first.model_copy(
        update={
            "base": ", ".join(c.base for c in per_round),
            "head": ", ".join(c.head for c in per_round),
            "quality": [_pooled_quality(rows, notes) for _, rows in _combined(per_round, "quality")],
            "speed": [_pooled_speed(rows, rounds, gate) for _, rows in _combined(per_round, "speed")],
            "memory": [_pooled_memory(rows, gate) for _, rows in _combined(per_round, "memory")],
            "failures": [tag(k, f) for k, c in enumerate(per_round, 1) for f in c.failures],
            "missing": sorted({m for c in per_round for m in c.missing}),
            "notes": notes,
            "rounds": [
                RoundSummary(
                    base=c.base,
                    head=c.head,
                    exit_status=c.exit_status,
                    regressions=c.regressions,
                )
                for c in per_round
            ]
            if several
            else [],
        }
    )
    return out
