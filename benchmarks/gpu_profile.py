"""Where the offline time of an MLX reranker goes (issue 12 item 5): tokenize / plan / collate / forward / host sync.

    python benchmarks/gpu_profile.py encoder MODEL --candidates DL19.json [--queries 43] [--dtype bfloat16]
        [--batch-size 1024] [--threads 1,4,8,16] [--torch]
    python benchmarks/gpu_profile.py llm MODEL --candidates DL19.json [--queries 10] [--dtype bfloat16]
        [--batch-size 128] [--max-batch-tokens 32768] [--torch]

MODEL: a folder or ``local:<name>`` (harness.localmodels). Prints one JSON line. Every phase is timed on its own,
after one untimed call of the same shapes (each shape's kernels and graphs built), median of ``--repeats``:

* encoder (``MLXCrossEncoder``): ``tokenize_s`` per thread count (``tokenizing.encode_in_threads``); ``plan_s``;
  ``collate_s`` (``_collate`` of every batch, arrays made on the device); ``forward_s`` (the pre-collated batches,
  one ``async_eval`` each, one sync at the end: the GPU-bound floor); ``forward_sync_s`` (a sync after each batch);
  ``predict_s`` (one ``predict`` call over all pairs, as an offline caller makes it) and ``predict_per_batch_s``
  (one call per planned batch, as the harness's offline scenario calls it). ``--torch``: sentence-transformers'
  ``CrossEncoder.predict`` over the same pairs and its tokenizer call alone.
* llm (``Qwen3Reranker``): ``tokenize_s``; ``predict_s`` (one call over all pairs: each query's documents share a
  cached prompt prefix); ``predict_per_batch_s`` (one call per batch of the harness offline scenario's plan, queries
  mixed; ``batches_in_harness_calls``: the reranker's own batches inside them); both again with
  ``prefix_cache`` off (``no_prefix_cache``); ``forward_s``: the body (no prefix cache, no head) over
  batches of the plan's shapes (random ids), synced once: what the plan's shapes cost on the chip;
  ``ceiling_tokens_per_s``: the body at B=64 x L=512 (the issue's ceiling measurement; ``--skip ceiling``);
  padding of the plan.
  ``--torch``: the transformers recipe (``harness.qwen3_recipe.Qwen3RerankerTorch``) over the same pairs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def timed(fn, repeats: int, sync=lambda: None, label: str = "") -> float:
    """Median seconds of ``repeats`` calls of ``fn`` after one untimed call."""
    print(f"[profile] {label or getattr(fn, '__name__', '')} {time.strftime('%H:%M:%S')}", file=sys.stderr, flush=True)
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def load_pairs(path: str, queries: int) -> list[tuple[str, str]]:
    data = json.loads(Path(path).read_text())[:queries]
    return [(q["query"], h["content"]) for q in data for h in q["hits"]]


def encoder_profile(a, path: str, pairs) -> dict:
    import mlx_cross_encoder  # noqa: F401  # isort: skip
    import mlx.core as mx

    from mlx_cross_encoder import MLXCrossEncoder, _blas, base, tokenizing

    model = MLXCrossEncoder(path, dtype=a.dtype, max_length=512)
    out: dict = {"tokenize_s": {}}
    for n in a.threads:
        out["tokenize_s"][str(n)] = timed(
            lambda n=n: tokenizing.encode_in_threads(model.tokenizer, pairs, threads=n), a.repeats
        )
    encodings = tokenizing.encode_in_threads(model.tokenizer, pairs)
    lengths = [len(e) for e in encodings]
    out["plan_s"] = timed(lambda: model.plan(lengths, a.batch_size), a.repeats)
    batches = model.plan(lengths, a.batch_size)
    out["batches"] = len(batches)
    out["padded_tokens"] = int(sum(len(b) * max(lengths[i] for i in b) for b in batches))
    out["tokens"] = int(sum(lengths))

    def collate_all():
        arrays = [model._collate([encodings[i] for i in b]) for b in batches]
        mx.eval([x for t in arrays for x in t if x is not None])
        return arrays

    out["collate_s"] = timed(collate_all, a.repeats)
    collated = collate_all()

    def forward(sync_each: bool):
        with _blas.single_threaded_while(mx.default_device() == mx.cpu):  # CPU check only: MKL/OpenMP clash
            return forward_all(sync_each)

    def forward_all(sync_each: bool):
        outs = []
        for args in collated:
            y = model.model(*args).astype(mx.float32)
            (mx.eval if sync_each else mx.async_eval)(y)
            outs.append(y)
        mx.eval(outs)

    out["forward_s"] = timed(lambda: forward(False), a.repeats)
    out["forward_sync_s"] = timed(lambda: forward(True), a.repeats)
    out["predict_s"] = timed(lambda: model.predict(pairs, batch_size=a.batch_size), a.repeats)
    rows = [[pairs[i] for i in b] for b in base.length_sorted_batches(lengths, a.batch_size)]
    out["predict_per_batch_s"] = timed(lambda: [model.predict(r, batch_size=len(r)) for r in rows], a.repeats)
    out["pairs_per_s"] = {k: len(pairs) / out[k] for k in ("forward_s", "predict_s", "predict_per_batch_s")}
    if a.torch:
        import torch
        from sentence_transformers import CrossEncoder

        st = CrossEncoder(
            path,
            device="cuda" if torch.cuda.is_available() else "cpu",
            max_length=512,
            model_kwargs={"torch_dtype": getattr(torch, a.dtype)},
        )
        sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
        out["torch_tokenize_s"] = timed(
            lambda: st.tokenizer(pairs, padding=True, truncation="longest_first", return_tensors="pt", max_length=512),
            a.repeats,
        )
        out["torch_predict_s"] = timed(
            lambda: st.predict(pairs, batch_size=a.batch_size, show_progress_bar=False), a.repeats, sync
        )
        out["torch_pairs_per_s"] = len(pairs) / out["torch_predict_s"]
    return out


def llm_profile(a, path: str, pairs) -> dict:
    import mlx_cross_encoder  # noqa: F401  # isort: skip
    import mlx.core as mx

    from mlx_cross_encoder import Qwen3Reranker
    from mlx_cross_encoder.base import length_sorted_batches
    from mlx_cross_encoder.llm_batching import batch_overhead_tokens

    budget = a.max_batch_tokens or None
    model = Qwen3Reranker(path, dtype=a.dtype, max_length=512)
    out: dict = {}
    out["tokenize_s"] = timed(lambda: model.tokenize(pairs), a.repeats)
    seqs = model.tokenize(pairs)
    plan = model._plan(pairs, seqs, a.batch_size, budget)
    out["batches"] = len(plan)
    out["tokens"] = int(sum(map(len, seqs)))
    out["prefix_cached_tokens"] = int(sum(shared * len(idx) for shared, idx in plan))
    out["padded_tokens"] = int(sum(len(idx) * (max(len(seqs[i]) for i in idx) - shared) for shared, idx in plan))
    out["predict_s"] = timed(lambda: model.predict(pairs, batch_size=a.batch_size, max_batch_tokens=budget), a.repeats)
    # the harness's offline scenario: one call per batch of its own plan over all pairs (queries mixed)
    calls = [[pairs[i] for i in b] for b in length_sorted_batches([len(x) for x in seqs], a.batch_size, budget)]
    out["harness_calls"] = len(calls)
    out["batches_in_harness_calls"] = sum(len(model._plan(c, model.tokenize(c), len(c), budget)) for c in calls)

    def per_call():
        for c in calls:
            model.predict(c, batch_size=len(c), max_batch_tokens=budget)

    out["predict_per_batch_s"] = timed(per_call, a.repeats)
    out["batch_overhead_tokens"] = model.batch_overhead_tokens or batch_overhead_tokens()
    out["overhead_sweep"] = overhead_sweep(a, model, pairs, seqs, calls, budget)
    if "no_prefix_cache" not in a.skip:
        model.prefix_cache = False  # the same calls without the per-query prompt-prefix KV cache
        out["no_prefix_cache"] = {
            "predict_s": timed(
                lambda: model.predict(pairs, batch_size=a.batch_size, max_batch_tokens=budget), a.repeats
            ),
            "predict_per_batch_s": timed(per_call, a.repeats),
        }
        model.prefix_cache = True
    shapes = [(len(idx), max(len(seqs[i]) for i in idx) - shared) for shared, idx in plan]
    body = model._backbone
    rng = np.random.default_rng(0)
    inputs = [mx.array(rng.integers(0, 1000, size=s, dtype=np.int32)) for s in shapes]

    def forward(batches):
        mx.eval([body(x)[:, -1] for x in batches])

    out["forward_s"] = timed(lambda: forward(inputs), a.repeats)
    big = [mx.array(rng.integers(0, 1000, size=(64, 512), dtype=np.int32))]
    if "ceiling" not in a.skip:
        out["ceiling_tokens_per_s"] = 64 * 512 / timed(lambda: forward(big), a.repeats)
    out["tokens_per_s"] = {
        "predict": out["tokens"] / out["predict_s"],
        "predict_per_batch": out["tokens"] / out["predict_per_batch_s"],
        "forward": out["tokens"] / out["forward_s"],
        "no_prefix_cache": {k: out["tokens"] / v for k, v in out.get("no_prefix_cache", {}).items()},
    }
    out["peak_mb"] = mx.get_peak_memory() / 2**20
    if a.torch:
        import torch

        from harness.qwen3_recipe import Qwen3RerankerTorch

        del model, body, inputs, big
        mx.clear_cache()
        ref = Qwen3RerankerTorch(
            path, max_length=512, device="cuda" if torch.cuda.is_available() else "cpu", dtype=a.dtype
        )
        sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
        out["torch_predict_s"] = timed(lambda: ref.predict(pairs, batch_size=a.batch_size), a.repeats, sync)
        out["torch_tokens_per_s"] = out["tokens"] / out["torch_predict_s"]
    return out


def plan_stats(model, pairs, seqs, batch_size: int, budget) -> dict:
    """Batches, prefix computations and tokens computed (rows x width after the cached prefix) of one call's plan."""
    plan = model._plan(pairs, seqs, batch_size, budget)
    prefixes = {tuple(seqs[idx[0]][:shared]) for shared, idx in plan if shared}
    computed = sum(len(idx) * (max(len(seqs[i]) for i in idx) - shared) for shared, idx in plan)
    real = sum(len(seqs[i]) - shared for shared, idx in plan for i in idx)
    return {
        "batches": len(plan),
        "prefixes": len(prefixes),
        "computed_tokens": int(computed),
        "padding": 1 - real / computed if computed else 0.0,
    }


