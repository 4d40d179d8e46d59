"""Before/after of the LLM reranker's batch plan (issue 12 item 5) in one process, on this machine.

"before" is the session-4 planner (``plan_batches`` as of f74223e^, copied below): within a call, one query's
documents form batches over that query's prefix; pairs of many queries in one call become many small batches,
each query's group in batches up to ``batch_size``. "after" is :func:`mlx_cross_encoder.llm_batching.plan_batches`.
Two call patterns over DL19 BM25 hits: ``offline`` = the harness offline scenario's calls (length-sorted batches
of all pairs across queries, one ``predict(rows, len(rows))`` per batch), ``per_query`` = one call per query.
Reported: batches, prefix computations, tokens computed (suffix rows x width + prefixes), padding fraction of the
suffix tokens, wall time per pass (before/after interleaved, medians), max |score difference|, load average.

    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 nice -n 10 .venv/bin/python benchmarks/llm_batch_plan.py --json OUT
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from mlx_cross_encoder import Qwen3Reranker
from mlx_cross_encoder.base import length_sorted_batches
from mlx_cross_encoder.llm_batching import shared_prefix_length

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "trec-dl" / "bm25_top100_dl19.json"


def before_plan(queries, seqs, batch_size, *, prefix_cache, length_batching, max_batch_tokens=None, **_):
    """The planner before item 5 (f74223e^), verbatim but for the name."""

    def batches(idx):
        lengths = [len(seqs[i]) for i in idx]
        plan = length_sorted_batches(lengths, batch_size, max_batch_tokens, sort=length_batching)
        return [[idx[i] for i in b] for b in plan]

    plan, loose = [], []
    if prefix_cache:
        groups: dict[str, list[int]] = {}
        for i, query in enumerate(queries):
            groups.setdefault(query, []).append(i)
        for idx in groups.values():
            shared = shared_prefix_length([seqs[i] for i in idx]) if len(idx) >= 2 else 0
            if shared < 1:
                loose += idx
                continue
            plan += [(shared, b) for b in batches(idx)]
    else:
        loose = list(range(len(seqs)))
    plan += [(0, b) for b in batches(loose)]
    return plan


def model_dir(hidden: int, layers: int) -> Path:
    from harness.localshapes import QWEN3_RERANKER_06B_SHAPE, build_qwen3_shape

    shape = {**QWEN3_RERANKER_06B_SHAPE, "hidden_size": hidden, "intermediate_size": 3 * hidden}
    shape.update(num_attention_heads=max(1, hidden // 64), num_key_value_heads=max(1, hidden // 128), head_dim=64)
    return build_qwen3_shape(Path(tempfile.mkdtemp(prefix="llm-plan-")) / "m", shape, layers, dtype="float32")


def dl19_pairs(queries: int, docs: int) -> list[tuple[str, str]]:
    data = json.loads(DATA.read_text())[:queries]
    return [(e["query"], h["content"]) for e in data for h in e["hits"][:docs]]


def calls(model, pairs, pattern, batch_size, max_batch_tokens):
    if pattern == "per_query":
        by_query: dict[str, list] = {}
        for p in pairs:
            by_query.setdefault(p[0], []).append(p)
        return [(rows, batch_size) for rows in by_query.values()]
    lengths = model.token_counts(pairs)  # the offline scenario: every pair, length-sorted across queries
    return [([pairs[i] for i in b], len(b)) for b in length_sorted_batches(lengths, batch_size, max_batch_tokens)]


def plan_stats(model, call_list, max_batch_tokens) -> dict:
    stats = dict(calls=len(call_list), batches=0, prefixes=0, prefix_tokens=0, suffix_tokens=0, computed_suffix=0)
    for rows, bs in call_list:
        seqs = model.tokenize(rows)
        key = None
        for shared, idx in model._plan(rows, seqs, bs, max_batch_tokens):
            stats["batches"] += 1
            if shared and tuple(seqs[idx[0]][:shared]) != key:
                key = tuple(seqs[idx[0]][:shared])
                stats["prefixes"] += 1
                stats["prefix_tokens"] += shared
            stats["suffix_tokens"] += sum(len(seqs[i]) - shared for i in idx)
            stats["computed_suffix"] += len(idx) * max(len(seqs[i]) - shared for i in idx)
    stats["computed_tokens"] = stats["computed_suffix"] + stats["prefix_tokens"]
    stats["padding_fraction"] = 1 - stats["suffix_tokens"] / stats["computed_suffix"]
    return stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=10)
    ap.add_argument("--docs", type=int, default=12, help="BM25 hits per query")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--max-batch-tokens", type=int, default=32768)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--patterns", nargs="+", default=["offline", "per_query"])
    ap.add_argument("--overhead", type=int, help="batch_overhead_tokens (default: the device's)")
    ap.add_argument("--plan-only", action="store_true", help="plan statistics only (no forward)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import mlx_cross_encoder.llm_reranker as llm

    model = Qwen3Reranker(
        model_dir(args.hidden, args.layers), max_length=args.max_length, batch_overhead_tokens=args.overhead
    )
    after_plan = llm.plan_batches
    pairs = dl19_pairs(args.queries, args.docs)
    out = {"args": {k: str(v) for k, v in vars(args).items()}, "pairs": len(pairs), "rows": []}
    for pattern in args.patterns:
        call_list = calls(model, pairs, pattern, args.batch_size, args.max_batch_tokens)
        row: dict = {"pattern": pattern, "calls": len(call_list)}
        for name, planner in (("before", before_plan), ("after", after_plan)):
            llm.plan_batches = planner
            row[name] = plan_stats(model, call_list, args.max_batch_tokens)
            if args.plan_only:
                continue
            row[name]["scores"] = np.concatenate([model.predict(r, batch_size=bs) for r, bs in call_list])  # warm-up
            row[name]["wall_s"] = []
        for _ in range(0 if args.plan_only else args.repeats):  # interleaved
            for name, planner in (("before", before_plan), ("after", after_plan)):
                llm.plan_batches = planner
                t = time.perf_counter()
                for r, bs in call_list:
                    model.predict(r, batch_size=bs)
                row[name]["wall_s"].append(time.perf_counter() - t)
        llm.plan_batches = after_plan
        row["computed_tokens_ratio"] = row["after"]["computed_tokens"] / row["before"]["computed_tokens"]
        if args.plan_only:
            out["rows"].append(row)
            print(json.dumps(row))
            continue
        row["max_abs_score_diff"] = float(np.abs(row["before"].pop("scores") - row["after"].pop("scores")).max())
        for name in ("before", "after"):
            row[name]["median_wall_s"] = float(np.median(row[name]["wall_s"]))
        row["wall_ratio_after_before"] = row["after"]["median_wall_s"] / row["before"]["median_wall_s"]
        row["per_repeat_ratio"] = [a / b for a, b in zip(row["after"]["wall_s"], row["before"]["wall_s"])]
        row["load_avg"] = os.getloadavg()
        out["rows"].append(row)
        print(json.dumps(row))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
