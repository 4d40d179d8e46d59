"""The Markdown printer of a leaderboard (``harness.report.board``): table cells, the dataset tables and the page.

The other printers of the same records are ``harness.report.exports`` (CSV, JSON) and ``harness.report.plots``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from ..results import FIRST_STAGE
from .leaderboard import Row, primary_of
from .speed import SINGLE_QUERY, speed_text

if TYPE_CHECKING:
    from .board import Leaderboard

MARK = "†"
TEXT_COLUMNS = {"reranker", "backend", "device", "chip", "status", "model", "fine-tune", "vs torch twin"}


def cell(text: Any, limit: int = 160) -> str:
    """A Markdown-safe table cell: one line, pipes escaped, long text cut."""
    text = " ".join(str(text).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("|", "\\|")


def number(value: float | None, digits: int) -> str:
    """A number with thousands separators and ``digits`` decimals; ``—`` when missing."""
    return "—" if value is None else f"{value:,.{digits}f}"


def _protocol_line(protocol: dict[str, Any]) -> str:
    parts = [
        f"first stage `{protocol.get('first_stage')}`",
        f"top-k {protocol.get('top_k')}",
        f"judged positives added: {'yes' if protocol.get('add_judged_positives') else 'no'}",
        f"{protocol.get('n_queries', '?')} queries, {protocol.get('n_pairs', '?')} pairs",
        f"relevant = grade ≥ {protocol.get('relevance_level')}",
    ]
    if protocol.get("max_queries"):
        parts.append(f"max {protocol['max_queries']} queries (seed {protocol.get('seed')})")
    if protocol.get("dataset_fingerprint"):
        parts.append(f"candidates sha256 `{protocol['dataset_fingerprint'][:12]}`")
    return "Candidates: " + ", ".join(parts) + "."


def _twin_cell(row: Row, primary: str | None) -> str:
    """``vs torch twin``: ``name: 1.35× [1.20, 1.51]`` per scenario, then Δ of the primary metric."""
    if row.twin is None:
        return ""
    parts = []
    for t in row.twin_ratios:
        label = "" if t.scenario == SINGLE_QUERY else f"{t.scenario} "
        interval = "" if t.low is None else f" [{t.low:.2f}, {t.high:.2f}]"
        parts.append(f"{label}{t.ratio:.2f}×{interval}")
    if row.twin_delta_primary is not None:
        parts.append(f"Δ {primary} {row.twin_delta_primary:+.4f}")
    return cell(f"`{row.twin}`: " + ", ".join(parts))


def _status_cell(r: Row) -> str:
    if r.status == "ok":
        status = "ok" + "".join(f"; ⚠ {w}" for w in r.warnings)
        status += f"; INVALID: {'; '.join(r.invalid)}" if r.invalid else ""
    else:
        status = "error: " + (r.error or "").splitlines()[0] if r.error else "error"
    return cell(status)


def markdown_rows(rows: list[Row], metrics: list[str]) -> pd.DataFrame:
    """The Markdown printer of a dataset's rows (formatted cells)."""
    primary = primary_of(metrics)
    scenarios = [s for s in dict.fromkeys(s for r in rows for s in r.speeds) if s != SINGLE_QUERY]
    twins = any(r.twin for r in rows)
    out = []
    for r in rows:
        ok, measured = r.status == "ok", r.backend != FIRST_STAGE and r.status == "ok"
        cells = {
            "reranker": r.reranker + (" (baseline)" if r.baseline else ""),
            "backend": r.backend,
            "device": r.device or "—",
            "chip": r.chip,
        }
        for m in metrics:
            value = r.metrics.get(m) if ok else None
            cells[m] = "" if value is None else f"{value:.4f}" + (MARK if r.significant.get(m) else "")
        cells["pairs/s"] = speed_text(r.speed())
        for s in scenarios:
            cells[f"{s} pairs/s"] = speed_text(r.speed(s))
        cells["tokens/s"] = number(r.tokens_per_s, 0) if measured else ""
        cells["p50 ms"] = number(r.p50_ms, 2) if measured else ""
        cells["p95 ms"] = number(r.p95_ms, 2) if measured else ""
        cells["peak MB"] = number(r.peak_memory_mb, 0) if measured else ""
        cells["peak RSS MB"] = number(r.peak_rss_mb, 0) if measured else ""
        cells["× base pairs/s"] = "" if r.ratio_to_baseline is None else f"{r.ratio_to_baseline:.2f}×"
        cells[f"Δ {primary}"] = (
            ""
            if r.delta_primary is None
            else (f"{r.delta_primary:+.4f}" + (MARK if r.significant.get(primary) else ""))
        )
        if twins:
            cells["vs torch twin"] = _twin_cell(r, primary)
        cells["status"] = _status_cell(r)
        out.append(cells)
    return pd.DataFrame(out)


def _to_markdown(df: pd.DataFrame, numbers: bool = False) -> str:
    """Cells as formatted here (no re-parsing); with ``numbers``, all but the text columns right-aligned."""
    align = tuple("right" if numbers and c not in TEXT_COLUMNS else "left" for c in df.columns)
    return df.to_markdown(index=False, disable_numparse=True, colalign=align)


def _baseline_lines(board: Leaderboard) -> list[str]:
    if not board.baselines:
        return ["No baseline in the suite: no ratios or significance marks.", ""]
    return [
        f"Baseline: {', '.join(f'`{b}`' for b in board.baselines)}. Ratios and Δ compare each run with the "
        f"baseline run on the same machine; {MARK} = significantly different from it (paired randomization test "
        "on per-query values, Holm-corrected across systems, α = 0.05). pairs/s: median over the timed passes "
        "[95% bootstrap interval] and the run's VALID/INVALID verdict. vs torch twin: an MLX run's median "
        "pairs/s over its PyTorch twin's (same weights, dtype and truncation, same machine) [95% bootstrap "
        "interval], and the difference of the primary metric.",
        "",
    ]


def render_markdown(board: Leaderboard) -> str:
    """The Markdown printer of a leaderboard."""
    lines = [f"# Reranker leaderboard: {', '.join(board.suites)}", ""]
    lines += [_to_markdown(board.environments), ""]
    for text in board.incomplete:
        lines += [text, ""]
    lines += _baseline_lines(board)
    for section in board.sections:
        lines += [f"## {section.title}", ""]
        if section.candidate_sets > 1:
            lines += ["Runs of these files used different candidates for this dataset: they are not compared.", ""]
        lines += [_protocol_line(section.protocol), ""]
        lines += [_to_markdown(markdown_rows(section.rows, board.metrics), numbers=True), ""]
        lines += [f"- {note}" for note in section.notes] + ([""] if section.notes else [])
        if section.plot:
            png = section.plot.removesuffix(".svg") + ".png"
            lines += [f"![{section.title}: quality vs throughput]({section.plot}) ([PNG]({png}))", ""]
    if board.training is not None:
        lines += [
            "## Training",
            "",
            "Each model trained by the MLX trainer and by its PyTorch counterpart with the same recipe, data and "
            "dev split; checkpoint chosen on the dev queries; then evaluated as a reranker above. Δ torch: "
            "minus the PyTorch-trained model's value; Δ first stage: minus the dataset's first stage.",
            "",
            _to_markdown(board.training, numbers=True),
            "",
        ]
        lines += [f"- {note}" for note in board.training_notes] + [""]
    if not board.systems.empty:
        lines += ["## Systems", "", _to_markdown(board.systems.astype(str)), ""]
    return "\n".join(lines)
