"""The report's records (``Leaderboard``, one ``Section`` per dataset and candidate set) built from loaded results
files; printed by ``harness.report.markdown``, ``harness.report.exports`` and ``harness.report.plots``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict

from .leaderboard import Entry, Row, dataset_rows, entries_of
from .tables import environments_table, systems_table
from .training import train_blocks, training_table


class Section(BaseModel):
    """One dataset and candidate set: its title, candidate protocol, rows and notes."""

    title: str
    dataset: str
    candidate_set: int
    candidate_sets: int
    protocol: dict[str, Any]
    rows: list[Row]
    notes: list[str]
    plot: str | None = None  # path of the quality-vs-throughput plot (SVG), relative to the Markdown


class Leaderboard(BaseModel):
    """Everything a report shows, as records: the dataset tables' rows, then the other tables' frames."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    suites: list[str]
    metrics: list[str]
    baselines: list[str]
    sections: list[Section]
    environments: pd.DataFrame
    systems: pd.DataFrame
    training: pd.DataFrame | None = None
    training_notes: list[str] = []
    incomplete: list[str] = []


def _incomplete_notes(results: Sequence[dict], sources: Sequence[str]) -> list[str]:
    """A note per results file cut short (signal, crash): what it holds is valid, the rest is missing."""
    notes = []
    for res, source in zip(results, sources):
        if res.get("complete") is False:
            reason = res.get("incomplete_reason") or "reason not recorded"
            notes.append(
                f"**Incomplete results:** `{source}` stopped before the end ({reason}); it holds "
                f"{len(res['runs'])} runs."
            )
    return notes


def _sections(entries: list[Entry], metrics: list[str]) -> list[Section]:
    """One section per dataset and candidate set (runs on different candidates are never put side by side)."""
    datasets: dict[str, dict[str | None, list[Entry]]] = {}
    for e in entries:
        datasets.setdefault(e.run["dataset"], {}).setdefault(e.fingerprint, []).append(e)
    sections = []
    for dataset, by_candidates in datasets.items():
        unloaded = by_candidates.pop(None, [])  # runs that failed before the dataset was loaded
        sets = list(by_candidates.values()) or [[]]
        sets[0] = sets[0] + unloaded
        for i, group in enumerate(sets):
            title = dataset if len(sets) == 1 else f"{dataset} — candidate set {i + 1} of {len(sets)}"
            protocol = next((e.run["protocol"] for e in group if e.fingerprint), group[0].run["protocol"])
            rows, notes = dataset_rows(group, metrics, dataset, i + 1)
            sections.append(
                Section(
                    title=title,
                    dataset=dataset,
                    candidate_set=i + 1,
                    candidate_sets=len(sets),
                    protocol=protocol,
                    rows=rows,
                    notes=notes,
                )
            )
    return sections


def build_leaderboard(results: Sequence[dict], sources: Sequence[str] | None = None) -> Leaderboard:
    """The records of the report of one or more loaded results files."""
    if not results:
        raise ValueError("no results to report")
    sources = list(sources) if sources is not None else [f"results #{i + 1}" for i in range(len(results))]
    metrics = list(dict.fromkeys(m for r in results for m in r.get("metrics") or []))
    if not metrics:  # older or hand-made files: the metrics the runs hold
        metrics = list(dict.fromkeys(m for r in results for run in r["runs"] for m in run.get("metrics") or {}))
    entries = entries_of(results, sources)
    training, training_notes = (None, [])
    if any(train_blocks(r) for r in results):
        training, training_notes = training_table(results, metrics)
    return Leaderboard(
        suites=list(dict.fromkeys(r["suite"] for r in results)),
        metrics=metrics,
        baselines=sorted({r["baseline"] for r in results if r.get("baseline")}),
        sections=_sections(entries, metrics),
        environments=environments_table(results, sources),
        systems=systems_table(entries),
        training=training,
        training_notes=training_notes,
        incomplete=_incomplete_notes(results, sources),
    )
