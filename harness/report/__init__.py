"""Markdown leaderboards from results files: ``harness report RESULTS.json... [--output report/NAME.md]``.

One table per dataset (and per candidate set: runs on different candidates are never put side by side). Several
results files (several chips) merge into one table with a ``chip`` column; comparisons with the suite's baseline
(pairs/s ratio, metric deltas, significance) are made only within the same machine, against that machine's
baseline run. A quality figure is marked † when it differs from the baseline significantly by
``harness.metrics.significance`` (paired randomization test on per-query values, Holm-corrected across the
systems of that machine). The pairs/s cell is the median over the repeats with its 95% bootstrap interval and
the run's VALID / INVALID verdict (``harness.report.speed``).

Results of a suite with a ``train:`` section also get a training table: per trained model and backend, the
training's wall time, tokens/s, peak memory and best dev metric, then its evaluated primary metric on each dataset
with the difference to its PyTorch counterpart (same model, same results file) and to the dataset's first stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict

from ..results import FIRST_STAGE, load_results
from .leaderboard import PRIMARY, Row, chip_of, dataset_rows, entries_of, primary_of
from .speed import SINGLE_QUERY, speed_text

MARK = "†"
__all__ = [
    "PRIMARY",
    "Leaderboard",
    "Section",
    "build_leaderboard",
    "build_report",
    "dataset_table",
    "markdown_rows",
    "render_markdown",
    "report_files",
]


def _cell(text: Any, limit: int = 160) -> str:
    """A Markdown-safe table cell: one line, pipes escaped, long text cut."""
    text = " ".join(str(text).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("|", "\\|")


def _num(value, digits: int) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


_chip = chip_of
_primary = primary_of


def _commit(env: dict[str, Any]) -> str:
    git = env.get("git") or {}
    commit = git.get("commit")
    if not commit:
        return "unknown"
    return commit[:10] + (" (dirty)" if git.get("dirty") else "")


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
    return _cell(f"`{row.twin}`: " + ", ".join(parts))


def markdown_rows(rows: list[Row], metrics: list[str]) -> pd.DataFrame:
    """The Markdown printer of a dataset's rows (formatted cells)."""
    primary = _primary(metrics)
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
        cells["tokens/s"] = _num(r.tokens_per_s, 0) if measured else ""
        cells["p50 ms"] = _num(r.p50_ms, 2) if measured else ""
        cells["p95 ms"] = _num(r.p95_ms, 2) if measured else ""
        cells["peak MB"] = _num(r.peak_memory_mb, 0) if measured else ""
        cells["peak RSS MB"] = _num(r.peak_rss_mb, 0) if measured else ""
        cells["× base pairs/s"] = "" if r.ratio_to_baseline is None else f"{r.ratio_to_baseline:.2f}×"
        cells[f"Δ {primary}"] = (
            ""
            if r.delta_primary is None
            else (f"{r.delta_primary:+.4f}" + (MARK if r.significant.get(primary) else ""))
        )
        if twins:
            cells["vs torch twin"] = _twin_cell(r, primary)
        if ok:
            status = "ok" + "".join(f"; ⚠ {w}" for w in r.warnings)
            status += f"; INVALID: {'; '.join(r.invalid)}" if r.invalid else ""
        else:
            status = "error: " + (r.error or "").splitlines()[0] if r.error else "error"
        cells["status"] = _cell(status)
        out.append(cells)
    return pd.DataFrame(out)


def dataset_table(entries: list[dict], metrics: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """The leaderboard of one dataset and candidate set (Markdown cells), and notes to print under it."""
    rows, notes = dataset_rows(entries, metrics)
    return markdown_rows(rows, metrics), notes


TEXT_COLUMNS = {"reranker", "backend", "device", "chip", "status", "model", "fine-tune", "vs torch twin"}


def _to_markdown(df: pd.DataFrame, numbers: bool = False) -> str:
    """Cells as formatted here (no re-parsing); with ``numbers``, all but the text columns right-aligned."""
    align = tuple("right" if numbers and c not in TEXT_COLUMNS else "left" for c in df.columns)
    return df.to_markdown(index=False, disable_numparse=True, colalign=align)


def systems_table(entries: list[dict]) -> pd.DataFrame:
    """How each system was configured (truncation, precision, weights), one row per (machine, reranker)."""
    rows, seen = [], set()
    for e in entries:
        run = e["run"]
        if run["backend"] == FIRST_STAGE:
            continue
        key = (e["file"], run["reranker"])
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
                "chip": _chip(e["env"]),
                "model": _cell(p.get("model"), 60),
                "weights sha256": (p.get("model_fingerprint") or "—")[:12],
                "max_length": "—" if max_length is None else f"{max_length} ({p.get('max_length_source', '?')})",
                "dtype": p.get("dtype") or "—",
                "batch": p.get("batch_size", "—"),
                "options": _cell(", ".join(f"{k}={v}" for k, v in (p.get("options") or {}).items()) or "—"),
                "library": _cell(", ".join(f"{k} {v}" for k, v in (system.get("versions") or {}).items() if v) or "—"),
            }
        )
    return pd.DataFrame(rows)


