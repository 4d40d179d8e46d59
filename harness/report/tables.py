"""The report's context tables: the results files' environments and the systems' configurations (one row each)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from ..results import FIRST_STAGE
from .leaderboard import Entry, chip_of
from .markdown import cell


def _commit(env: dict[str, Any]) -> str:
    git = env.get("git") or {}
    commit = git.get("commit")
    if not commit:
        return "unknown"
    return commit[:10] + (" (dirty)" if git.get("dirty") else "")


def systems_table(entries: list[Entry]) -> pd.DataFrame:
    """How each system was configured (truncation, precision, weights), one row per (machine, reranker)."""
    rows, seen = [], set()
    for e in entries:
        run = e.run
        if run["backend"] == FIRST_STAGE:
            continue
        key = (e.file, run["reranker"])
        if key in seen:
            continue
        seen.add(key)
        p = run.get("protocol") or {}
        system = run.get("system") or {}
        max_length = p.get("max_length")
        rows.append(
            {
                "reranker": run["reranker"],
                "backend": run["backend"],
                "chip": chip_of(e.env),
                "model": cell(p.get("model"), 60),
                "weights sha256": (p.get("model_fingerprint") or "—")[:12],
                "max_length": "—" if max_length is None else f"{max_length} ({p.get('max_length_source', '?')})",
                "dtype": p.get("dtype") or "—",
                "batch": p.get("batch_size", "—"),
                "options": cell(", ".join(f"{k}={v}" for k, v in (p.get("options") or {}).items()) or "—"),
                "library": cell(", ".join(f"{k} {v}" for k, v in (system.get("versions") or {}).items() if v) or "—"),
            }
        )
    return pd.DataFrame(rows)


def environments_table(results: Sequence[dict], sources: Sequence[str]) -> pd.DataFrame:
    """One row per results file: suite, date, commit, chip, OS, MLX and torch versions, runs ok / error."""
    rows = []
    for res, source in zip(results, sources):
        env = res.get("environment") or {}
        packages = env.get("packages") or {}
        ok = sum(r["status"] == "ok" for r in res["runs"])
        rows.append(
            {
                "results": cell(source, 80),
                "suite": res["suite"],
                "date (UTC)": env.get("date") or "?",
                "commit": _commit(env),
                "chip": cell(chip_of(env)),
                "os": cell(((env.get("os") or {}).get("platform")) or "?", 60),
                "mlx": packages.get("mlx") or "—",
                "torch": packages.get("torch") or "—",
                "runs": f"{ok} ok / {len(res['runs']) - ok} error",
            }
        )
    return pd.DataFrame(rows)
