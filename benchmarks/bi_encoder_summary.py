"""Summary of the bi-encoder rows (issue #13 item 2) from harness results files: zero-shot and trained.

    python benchmarks/bi_encoder_summary.py --zero-shot results/bi-encoder-zero-shot-h200.json \
        --trained results/bi-encoder-trained-h200-hn1.json results/bi-encoder-trained-h200-hn3.json
    python benchmarks/bi_encoder_summary.py --zero-shot results/bi-encoder-smollm2-zero-shot-h200-s6.json \
        --trained results/bi-encoder-smollm2-lora-{mlx,torch}-h200-s6.json --base smollm2-bi-lasttoken

Prints Markdown (several trained files: one per recipe or backend, as benchmarks/gpu_embed.sh writes them): per
dataset and zero-shot system the MLX / sentence-transformers nDCG@10; per trained model and backend its dev
checkpoint choice (best dev nDCG@10, best step, evaluations), training wall, tokens/s and peak memory, and held-out
metrics; the recipe chosen by the
rule written in the suite before the run (the model whose MLX training has the highest best dev nDCG@10, ties: the
first listed); and, per held-out dataset, the trained MLX row against the zero-shot MLX row (``--base``) and its torch
twin (mean difference and the paired randomization p-value, ``harness.metrics.randomization_p_value``, over the
queries both have). Reads the files only: nothing is chosen on DL20 or NovelEval.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from harness.metrics import randomization_p_value

METRIC = "ndcg@10"


def runs_of(*paths: Path) -> dict[tuple[str, str], dict]:
    """The ok runs of the files by (dataset, reranker); a first stage repeated in several files is kept once."""
    runs = {}
    for path in paths:
        data = json.loads(path.read_text())
        runs.update({(r["dataset"], r["reranker"]): r for r in data["runs"] if r.get("status") == "ok"})
    return runs


def paired(a: dict, b: dict) -> tuple[float, float, int]:
    """(mean a - b, randomization p, n) of the per-query nDCG@10 over the queries both runs have."""
    qa, qb = a["per_query"][METRIC], b["per_query"][METRIC]
    common = sorted(q for q in qa if q in qb and qa[q] is not None and qb[q] is not None)
    x, y = np.array([qa[q] for q in common]), np.array([qb[q] for q in common])
    return float(np.mean(x - y)), randomization_p_value(x, y), len(common)


def system_of(name: str) -> str:
    """A reranker's system: its name without the backend suffix (``all-minilm-l6-v2-bi-mlx`` -> ``...-bi``)."""
    for suffix in ("-mlx", "-torch"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def zero_shot_table(runs: dict) -> list[str]:
    lines = ["| dataset | system | queries | first stage nDCG@10 | MLX nDCG@10 | sentence-transformers nDCG@10 | MLX - ST |",
             "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    cell = lambda r: f"{r['metrics'][METRIC]:.4f}" if r else "not run"  # noqa: E731
    for dataset in dict.fromkeys(d for d, _ in runs):
        rows = {name: r for (d, name), r in runs.items() if d == dataset}
        first = next((r for r in rows.values() if r["backend"] == "first_stage"), None)
        for system in dict.fromkeys(system_of(n) for n, r in rows.items() if r["backend"] != "first_stage"):
            mlx = next((r for n, r in rows.items() if r["backend"] == "mlx" and system_of(n) == system), None)
            torch = next((r for n, r in rows.items() if r["backend"] == "torch" and system_of(n) == system), None)
            n = len((mlx or torch or first or {"per_query": {METRIC: {}}})["per_query"][METRIC])
            diff = f"{mlx['metrics'][METRIC] - torch['metrics'][METRIC]:+.4f}" if mlx and torch else ""
            lines.append(f"| {dataset} | {system} | {n} | {cell(first)} | {cell(mlx)} | {cell(torch)} | {diff} |")
    return lines


def trained_tables(paths: list[Path], runs: dict, zero: dict, base: str | None = None) -> list[str]:
    blocks = [b for path in paths for b in (json.loads(path.read_text()).get("train") or {}).get("models", [])]
    lines = ["| model | backend | status | steps | best dev nDCG@10 | at step | step-0 dev nDCG@10 | train s | tokens/s "
             "| peak MB |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for b in blocks:
        evals = b.get("evaluations") or []
        step0 = next((e["metrics"][METRIC] for e in evals if e["step"] == 0), None)
        fmt = lambda v, f: f"{v:{f}}" if isinstance(v, (int, float)) else "-"  # noqa: E731
        lines.append(f"| {b['model']} | {b['backend']} | {b['status']} | {fmt(b.get('steps'), 'd')} | "
                     f"{fmt(b.get('best_dev'), '.4f')} | {fmt(b.get('best_step'), 'd')} | {fmt(step0, '.4f')} | "
                     f"{fmt(b.get('train_time_s'), '.1f')} | {fmt(b.get('tokens_per_s'), ',.0f')} | "
                     f"{fmt(b.get('peak_memory_mb'), ',.0f')} |")  # fmt: skip
    mlx_blocks = [b for b in blocks if b["backend"] == "mlx" and b.get("best_dev") is not None]
    if not mlx_blocks:
        return [*lines, "", "No MLX training finished with a dev evaluation: no recipe chosen."]
    chosen = max(mlx_blocks, key=lambda b: b["best_dev"])  # max keeps the first of equal values
    lines += ["", f"Chosen on dev (rule of the suite): **{chosen['model']}** (MLX best dev nDCG@10 "
              f"{chosen['best_dev']:.4f} at step {chosen['best_step']}).", "",
              "| dataset | model | MLX nDCG@10 | torch nDCG@10 | MLX - torch (p) | MLX - zero-shot MLX (p, n) |",
              "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for (dataset, _name), run in runs.items():
        if run["backend"] != "mlx" or run.get("train") is None:
            continue
        model = run["train"]["model"]
        twin = next((r for (d, _), r in runs.items() if d == dataset and r["backend"] == "torch"
                     and (r.get("train") or {}).get("model") == model), None)  # fmt: skip
        start = next((r for (d, n), r in zero.items() if d == dataset and r["backend"] == "mlx"
                      and (base is None or system_of(n) == base)), None)  # fmt: skip
        vs_twin = "" if twin is None else "{:+.4f} (p={:.2f})".format(*paired(run, twin)[:2])
        vs_zero = "" if start is None else "{:+.4f} (p={:.3f}, n={})".format(*paired(run, start))
        mark = " (chosen)" if model == chosen["model"] else ""
        twin_cell = f"{twin['metrics'][METRIC]:.4f}" if twin else "not run"
        lines.append(
            f"| {dataset} | {model}{mark} | {run['metrics'][METRIC]:.4f} | {twin_cell} | {vs_twin} | {vs_zero} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zero-shot", type=Path, required=True, help="harness results file of the zero-shot suite")
    parser.add_argument("--trained", type=Path, nargs="+", help="harness results files of the trained suite")
    parser.add_argument("--base", help="the zero-shot system the trained models start from (a reranker name without "
                        "-mlx/-torch, e.g. smollm2-bi-lasttoken); default: the first MLX zero-shot row")  # fmt: skip
    args = parser.parse_args(argv)
    zero = runs_of(args.zero_shot)
    out = ["### Zero-shot", "", *zero_shot_table(zero)]
    if args.trained:
        out += ["", "### Trained", "", *trained_tables(args.trained, runs_of(*args.trained), zero, args.base)]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
