"""Offline throughput of an LLM yes/no reranker (issue 12 item 5): every pair of N DL19 queries in one predict call,
MLX ``Qwen3Reranker`` vs the official transformers recipe (``harness.qwen3_recipe.Qwen3RerankerTorch``).

    python benchmarks/gpu_offline.py MODEL [--dtype bfloat16] [--queries 10] [--batch-size 64]
        [--max-batch-tokens 0] [--backends mlx,torch] [--repeats 2]

Each backend runs in its own process. pairs/s and tokens/s (every prompt token, as the harness counts them) are the
median of ``--repeats`` timed calls after one warm-up call; TFLOP/s and MFU use ``benchmarks/gpu_mfu.py``'s
FLOPs per token (config-counted, mean tokens per pair) and chip peak. MLX computes each query's shared prompt prefix
once (prefix KV cache), so its TFLOP/s is effective, as in gpu_mfu. Peak MB: ``mx.get_peak_memory()`` /
``torch.cuda.max_memory_allocated()`` over the timed calls, weights included.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def mfu_module():
    spec = importlib.util.spec_from_file_location("gpu_mfu", HERE / "gpu_mfu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def child(a) -> dict:
    from harness.localmodels import resolve_model

    path = resolve_model(a.model)
    data = json.loads(Path(a.candidates).read_text())[: a.queries]
    pairs = [(q["query"], h["content"]) for q in data for h in q["hits"]]
    budget = a.max_batch_tokens or None
    if a.child == "mlx":
        import mlx_cross_encoder  # noqa: F401  # isort: skip
        import mlx.core as mx

        from mlx_cross_encoder import Qwen3Reranker

        model = Qwen3Reranker(path, dtype=a.dtype, max_length=512)
        tokens = int(model.token_counts(pairs).sum())

        def call():
            model.predict(pairs, batch_size=a.batch_size, max_batch_tokens=budget)

        reset, peak = mx.reset_peak_memory, lambda: mx.get_peak_memory() / 2**20
        sync = mx.synchronize
    else:
        import torch

        from harness.qwen3_recipe import Qwen3RerankerTorch

        device = "cuda" if torch.cuda.is_available() else "cpu"
        model = Qwen3RerankerTorch(path, max_length=512, device=device, dtype=a.dtype)
        tokens = int(model.token_counts(pairs).sum())

        def call():
            model.predict(pairs, batch_size=a.batch_size)

        on_gpu = device == "cuda"
        reset = torch.cuda.reset_peak_memory_stats if on_gpu else lambda: None
        peak = (lambda: torch.cuda.max_memory_allocated() / 2**20) if on_gpu else (lambda: None)
        sync = torch.cuda.synchronize if on_gpu else lambda: None
    call()
    sync()
    reset()
    times = []
    for _ in range(a.repeats):
        start = time.perf_counter()
        call()
        sync()
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    config = json.loads((Path(path) / "config.json").read_text())
    mfu = mfu_module()
    flops = mfu.flops_per_token(config, tokens / len(pairs))
    tflops = tokens / seconds * flops / 1e12
    return {
        "backend": a.child,
        "model": a.model,
        "dtype": a.dtype,
        "pairs": len(pairs),
        "tokens": tokens,
        "batch_size": a.batch_size,
        "max_batch_tokens": budget,
        "seconds": times,
        "pairs_per_s": len(pairs) / seconds,
        "tokens_per_s": tokens / seconds,
        "tflops": tflops,
        "mfu": tflops / mfu.PEAKS["NVIDIA H200"][a.dtype],
        "peak_mb": peak(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--queries", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-batch-tokens", type=int, default=0)
    ap.add_argument("--backends", default="mlx,torch")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=200)
    ap.add_argument("--candidates", default=str(HERE.parents[1] / "shared/data/trec-dl/bm25_top100_dl19.json"))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a)))
        return
    for backend in a.backends.split(","):
        cmd = [sys.executable, __file__, "--child", backend, *sys.argv[1:]]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
        try:
            res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=a.timeout)
            line = res.stdout.strip().splitlines()[-1] if res.returncode == 0 else None
            print(line or json.dumps({"backend": backend, "error": res.stderr.strip()[-1500:]}), flush=True)
        except subprocess.TimeoutExpired:
            print(json.dumps({"backend": backend, "error": f"timed out after {a.timeout:.0f} s"}), flush=True)


if __name__ == "__main__":
    main()