def overhead_sweep(a, model, pairs, seqs, calls, budget) -> dict:
    """``predict_s`` (one call) and ``predict_per_batch_s`` (the harness's calls) per ``--overheads`` value of
    ``Qwen3Reranker.batch_overhead_tokens`` (the padding-aware planner's per-batch cost), with each plan's
    statistics; the model's own value is restored afterwards."""
    own = model.batch_overhead_tokens
    sweep = {}
    try:
        for overhead in a.overheads:
            model.batch_overhead_tokens = overhead

            def per_call():
                for c in calls:
                    model.predict(c, batch_size=len(c), max_batch_tokens=budget)

            one = plan_stats(model, pairs, seqs, a.batch_size, budget)
            each = [plan_stats(model, c, model.tokenize(c), len(c), budget) for c in calls]
            sweep[str(overhead)] = {
                "predict_s": timed(
                    lambda: model.predict(pairs, batch_size=a.batch_size, max_batch_tokens=budget),
                    a.repeats,
                    label=f"overhead {overhead} predict",
                ),
                "predict_per_batch_s": timed(per_call, a.repeats, label=f"overhead {overhead} per call"),
                "plan_one_call": one,
                "plan_harness_calls": {
                    "batches": sum(x["batches"] for x in each),
                    "prefixes": sum(x["prefixes"] for x in each),
                    "computed_tokens": sum(x["computed_tokens"] for x in each),
                },
            }
    finally:
        model.batch_overhead_tokens = own
    return sweep


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["encoder", "llm"])
    ap.add_argument("model", help="a model folder or local:<name>")
    ap.add_argument("--candidates", required=True, help="DL19-style candidates JSON")
    ap.add_argument("--queries", type=int, default=43)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--max-batch-tokens", type=int, default=0, help="llm: padded tokens per batch (0 = none)")
    ap.add_argument("--threads", default="1,4,8,16", help="encoder: tokenizer thread counts to time")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--torch", action="store_true", help="also time the torch reference over the same pairs")
    ap.add_argument("--overheads", default="", help="llm: batch_overhead_tokens values to time too (e.g. 512,8192)")
    ap.add_argument("--skip", default="", help="llm: leave out no_prefix_cache and/or ceiling (comma-separated)")
    a = ap.parse_args(argv)
    a.threads = [int(t) for t in a.threads.split(",")]
    a.overheads = [int(t) for t in a.overheads.split(",") if t]
    a.skip = {t for t in a.skip.split(",") if t}
    from harness.localmodels import resolve_model

    path = str(resolve_model(a.model)) if a.model.startswith("local:") else a.model
    pairs = load_pairs(a.candidates, a.queries)
    started = time.perf_counter()
    result = (encoder_profile if a.kind == "encoder" else llm_profile)(a, path, pairs)
    head = {
        "kind": a.kind,
        "model": a.model,
        "dtype": a.dtype,
        "pairs": len(pairs),
        "batch_size": a.batch_size,
        "max_batch_tokens": a.max_batch_tokens or None,
    }
    print(json.dumps({**head, **result, "wall_s": time.perf_counter() - started}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
