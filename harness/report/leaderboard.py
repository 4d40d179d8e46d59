"""The leaderboard's record: one ``Row`` per run of a dataset's table, numbers not text (llama-bench style: one
record, several printers: ``harness.report`` prints Markdown, ``harness.report.exports`` CSV and JSON,
``harness.report.plots`` the quality-vs-throughput plot).

A row compares its run with the suite's baseline run of the same machine (pairs/s ratio, Δ primary metric,
significance marks) and, for an MLX run, with its PyTorch twin: the torch run of the same machine and candidates
with the same weights (``protocol.model_fingerprint``, else ``protocol.model``), dtype and truncation. The twin
ratio is median(MLX pairs/s) / median(torch pairs/s) over the timed passes, with a 95% bootstrap interval
(``harness.report.speed.ratio_interval``); with fewer than 2 passes on either side, the pooled ratio alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from ..results import FIRST_STAGE
from .speed import SINGLE_QUERY, Speed, ratio_interval, run_speeds

PRIMARY = "ndcg@10"
TWIN_BACKENDS = {"mlx": "torch"}  # a run of this backend is compared with its twin of that backend


class TwinRatio(BaseModel):
    """pairs/s of a run over its twin's, in one scenario."""

    scenario: str
    ratio: float
    low: float | None = None
    high: float | None = None


class Row(BaseModel):
    """One run in a dataset's leaderboard (numbers; printers format them)."""

    dataset: str
    candidate_set: int  # 1-based: runs on different candidates are never compared
    chip: str
    reranker: str
    baseline: bool  # this run is the baseline its machine's ratios and Δ refer to
    backend: str
    device: str | None
    model: str | None
    dtype: str | None
    status: str  # ok | error
    error: str | None = None
    warnings: list[str] = []
    invalid: list[str] = []  # why the speed figures are INVALID: the run's verdict, then each scenario's
    metrics: dict[str, float | None] = {}
    significant: dict[str, bool] = {}  # metric -> differs from the baseline (paired test, Holm)
    speeds: dict[str, Speed] = {}  # scenario -> pairs/s median, interval, verdict
    tokens_per_s: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    peak_memory_mb: float | None = None
    peak_rss_mb: float | None = None
    ratio_to_baseline: float | None = None  # pooled pairs/s over the baseline's
    delta_primary: float | None = None  # primary metric minus the baseline's
    twin: str | None = None  # the PyTorch twin's reranker name
    twin_ratios: list[TwinRatio] = []
    twin_delta_primary: float | None = None
    results: str = ""  # the results file

    def speed(self, scenario: str = SINGLE_QUERY) -> Speed | None:
        return self.speeds.get(scenario)


def chip_of(env: dict[str, Any]) -> str:
    return ((env.get("chip") or {}).get("name")) or "unknown chip"


def primary_of(metrics: list[str]) -> str | None:
    return PRIMARY if PRIMARY in metrics else (metrics[0] if metrics else None)


@dataclass(eq=False)  # compared by identity: the baseline is "this entry", marks are keyed by id()
class Entry:
    """One run of a results file, with where it came from and its machine (same chip, same hashed host)."""

    run: dict[str, Any]  # the run as loaded (harness.results.load_results)
    file: int  # index of its results file among those reported
    source: str  # that file's name
    env: dict[str, Any]  # that file's environment
    machine: tuple[str, str]  # (chip, hostname hash): comparisons stay within one machine
    baseline: str | None  # the suite's baseline reranker
    date: str
    fingerprint: str | None  # the dataset fingerprint: runs on other candidates are never compared


def entries_of(results: Sequence[dict], sources: Sequence[str]) -> list[Entry]:
    """Every run of every results file, as an ``Entry``."""
    out = []
    for index, (res, source) in enumerate(zip(results, sources)):
        env = res.get("environment") or {}
        for run in res["runs"]:
            out.append(
                Entry(
                    run=run,
                    file=index,
                    source=source,
                    env=env,
                    machine=(chip_of(env), env.get("hostname_hash") or ""),
                    baseline=res.get("baseline"),
                    date=env.get("date") or "",
                    fingerprint=(run.get("protocol") or {}).get("dataset_fingerprint"),
                )
            )
    return out


def _significance(group: list[Entry], base: Entry, metrics: list[str]) -> dict[tuple[int, str], bool]:
    """(id(entry), metric) -> significant, for the ok runs of one machine against its baseline."""
    from ..metrics import significance

    marks: dict[tuple[int, str], bool] = {}
    for metric in metrics:
        base_values = base.run["per_query"].get(metric)
        if not base_values:
            continue
        systems = {}
        for e in group:
            values = e.run["per_query"].get(metric)
            if e is not base and e.run["status"] == "ok" and values and set(values) == set(base_values):
                systems[str(id(e))] = values
        if systems:
            for key, outcome in significance(base_values, systems).items():
                marks[(int(key), metric)] = outcome["significant"]
    return marks


def baseline_of(group: list[Entry]) -> Entry | None:
    """The latest ok run of the suite's baseline among one machine's runs (None when absent or failed)."""
    named = [e for e in group if e.baseline and e.run["reranker"] == e.baseline and e.run["status"] == "ok"]
    return max(named, key=lambda e: e.date) if named else None


