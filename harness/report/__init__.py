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

from ..results import FIRST_STAGE, load_results
from .speed import speed_cell

MARK = "†"
PRIMARY = "ndcg@10"


def _cell(text: Any, limit: int = 160) -> str:
    """A Markdown-safe table cell: one line, pipes escaped, long text cut."""
    text = " ".join(str(text).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("|", "\\|")


def _num(value, digits: int) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _chip(env: dict[str, Any]) -> str:
    return ((env.get("chip") or {}).get("name")) or "unknown chip"


def _machine(env: dict[str, Any]) -> tuple[str, str]:
    """Runs compare with a baseline only on the same machine: same chip, same (hashed) host."""
    return _chip(env), env.get("hostname_hash") or ""


def _commit(env: dict[str, Any]) -> str:
    git = env.get("git") or {}
    commit = git.get("commit")
    if not commit:
        return "unknown"
    return commit[:10] + (" (dirty)" if git.get("dirty") else "")


def _primary(metrics: list[str]) -> str | None:
    return PRIMARY if PRIMARY in metrics else (metrics[0] if metrics else None)


def _entries(results: Sequence[dict], sources: Sequence[str]) -> list[dict[str, Any]]:
    """Every run, with the file it came from and its machine."""
    out = []
    for index, (res, source) in enumerate(zip(results, sources)):
        env = res.get("environment") or {}
        for run in res["runs"]:
            out.append({
                "run": run, "file": index, "source": source, "env": env, "machine": _machine(env),
                "baseline": res.get("baseline"), "date": env.get("date") or "",
                "fingerprint": (run.get("protocol") or {}).get("dataset_fingerprint"),
            })
    return out


def _significance(group: list[dict], base: dict, metrics: list[str]) -> dict[tuple[int, str], bool]:
    """(id(entry), metric) -> significant, for the ok runs of one machine against its baseline."""
    from ..metrics import significance

    marks: dict[tuple[int, str], bool] = {}
    for metric in metrics:
        base_values = base["run"]["per_query"].get(metric)
        if not base_values:
            continue
        systems = {}
        for e in group:
            values = e["run"]["per_query"].get(metric)
            if e is not base and e["run"]["status"] == "ok" and values and set(values) == set(base_values):
                systems[str(id(e))] = values
        if systems:
            for key, outcome in significance(base_values, systems).items():
                marks[(int(key), metric)] = outcome["significant"]
    return marks


def _baseline_of(group: list[dict]) -> dict | None:
    """The latest ok run of the suite's baseline among one machine's runs (None when absent or failed)."""
    named = [e for e in group if e["baseline"] and e["run"]["reranker"] == e["baseline"] and e["run"]["status"] == "ok"]
    return max(named, key=lambda e: e["date"]) if named else None


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


def dataset_table(entries: list[dict], metrics: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """The leaderboard of one dataset and candidate set, and notes to print under it."""
    primary = _primary(metrics)
    groups: dict[tuple, list[dict]] = {}
    for e in entries:
        groups.setdefault(e["machine"] + (e["baseline"],), []).append(e)
    rows, notes = [], []
    for group in groups.values():
        base = _baseline_of(group)
        if base is None and group[0]["baseline"]:
            notes.append(f"No successful baseline run (`{group[0]['baseline']}`) on {_chip(group[0]['env'])}: "
                         "no ratios or significance there.")
        marks = _significance(group, base, metrics) if base else {}

        def order(e):
            run = e["run"]
            rank = 0 if run["backend"] == FIRST_STAGE else (1 if run["status"] == "ok" else 2)
            value = run["metrics"].get(primary) if run["status"] == "ok" else None
            return rank, -(value if value is not None else float("-inf"))

        for e in sorted(group, key=order):
            run = e["run"]
            perf = run.get("perf") or {}
            latency = perf.get("latency_ms") or {}
            ok = run["status"] == "ok"
            name = run["reranker"] + (" (baseline)" if e is base else "")
            row = {"reranker": name, "backend": run["backend"], "device": run.get("device") or "—",
                   "chip": _chip(e["env"])}
            for m in metrics:
                value = run["metrics"].get(m) if ok else None
                row[m] = "" if value is None else f"{value:.4f}" + (MARK if marks.get((id(e), m)) else "")
            row["pairs/s"] = speed_cell(run)
            row["tokens/s"] = _num(perf.get("tokens_per_s"), 0) if perf else ""
            row["p50 ms"] = _num(latency.get("p50"), 2) if perf else ""
            row["p95 ms"] = _num(latency.get("p95"), 2) if perf else ""
            row["peak MB"] = _num(perf.get("peak_memory_mb"), 0) if perf else ""
            row["peak RSS MB"] = _num(perf.get("peak_rss_mb"), 0) if perf else ""
            ratio, delta = "", ""
            if ok and base is not None:
                base_perf = base["run"].get("perf") or {}
                if perf.get("pairs_per_s") and base_perf.get("pairs_per_s"):
                    ratio = f"{perf['pairs_per_s'] / base_perf['pairs_per_s']:.2f}×"
                value, base_value = run["metrics"].get(primary), base["run"]["metrics"].get(primary)
                if e is not base and value is not None and base_value is not None:
                    delta = f"{value - base_value:+.4f}" + (MARK if marks.get((id(e), primary)) else "")
            row["× base pairs/s"] = ratio
            row[f"Δ {primary}"] = delta
            if ok:
                status = "ok" + "".join(f"; ⚠ {w}" for w in run.get("warnings") or [])
                verdict = run.get("verdict") or {}
                status += "".join(f"; INVALID: {r}" for r in verdict.get("reasons") or [])
            else:
                status = "error: " + run["error"].splitlines()[0]
            row["status"] = _cell(status)
            rows.append(row)
    return pd.DataFrame(rows), notes


TEXT_COLUMNS = {"reranker", "backend", "device", "chip", "status", "model", "fine-tune"}


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
        rows.append({
            "reranker": run["reranker"], "backend": run["backend"], "chip": _chip(e["env"]),
            "model": _cell(p.get("model"), 60),
            "weights sha256": (p.get("model_fingerprint") or "—")[:12],
            "max_length": "—" if max_length is None else f"{max_length} ({p.get('max_length_source', '?')})",
            "dtype": p.get("dtype") or "—", "batch": p.get("batch_size", "—"),
            "options": _cell(", ".join(f"{k}={v}" for k, v in (p.get("options") or {}).items()) or "—"),
            "library": _cell(", ".join(f"{k} {v}" for k, v in (system.get("versions") or {}).items() if v) or "—"),
        })
    return pd.DataFrame(rows)


def environments_table(results: Sequence[dict], sources: Sequence[str]) -> pd.DataFrame:
    rows = []
    for res, source in zip(results, sources):
        env = res.get("environment") or {}
        packages = env.get("packages") or {}
        ok = sum(r["status"] == "ok" for r in res["runs"])
        rows.append({
            "results": _cell(source, 80), "suite": res["suite"], "date (UTC)": env.get("date") or "?",
            "commit": _commit(env), "chip": _cell(_chip(env)),
            "os": _cell(((env.get("os") or {}).get("platform")) or "?", 60),
            "mlx": packages.get("mlx") or "—", "torch": packages.get("torch") or "—",
            "runs": f"{ok} ok / {len(res['runs']) - ok} error",
        })
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
                dev = ((block.get("final_dev") or {}).get("ndcg@10"))
            lora = block.get("lora") or {}
            row = {
                "model": block["model"], "backend": block["backend"], "chip": _chip(env),
                "fine-tune": block.get("fine_tune", "?") + (f" r{lora.get('rank')}" if lora else ""),
                "pairs": _num((block.get("data") or {}).get("n_train_pairs"), 0),
                "steps": str(block.get("steps", "")) if ok else "",
                "wall s": _num(block.get("wall_time_s"), 1) if ok else "",
                "train s": _num(block.get("train_time_s"), 1) if ok else "",
                "tokens/s": _num(block.get("tokens_per_s"), 0) if ok else "",
                "peak MB": _num(block.get("peak_memory_mb"), 0) if ok else "",
                "peak RSS MB": _num(block.get("peak_rss_mb"), 0) if ok else "",
                "dev nDCG@10 (step)": "" if dev is None else f"{dev:.4f}"
                + (f" ({block['best_step']})" if block.get("best_step") is not None else ""),
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
    notes.append("peak RSS MB: the training worker process's peak resident set size (ru_maxrss), the same "
                 "measure for both backends.")
    return pd.DataFrame(rows, columns=columns).fillna(""), notes


def build_report(results: Sequence[dict], sources: Sequence[str] | None = None) -> str:
    """The Markdown report for one or more loaded results files."""
    if not results:
        raise ValueError("no results to report")
    sources = list(sources) if sources is not None else [f"results #{i + 1}" for i in range(len(results))]
    suites = list(dict.fromkeys(r["suite"] for r in results))
    metrics = list(dict.fromkeys(m for r in results for m in r.get("metrics") or []))
    if not metrics:  # older or hand-made files: the metrics the runs hold
        metrics = list(dict.fromkeys(m for r in results for run in r["runs"] for m in run.get("metrics") or {}))
    baselines = sorted({r["baseline"] for r in results if r.get("baseline")})
    lines = [f"# Reranker leaderboard: {', '.join(suites)}", ""]
    lines += [_to_markdown(environments_table(results, sources)), ""]
    for res, source in zip(results, sources):
        if res.get("complete") is False:  # cut short (signal, crash): what it holds is valid, the rest is missing
            reason = res.get("incomplete_reason") or "reason not recorded"
            lines += [f"**Incomplete results:** `{source}` stopped before the end ({reason}); it holds "
                      f"{len(res['runs'])} runs.", ""]
    if baselines:
        lines.append(
            f"Baseline: {', '.join(f'`{b}`' for b in baselines)}. Ratios and Δ compare each run with the baseline run "
            f"on the same machine; {MARK} = significantly different from it (paired randomization test on per-query "
            "values, Holm-corrected across systems, α = 0.05)."
        )
    else:
        lines.append("No baseline in the suite: no ratios or significance marks.")
    lines.append("")

    entries = _entries(results, sources)
    datasets: dict[str, dict[Any, list[dict]]] = {}
    for e in entries:
        datasets.setdefault(e["run"]["dataset"], {}).setdefault(e["fingerprint"], []).append(e)
    for dataset, by_candidates in datasets.items():
        unloaded = by_candidates.pop(None, [])  # runs that failed before the dataset was loaded
        sets = list(by_candidates.values()) or [[]]
        sets[0] = sets[0] + unloaded
        for i, group in enumerate(sets):
            title = dataset if len(sets) == 1 else f"{dataset} — candidate set {i + 1} of {len(sets)}"
            lines += [f"## {title}", ""]
            if len(sets) > 1:
                lines += ["Runs of these files used different candidates for this dataset: they are not compared.", ""]
            protocol = next((e["run"]["protocol"] for e in group if e["fingerprint"]), group[0]["run"]["protocol"])
            lines += [_protocol_line(protocol), ""]
            table, notes = dataset_table(group, metrics)
            lines += [_to_markdown(table, numbers=True), ""]
            lines += [f"- {note}" for note in notes] + ([""] if notes else [])
    if any(_train_blocks(r) for r in results):
        table, notes = training_table(results, metrics)
        lines += ["## Training", "",
                  "Each model trained by the MLX trainer and by its PyTorch counterpart with the same recipe, data and "
                  "dev split; checkpoint chosen on the dev queries; then evaluated as a reranker above. Δ torch: "
                  "minus the PyTorch-trained model's value; Δ first stage: minus the dataset's first stage.", "",
                  _to_markdown(table, numbers=True), ""]
        lines += [f"- {note}" for note in notes] + [""]
    systems = systems_table(entries)
    if not systems.empty:
        lines += ["## Systems", "", _to_markdown(systems.astype(str)), ""]
    return "\n".join(lines)


def report_files(paths: Sequence[str | Path]) -> str:
    results = [load_results(p) for p in paths]
    return build_report(results, [str(p) for p in paths])
