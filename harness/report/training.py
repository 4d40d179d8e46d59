"""The report's training table (results of a suite with a ``train:`` section): per trained model and backend,
the training's wall time, tokens/s, peak memory and best dev metric, then its evaluated primary metric on each
dataset with the difference to its PyTorch counterpart (same model, same results file) and to the dataset's
first stage.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..results import FIRST_STAGE
from .leaderboard import chip_of, primary_of
from .markdown import cell, number


def train_blocks(res: dict) -> list[dict]:
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


def _block_cells(block: dict, chip: str) -> dict[str, str]:
    """The training's own cells of one train block (before the evaluated datasets')."""
    ok = block["status"] == "ok"
    dev = block.get("best_dev") if ok else None
    if dev is None and ok:
        dev = (block.get("final_dev") or {}).get("ndcg@10")
    lora = block.get("lora") or {}
    return {
        "model": block["model"],
        "backend": block["backend"],
        "chip": chip,
        "fine-tune": block.get("fine_tune", "?") + (f" r{lora.get('rank')}" if lora else ""),
        "pairs": number((block.get("data") or {}).get("n_train_pairs"), 0),
        "steps": str(block.get("steps", "")) if ok else "",
        "wall s": number(block.get("wall_time_s"), 1) if ok else "",
        "train s": number(block.get("train_time_s"), 1) if ok else "",
        "tokens/s": number(block.get("tokens_per_s"), 0) if ok else "",
        "peak MB": number(block.get("peak_memory_mb"), 0) if ok else "",
        "peak RSS MB": number(block.get("peak_rss_mb"), 0) if ok else "",
        "dev nDCG@10 (step)": ""
        if dev is None
        else f"{dev:.4f}" + (f" ({block['best_step']})" if block.get("best_step") is not None else ""),
    }


def training_table(results: Sequence[dict], metrics: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """One row per (results file, trained model, backend); see the module docstring. Also the notes under it."""
    primary = primary_of(metrics)
    rows, measures = [], {}
    datasets = list(dict.fromkeys(r["dataset"] for res in results for r in res["runs"]))
    for res in results:
        runs = {(r["dataset"], r["reranker"]): r for r in res["runs"]}
        first = {r["dataset"]: r for r in res["runs"] if r["backend"] == FIRST_STAGE and r["status"] == "ok"}

        def value(dataset: str, reranker: str, runs: dict = runs):
            run = runs.get((dataset, reranker))
            return run["metrics"].get(primary) if run and run["status"] == "ok" else None

        for block in train_blocks(res):
            name = f"{block['model']}-{block['backend']}"
            ok = block["status"] == "ok"
            if ok and block.get("peak_memory_measure"):
                measures.setdefault(f"{block['backend']} on {block.get('device') or '?'}", block["peak_memory_measure"])
            row = _block_cells(block, chip_of(res.get("environment") or {}))
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
            row["status"] = "ok" if ok else cell("error: " + block["error"].splitlines()[0])
            rows.append(row)
    columns = list(dict.fromkeys(c for row in rows for c in row if c != "status")) + ["status"]  # datasets in order
    notes = [f"peak MB, {where}: {cell(text, 300)}" for where, text in measures.items()]
    notes.append(
        "peak RSS MB: the training worker process's peak resident set size (ru_maxrss), the same "
        "measure for both backends."
    )
    return pd.DataFrame(rows, columns=columns).fillna(""), notes
