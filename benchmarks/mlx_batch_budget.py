"""Peak MLX memory and throughput of ``Qwen3Reranker`` with and without a token budget (``max_batch_tokens``).

    .venv/bin/python benchmarks/mlx_batch_budget.py [--layers 2] [--queries 1] [--docs 100] [--batch-size 32]
        [--budgets none,8192,2048] [--dtype float32] [--repeats 2] [--data DL19_JSON]

Model: ``harness.localmodels.build_qwen3_reranker_shape`` (random-init Qwen3 at Qwen3-Reranker-0.6B's layer width
and full vocabulary, ``--layers`` layers, SmolLM2's tokenizer). Data: the first ``--queries`` TREC DL19 queries x
their first ``--docs`` BM25 hits. Rows: one per budget (default prefix-cache path: the prefix KV broadcast inside
each layer, ``SharedPrefixCache``), plus ``former per-row KVCache`` (no budget; the prefix cache as it was before:
a batch-sized mlx-lm ``KVCache`` holding a per-row copy of the prefix in every layer). "peak MB" is
``mx.get_peak_memory()`` above the memory allocated before the call (the weights); pairs/s is the fastest of
``--repeats`` timed calls after a warm-up call (a shared machine only ever adds time). Max |dP| is against the first
row.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import mlx_cross_encoder  # noqa: F401  # isort: skip  (loads the optimized BLAS before mlx.core)
import mlx.core as mx
import numpy as np

from harness.localmodels import build_qwen3_reranker_shape
from mlx_cross_encoder import Qwen3Reranker
from mlx_cross_encoder import llm_reranker as llm_reranker_module
from mlx_cross_encoder.llm_batching import per_row_prefix_caches

DL19 = Path("/work/shared/data/trec-dl/bm25_top100_dl19.json")


def load_pairs(path: Path, n_queries: int, n_docs: int) -> list[tuple[str, str]]:
    data = json.loads(path.read_text())
    return [(q["query"], h["content"]) for q in data[:n_queries] for h in q["hits"][:n_docs]]


def measure(model: Qwen3Reranker, pairs, batch_size: int, budget: int | None, repeats: int) -> dict:
    model.predict(pairs[:batch_size], batch_size=batch_size, max_batch_tokens=budget)  # warm-up
    mx.clear_cache()
    mx.reset_peak_memory()
    before = mx.get_active_memory()
    scores = model.predict(pairs, batch_size=batch_size, max_batch_tokens=budget)
    peak = mx.get_peak_memory() - before
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict(pairs, batch_size=batch_size, max_batch_tokens=budget)
        best = min(best, time.perf_counter() - start)
    plan = model._plan(pairs, model.tokenize(pairs), batch_size, budget)
    return dict(peak_mb=peak / 2**20, pairs_per_s=len(pairs) / best, batches=len(plan), scores=scores)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--queries", type=int, default=1)
    parser.add_argument("--docs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--budgets", default="none,8192,2048")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data", type=Path, default=DL19)
    args = parser.parse_args(argv)

    pairs = load_pairs(args.data, args.queries, args.docs)
    budgets = [None if b == "none" else int(b) for b in args.budgets.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        model = Qwen3Reranker(
            build_qwen3_reranker_shape(Path(tmp) / "m", num_hidden_layers=args.layers),
            max_length=args.max_length,
            dtype=args.dtype,
        )
    tokens = model.token_counts(pairs)
    print(
        f"# {platform.machine()} mlx {mx.__version__} load {os.getloadavg()[0]:.2f}; {len(pairs)} pairs, "
        f"tokens/pair mean {tokens.mean():.0f} max {tokens.max()}; {args.layers} layers, {args.dtype}, "
        f"batch_size {args.batch_size}"
    )
    print("| row | batches | peak MB above weights | pairs/s | max abs dP vs first row |")
    print("| --- | --- | --- | --- | --- |", flush=True)
    first = None

    def report(name: str, r: dict) -> None:
        nonlocal first
        first = r["scores"] if first is None else first
        diff = float(np.abs(r["scores"] - first).max())
        print(f"| {name} | {r['batches']} | {r['peak_mb']:.0f} | {r['pairs_per_s']:.1f} | {diff:.1e} |", flush=True)

    for b in budgets:
        report(f"max_batch_tokens {b}", measure(model, pairs, args.batch_size, b, args.repeats))
    shared = llm_reranker_module.shared_prefix_caches
    llm_reranker_module.shared_prefix_caches = per_row_prefix_caches(model._KVCache)
    try:
        report("former per-row KVCache, no budget", measure(model, pairs, args.batch_size, None, args.repeats))
    finally:
        llm_reranker_module.shared_prefix_caches = shared
    print(f"# load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
