"""CSV and JSON exports of every table of a leaderboard (pandas): the same records the Markdown prints, as
numbers with snake_case columns.

Tables: ``leaderboard`` (every dataset's rows, one per run, ``dataset`` and ``candidate_set`` columns; per
scenario the median pairs/s, its interval, passes and verdict; the ratio to the baseline and to the PyTorch twin
with its interval), ``systems``, ``environments`` and, for training suites, ``training``. Files:
``DIR/<stem>-<table>.csv`` and ``DIR/<stem>-<table>.json`` (JSON: a list of records).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from .board import Leaderboard
from .leaderboard import Row


def row_record(row: Row, metrics: list[str]) -> dict[str, Any]:
    """One leaderboard row as a flat record (the CSV/JSON printer of ``Row``)."""
    rec: dict[str, Any] = {
        "dataset": row.dataset,
        "candidate_set": row.candidate_set,
        "chip": row.chip,
        "reranker": row.reranker,
        "baseline": row.baseline,
        "backend": row.backend,
        "device": row.device,
        "model": row.model,
        "dtype": row.dtype,
        "status": row.status,
        "error": row.error,
    }
    for m in metrics:
        rec[m] = row.metrics.get(m)
        rec[f"{m}_significant"] = row.significant.get(m, False)
    for scenario, speed in row.speeds.items():
        rec[f"{scenario}_pairs_per_s"] = speed.pairs_per_s
        rec[f"{scenario}_pairs_per_s_low"] = speed.low
        rec[f"{scenario}_pairs_per_s_high"] = speed.high
        rec[f"{scenario}_passes"] = len(speed.passes)
        rec[f"{scenario}_verdict"] = speed.verdict
    rec.update(
        {
            "tokens_per_s": row.tokens_per_s,
            "p50_ms": row.p50_ms,
            "p95_ms": row.p95_ms,
            "peak_memory_mb": row.peak_memory_mb,
            "peak_rss_mb": row.peak_rss_mb,
            "ratio_to_baseline": row.ratio_to_baseline,
            "delta_primary": row.delta_primary,
            "twin": row.twin,
        }
    )
    for t in row.twin_ratios:
        rec[f"{t.scenario}_twin_ratio"] = t.ratio
        rec[f"{t.scenario}_twin_ratio_low"] = t.low
        rec[f"{t.scenario}_twin_ratio_high"] = t.high
    rec["twin_delta_primary"] = row.twin_delta_primary
    rec["invalid_reasons"] = "; ".join(row.invalid)
    rec["warnings"] = "; ".join(row.warnings)
    rec["results"] = row.results
    return rec


def tables(board: Leaderboard) -> dict[str, pd.DataFrame]:
    """Table name -> frame, every table of the report."""
    rows = [row_record(r, board.metrics) for s in board.sections for r in s.rows]
    out = {"leaderboard": pd.DataFrame(rows), "systems": board.systems, "environments": board.environments}
    if board.training is not None:
        out["training"] = board.training
    return out


def write_exports(board: Leaderboard, directory: str | Path, stem: str) -> list[Path]:
    """Write every table as CSV and JSON; the paths written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in tables(board).items():
        csv, js = directory / f"{stem}-{name}.csv", directory / f"{stem}-{name}.json"
        frame.to_csv(csv, index=False)
        frame.to_json(js, orient="records", indent=1, force_ascii=False)
        written += [csv, js]
    return written