def _twin_key(run: dict) -> tuple:
    p = run.get("protocol") or {}
    return (p.get("model_fingerprint") or p.get("model"), p.get("dtype") or "float32", p.get("max_length"))


def twin_of(e: Entry, group: list[Entry]) -> Entry | None:
    """The PyTorch twin of an ok MLX run among one machine's runs: same weights, dtype and truncation."""
    run = e.run
    other = TWIN_BACKENDS.get(run["backend"])
    if other is None or run["status"] != "ok" or _twin_key(run)[0] is None:
        return None
    twins = [
        t for t in group if t.run["backend"] == other and t.run["status"] == "ok" and _twin_key(t.run) == _twin_key(run)
    ]
    same_options = [
        t for t in twins if (t.run["protocol"].get("options") or {}) == (run["protocol"].get("options") or {})
    ]
    return (same_options or twins or [None])[0]


def _twin_ratios(mine: dict[str, Speed], theirs: dict[str, Speed]) -> list[TwinRatio]:
    out = []
    for scenario, speed in mine.items():
        other = theirs.get(scenario)
        if other is None or not speed.pairs_per_s or not other.pairs_per_s:
            continue
        interval = ratio_interval(speed.passes, other.passes)
        if interval is None:
            out.append(TwinRatio(scenario=scenario, ratio=speed.pairs_per_s / other.pairs_per_s))
        else:
            out.append(TwinRatio(scenario=scenario, ratio=interval[0], low=interval[1], high=interval[2]))
    return out


def _order(primary: str | None):
    def key(e):
        run = e.run
        rank = 0 if run["backend"] == FIRST_STAGE else (1 if run["status"] == "ok" else 2)
        value = run["metrics"].get(primary) if run["status"] == "ok" else None
        return rank, -(value if value is not None else float("-inf"))

    return key


def dataset_rows(
    entries: list[Entry], metrics: list[str], dataset: str = "", candidate_set: int = 1
) -> tuple[list[Row], list[str]]:
    """The rows of one dataset and candidate set (machines in order of appearance), and notes to print under it."""
    primary = primary_of(metrics)
    groups: dict[tuple, list[Entry]] = {}
    for e in entries:
        groups.setdefault(e.machine + (e.baseline,), []).append(e)
    rows, notes = [], []
    for group in groups.values():
        base = baseline_of(group)
        if base is None and group[0].baseline:
            notes.append(
                f"No successful baseline run (`{group[0].baseline}`) on {chip_of(group[0].env)}: "
                "no ratios or significance there."
            )
        marks = _significance(group, base, metrics) if base else {}
        for e in sorted(group, key=_order(primary)):
            rows.append(_row(e, group, base, marks, metrics, primary, dataset, candidate_set))
    return rows, notes


def _invalid_reasons(run: dict) -> list[str]:
    """The run's verdict reasons (schema 3: already prefixed by scenario), else its scenarios' reasons."""
    reasons = list((run.get("verdict") or {}).get("reasons") or [])
    if not reasons:
        for name, rec in (run.get("scenarios") or {}).items():
            reasons += [f"{name}: {reason}" for reason in (rec.get("verdict") or {}).get("reasons") or []]
    return reasons


def _row(e: Entry, group, base: Entry | None, marks, metrics, primary, dataset, candidate_set) -> Row:
    run = e.run
    ok = run["status"] == "ok"
    perf = run.get("perf") or {}
    latency = perf.get("latency_ms") or {}
    protocol = run.get("protocol") or {}
    row = Row(
        dataset=dataset or run["dataset"],
        candidate_set=candidate_set,
        chip=chip_of(e.env),
        reranker=run["reranker"],
        baseline=e is base,
        backend=run["backend"],
        device=run.get("device"),
        model=protocol.get("model"),
        dtype=protocol.get("dtype"),
        status=run["status"],
        error=None if ok else run.get("error"),
        warnings=list(run.get("warnings") or []),
        invalid=_invalid_reasons(run),
        metrics={m: run["metrics"].get(m) for m in metrics} if ok else {},
        significant={m: bool(marks.get((id(e), m))) for m in metrics},
        speeds=run_speeds(run),
        tokens_per_s=perf.get("tokens_per_s"),
        p50_ms=latency.get("p50"),
        p95_ms=latency.get("p95"),
        peak_memory_mb=perf.get("peak_memory_mb"),
        peak_rss_mb=perf.get("peak_rss_mb"),
        results=e.source,
    )
    if ok and base is not None:
        base_perf = base.run.get("perf") or {}
        if perf.get("pairs_per_s") and base_perf.get("pairs_per_s"):
            row.ratio_to_baseline = perf["pairs_per_s"] / base_perf["pairs_per_s"]
        value, base_value = run["metrics"].get(primary), base.run["metrics"].get(primary)
        if e is not base and value is not None and base_value is not None:
            row.delta_primary = value - base_value
    twin = twin_of(e, group)
    if twin is not None:
        row.twin = twin.run["reranker"]
        row.twin_ratios = _twin_ratios(row.speeds, run_speeds(twin.run))
        value, twin_value = run["metrics"].get(primary), twin.run["metrics"].get(primary)
        if value is not None and twin_value is not None:
            row.twin_delta_primary = value - twin_value
    return row
