"""Quality, speed and memory verdicts of paired runs, and ``compare_files`` that builds the ``Comparison``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..results.models import ResultsFile, Run
from ..scenarios import SINGLE_QUERY
from .gate import Gate
from .inputs import check_comparable, pair_runs, read_file
from .records import Comparison, MemoryVerdict, QualityVerdict, SpeedVerdict
from .stats import holm, mann_whitney_p, paired_randomization_p


def quality_verdicts(base: Run, head: Run, metrics: list[str], gate: Gate) -> list[QualityVerdict]:
    """One verdict per metric on the per-query values both runs have; p-values Holm-adjusted across metrics."""
    rows, raw_p = [], []
    for metric in metrics:
        a, b = base.per_query.get(metric, {}), head.per_query.get(metric, {})
        qids = sorted(q for q in a if q in b and a[q] is not None and b[q] is not None)
        x = np.array([a[q] for q in qids], dtype=float)
        y = np.array([b[q] for q in qids], dtype=float)
        diff = y - x
        raw_p.append(paired_randomization_p(x, y, gate.permutations, gate.seed) if qids else None)
        rows.append((metric, qids, x, y, diff))
    out = []
    for (metric, qids, x, y, diff), p in zip(rows, holm(raw_p), strict=True):
        delta = float(diff.mean()) if qids else None
        changed = int(np.count_nonzero(diff))
        significant = p is not None and p < gate.quality_alpha
        if changed == 0:
            label = "identical"
        elif abs(delta) <= gate.quality_tolerance:
            label = "within tolerance"
        elif significant or not gate.quality_requires_significance:
            label = "worse" if delta < 0 else "better"
        else:
            label = "changed, not significant"
        out.append(
            QualityVerdict(
                dataset=base.dataset,
                reranker=base.reranker,
                metric=metric,
                base=float(x.mean()) if qids else None,
                head=float(y.mean()) if qids else None,
                delta=delta,
                queries=len(qids),
                queries_changed=changed,
                max_abs_diff=float(np.abs(diff).max()) if qids else 0.0,
                p_value=p,
                verdict=label,
                regression=label == "worse",
            )
        )
    return out


def scenarios_of(base: Run, head: Run) -> list[str]:
    """The scenarios both runs measured (schema 3: ``run.scenarios``; older files: the single-query protocol)."""

    def names(run: Run) -> list[str]:
        return list(run.scenarios) if run.scenarios else [SINGLE_QUERY]

    return [s for s in names(head) if s in names(base)]


def speed_samples(run: Run, min_repeats: int, scenario: str = SINGLE_QUERY) -> tuple[str, list[float]]:
    """One sample per timed pass (its time, ms) when there are enough passes, else each query's latency.

    A schema-3 run's passes are ``run.scenarios[scenario].pass_s``; an older run's are rebuilt from
    ``latency_samples_ms``, which holds repeat 1's queries, then repeat 2's, ... (docs/results-schema.md). The
    offline scenario has no per-query latencies: its samples are its passes, however few.
    """
    record = (run.scenarios or {}).get(scenario)
    if record is not None and (len(record.pass_s) >= min_repeats or scenario != SINGLE_QUERY):
        return "per-repeat pass time", [s * 1000 for s in record.pass_s]
    samples = list(run.latency_samples_ms or [])
    repeats = run.perf.repeats if run.perf and run.perf.repeats else 1
    if repeats >= min_repeats and samples and len(samples) % repeats == 0:
        size = len(samples) // repeats
        return "per-repeat pass time", [sum(samples[i * size : (i + 1) * size]) for i in range(repeats)]
    return "per-query latency", samples


def _invalid(run: Run, scenario: str) -> bool:
    record = (run.scenarios or {}).get(scenario)
    verdict = record.verdict if record is not None and record.verdict is not None else run.verdict
    return verdict is not None and verdict.status == "INVALID"


def speed_verdict(base: Run, head: Run, gate: Gate, scenario: str = SINGLE_QUERY) -> SpeedVerdict:
    """asv's rule: slower only when the median ratio passes the factor AND Mann-Whitney U agrees (p < alpha)."""
    kind_a, a = speed_samples(base, gate.min_repeats_for_repeat_samples, scenario)
    kind_b, b = speed_samples(head, gate.min_repeats_for_repeat_samples, scenario)
    kind = kind_a if kind_a == kind_b else "per-query latency"
    if kind_a != kind_b:
        a, b = list(base.latency_samples_ms or []), list(head.latency_samples_ms or [])
    med_a = float(np.median(a)) if a else None
    med_b = float(np.median(b)) if b else None
    ratio = med_b / med_a if med_a and med_b is not None else None
    p = mann_whitney_p(a, b)
    invalid = [side for side, run in (("base", base), ("head", head)) if _invalid(run, scenario)]
    agrees = p is not None and p < gate.speed_alpha
    if ratio is None or 1 / gate.speed_factor <= ratio <= gate.speed_factor:
        label = "no change"
    elif ratio > gate.speed_factor:
        label = "slower" if agrees else "~ slower, not significant"
    else:
        label = "faster" if agrees else "~ faster, not significant"
    return SpeedVerdict(
        dataset=base.dataset,
        reranker=base.reranker,
        scenario=scenario,
        samples=kind,
        base_n=len(a),
        head_n=len(b),
        base_median_ms=med_a,
        head_median_ms=med_b,
        ratio=ratio,
        p_value=p,
        verdict=label,
        invalid=invalid,
        regression=label == "slower" and gate.speed_gate and not (invalid and gate.speed_needs_valid_runs),
    )