def environments_table(results: Sequence[dict], sources: Sequence[str]) -> pd.DataFrame:
    rows = []
    for res, source in zip(results, sources):
        env = res.get("environment") or {}
        packages = env.get("packages") or {}
        ok = sum(r["status"] == "ok" for r in res["runs"])
        rows.append(
            {
                "results": _cell(source, 80),
                "suite": res["suite"],
                "date (UTC)": env.get("date") or "?",
                "commit": _commit(env),
                "chip": _cell(_chip(env)),
                "os": _cell(((env.get("os") or {}).get("platform")) or "?", 60),
                "mlx": packages.get("mlx") or "—",
                "torch": packages.get("torch") or "—",
                "runs": f"{ok} ok / {len(res['runs']) - ok} error",
            }
        )
    return pd.DataFrame(rows)


def _train_blocks(res: dict) -> list[dict]:
    """The train blocks of one results file: its ``train.models`` list, else those carried by its runs."""
    blocks = list((res.get("train") or {}).get("models") or [])
    if not blocks:
        seen = set()
        for run in res["runs"]:
            block = run.get("train")
            if block and (block["model"], block["backend"]) not in seen:
                seen.add((block["model"], block["backend"]))
                blocks.append(block)
    return blocks


def training_table(results: Sequence[dict], metrics: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """One row per (results file, trained model, backend); see the module docstring."""
    primary = _primary(metrics)
    rows, measures = [], {}
    datasets = list(dict.fromkeys(r["dataset"] for res in results for r in res["runs"]))
    for res in results:
        env = res.get("environment") or {}
        runs = {(r["dataset"], r["reranker"]): r for r in res["runs"]}
        first = {r["dataset"]: r for r in res["runs"] if r["backend"] == FIRST_STAGE and r["status"] == "ok"}

        def value(dataset: str, reranker: str, runs: dict = runs):
            run = runs.get((dataset, reranker))
            return run["metrics"].get(primary) if run and run["status"] == "ok" else None

        for block in _train_blocks(res):
            name = f"{block['model']}-{block['backend']}"
            ok = block["status"] == "ok"
            if ok and block.get("peak_memory_measure"):
                measures.setdefault(f"{block['backend']} on {block.get('device') or '?'}", block["peak_memory_measure"])
            dev = block.get("best_dev") if ok else None
            if dev is None and ok:
                dev = (block.get("final_dev") or {}).get("ndcg@10")
            lora = block.get("lora") or {}
            row = {
                "model": block["model"],
                "backend": block["backend"],
                "chip": _chip(env),
                "fine-tune": block.get("fine_tune", "?") + (f" r{lora.get('rank')}" if lora else ""),
                "pairs": _num((block.get("data") or {}).get("n_train_pairs"), 0),
                "steps": str(block.get("steps", "")) if ok else "",
                "wall s": _num(block.get("wall_time_s"), 1) if ok else "",
                "train s": _num(block.get("train_time_s"), 1) if ok else "",
                "tokens/s": _num(block.get("tokens_per_s"), 0) if ok else "",
                "peak MB": _num(block.get("peak_memory_mb"), 0) if ok else "",
                "peak RSS MB": _num(block.get("peak_rss_mb"), 0) if ok else "",
                "dev nDCG@10 (step)": ""
                if dev is None
                else f"{dev:.4f}" + (f" ({block['best_step']})" if block.get("best_step") is not None else ""),
            }
            for dataset in datasets:
                if (dataset, name) not in runs:
                    continue
                mine = value(dataset, name)
                twin = value(dataset, f"{block['model']}-torch") if block["backend"] != "torch" else None
                stage = first.get(dataset)
                stage_value = stage["metrics"].get(primary) if stage else None
                row[f"{dataset} {primary}"] = "" if mine is None else f"{mine:.4f}"
                row[f"{dataset} Δ torch"] = "" if mine is None or twin is None else f"{mine - twin:+.4f}"
                label = f"{dataset} Δ {stage['reranker']}" if stage else f"{dataset} Δ first stage"
                row[label] = "" if mine is None or stage_value is None else f"{mine - stage_value:+.4f}"
            row["status"] = "ok" if ok else _cell("error: " + block["error"].splitlines()[0])
            rows.append(row)
    columns = list(dict.fromkeys(c for row in rows for c in row if c != "status")) + ["status"]  # datasets in order
    notes = [f"peak MB, {where}: {_cell(text, 300)}" for where, text in measures.items()]
    notes.append(
        "peak RSS MB: the training worker process's peak resident set size (ru_maxrss), the same "
        "measure for both backends."
    )
    return pd.DataFrame(rows, columns=columns).fillna(""), notes


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


Leaderboard.model_rebuild()


def build_leaderboard(results: Sequence[dict], sources: Sequence[str] | None = None) -> Leaderboard:
    """The records of the report of one or more loaded results files."""
    if not results:
        raise ValueError("no results to report")
    sources = list(sources) if sources is not None else [f"results #{i + 1}" for i in range(len(results))]
    metrics = list(dict.fromkeys(m for r in results for m in r.get("metrics") or []))
    if not metrics:  # older or hand-made files: the metrics the runs hold
        metrics = list(dict.fromkeys(m for r in results for run in r["runs"] for m in run.get("metrics") or {}))
    incomplete = []
    for res, source in zip(results, sources):
        if res.get("complete") is False:  # cut short (signal, crash): what it holds is valid, the rest is missing
            reason = res.get("incomplete_reason") or "reason not recorded"
            incomplete.append(
                f"**Incomplete results:** `{source}` stopped before the end ({reason}); it holds "
                f"{len(res['runs'])} runs."
            )
    entries = entries_of(results, sources)
    datasets: dict[str, dict[Any, list[dict]]] = {}
    for e in entries:
        datasets.setdefault(e["run"]["dataset"], {}).setdefault(e["fingerprint"], []).append(e)
    sections = []
    for dataset, by_candidates in datasets.items():
        unloaded = by_candidates.pop(None, [])  # runs that failed before the dataset was loaded
        sets = list(by_candidates.values()) or [[]]
        sets[0] = sets[0] + unloaded
        for i, group in enumerate(sets):
            title = dataset if len(sets) == 1 else f"{dataset} — candidate set {i + 1} of {len(sets)}"
            protocol = next((e["run"]["protocol"] for e in group if e["fingerprint"]), group[0]["run"]["protocol"])
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
    training, training_notes = (None, [])
    if any(_train_blocks(r) for r in results):
        training, training_notes = training_table(results, metrics)
    return Leaderboard(
        suites=list(dict.fromkeys(r["suite"] for r in results)),
        metrics=metrics,
        baselines=sorted({r["baseline"] for r in results if r.get("baseline")}),
        sections=sections,
        environments=environments_table(results, sources),
        systems=systems_table(entries),
        training=training,
        training_notes=training_notes,
        incomplete=incomplete,
    )


def render_markdown(board: Leaderboard) -> str:
    """The Markdown printer of a leaderboard."""
    lines = [f"# Reranker leaderboard: {', '.join(board.suites)}", ""]
    lines += [_to_markdown(board.environments), ""]
    for text in board.incomplete:
        lines += [text, ""]
    if board.baselines:
        lines.append(
            f"Baseline: {', '.join(f'`{b}`' for b in board.baselines)}. Ratios and Δ compare each run with the "
            f"baseline run on the same machine; {MARK} = significantly different from it (paired randomization test "
            "on per-query values, Holm-corrected across systems, α = 0.05). pairs/s: median over the timed passes "
            "[95% bootstrap interval] and the run's VALID/INVALID verdict. vs torch twin: an MLX run's median "
            "pairs/s over its PyTorch twin's (same weights, dtype and truncation, same machine) [95% bootstrap "
            "interval], and the difference of the primary metric."
        )
    else:
        lines.append("No baseline in the suite: no ratios or significance marks.")
    lines.append("")
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


def build_report(results: Sequence[dict], sources: Sequence[str] | None = None) -> str:
    """The Markdown report for one or more loaded results files."""
    return render_markdown(build_leaderboard(results, sources))


def report_files(paths: Sequence[str | Path]) -> str:
    results = [load_results(p) for p in paths]
    return build_report(results, [str(p) for p in paths])
