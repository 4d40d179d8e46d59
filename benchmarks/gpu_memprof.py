"""Where MLX's peak memory goes when one reranker scores one query's 100 DL19 passages (issue 12 item 4, profile).

    python benchmarks/gpu_memprof.py MODEL [--dtype bfloat16] [--batch-size 100] [--candidates DL19.json]

MODEL: a ``local:`` model of the harness or a folder. Prints one JSON line: the weights' memory
(``mx.get_active_memory()`` after loading) and, per variant, ``mx.get_peak_memory()`` above it over one predict
call (after a warm-up call of the same shapes) and the call's seconds:

- ``plain``: ``predict(pairs, batch_size)`` as the harness calls it;
- ``budget-8192`` / ``budget-2048``: with ``max_batch_tokens``;
- ``eval-per-layer``: ``plain``, but each transformer layer's output is evaluated (``mx.eval``) before the next
  layer is built, so MLX cannot keep more than one layer's intermediates alive at a time (a probe, not a fix:
  it adds a host sync per layer);
- ``one-batch-in-flight``: ``plain`` with the reranker's double buffering off (each batch evaluated before the next
  is built).

MLX reads its CUDA settings (``MLX_MAX_OPS_PER_BUFFER``, ``MLX_USE_CUDA_GRAPHS``, ...) once per process: run the
script once per setting; the JSON records them.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

ENV_KEYS = ("MLX_MAX_OPS_PER_BUFFER", "MLX_MAX_MB_PER_BUFFER", "MLX_USE_CUDA_GRAPHS", "MLX_ENABLE_TF32")


def layer_class(reranker):
    """The class of the model's repeated transformer block (``...layers.0`` / ``...layer.0``)."""
    for path, module in reranker.model.named_modules():
        if path.endswith(("layers.0", "layer.0")):
            return type(module)
    raise ValueError("no layers.0 / layer.0 module found")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--docs", type=int, default=100)
    ap.add_argument(
        "--candidates", default=str(Path(__file__).resolve().parents[2] / "shared/data/trec-dl/bm25_top100_dl19.json")
    )
    a = ap.parse_args()

    import mlx_cross_encoder  # noqa: F401  # isort: skip  (BLAS hook before mlx.core)
    import mlx.core as mx

    from harness.localmodels import resolve_model
    from mlx_cross_encoder import load_reranker

    first = json.loads(Path(a.candidates).read_text())[0]
    pairs = [(first["query"], h["content"]) for h in first["hits"][: a.docs]]
    mx.reset_peak_memory()
    reranker = load_reranker(resolve_model(a.model), dtype=a.dtype, max_length=512)
    weights = mx.get_active_memory()
    out = {
        "model": a.model,
        "dtype": a.dtype,
        "device": str(mx.default_device()),
        "env": {k: os.environ.get(k) for k in ENV_KEYS},
        "pairs": len(pairs),
        "batch_size": a.batch_size,
        "load_peak_mb": mx.get_peak_memory() / 2**20,
        "weights_mb": weights / 2**20,
        "rows": [],
    }
    reference = None

    def measure(name: str, **kwargs) -> None:
        nonlocal reference
        reranker.predict(pairs, batch_size=a.batch_size, **kwargs)  # warm-up: same shapes
        mx.synchronize()
        mx.clear_cache()
        mx.reset_peak_memory()
        start = time.perf_counter()
        scores = reranker.predict(pairs, batch_size=a.batch_size, **kwargs)
        seconds = time.perf_counter() - start
        reference = scores if reference is None else reference
        out["rows"].append(
            {
                "variant": name,
                "peak_above_weights_mb": (mx.get_peak_memory() - weights) / 2**20,
                "seconds": seconds,
                "max_abs_diff_vs_plain": float(abs(scores - reference).max()),
            }
        )

    measure("plain")
    measure("budget-8192", max_batch_tokens=8192)
    measure("budget-2048", max_batch_tokens=2048)
    block = layer_class(reranker)
    original = block.__call__

    def evaluated(self, *args, **kwargs):
        y = original(self, *args, **kwargs)
        mx.eval(y)
        return y

    block.__call__ = evaluated
    try:
        measure("eval-per-layer")
    finally:
        block.__call__ = original
    real_async_eval = mx.async_eval
    mx.async_eval = mx.eval  # the rerankers' double buffering: each batch finishes before the next is built
    try:
        measure("one-batch-in-flight")
    finally:
        mx.async_eval = real_async_eval
    print(json.dumps(out))


if __name__ == "__main__":
    main()