def memory_verdict(base: Run, head: Run, gate: Gate) -> MemoryVerdict:
    """Peak memory (the backend's own measure) up by more than the factor; no statistical test."""
    a = base.perf.peak_memory_mb if base.perf else None
    b = head.perf.peak_memory_mb if head.perf else None
    measure = (head.system or {}).get("memory_measure")
    if a is None or b is None or a <= 0:
        ratio, label = None, "not measured"
    else:
        ratio = b / a
        label = "higher" if ratio > gate.memory_factor else "lower" if ratio < 1 / gate.memory_factor else "no change"
    return MemoryVerdict(
        dataset=base.dataset,
        reranker=base.reranker,
        measure=measure,
        base_mb=a,
        head_mb=b,
        ratio=ratio,
        verdict=label,
        regression=label == "higher" and gate.memory_gate,
    )


def compare_results(base: ResultsFile, head: ResultsFile, gate: Gate, base_name: str, head_name: str) -> Comparison:
    """The comparison of two results files (NotComparable when they measured different things)."""
    check_comparable(base, head, base_name, head_name)
    pairs, missing = pair_runs(base, head)
    metrics = [m for m in base.metrics if m in head.metrics]
    out = Comparison(
        base=base_name,
        head=head_name,
        gate=gate,
        missing=missing,
        base_commit=(base.environment.git or {}).get("commit"),
        head_commit=(head.environment.git or {}).get("commit"),
        chip=head.environment.chip.get("name"),
    )
    for run_a, run_b in pairs:
        if run_a.status != "ok":
            out.notes.append(f"{run_a.reranker} on {run_a.dataset}: failed in base, not compared")
            continue
        if run_b.status != "ok":
            out.failures.append(f"{run_b.reranker} on {run_b.dataset}: {run_b.error}")
            continue
        out.quality += quality_verdicts(run_a, run_b, metrics, gate)
        out.speed += [speed_verdict(run_a, run_b, gate, scenario) for scenario in scenarios_of(run_a, run_b)]
        out.memory.append(memory_verdict(run_a, run_b, gate))
    for results, name in ((base, base_name), (head, head_name)):
        if results.complete is False:
            out.notes.append(f"{name} is incomplete: {results.incomplete_reason}")
    return out


def compare_files(base: str | Path, head: str | Path, gate: Gate | None = None) -> Comparison:
    """Read both files through the harness's loader and compare them (one round)."""
    return compare_results(read_file(base), read_file(head), gate or Gate(), str(base), str(head))


def compare_file_rounds(pairs: list[tuple[str | Path, str | Path]], gate: Gate | None = None) -> Comparison:
    """Interleaved rounds of (BASE, HEAD) files, combined by ``harness.compare.rounds``."""
    from .rounds import compare_rounds

    rounds = [(read_file(b), read_file(h), str(b), str(h)) for b, h in pairs]
    return compare_rounds(rounds, gate or Gate())
