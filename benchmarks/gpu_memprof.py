"""Where MLX's peak memory goes (issue 12 item 4, profile): a reranker over one batch, and attention alone.

    python benchmarks/gpu_memprof.py MODEL [--dtype bfloat16] [--batch-size 100] [--candidates DL19.json]
        [--queries 1] [--docs 100] [--variants plain,budget-8192,...] [--torch]
    python benchmarks/gpu_memprof.py attention --shape B,H,L,D [--shape ...] [--dtype bfloat16] [--torch]

MODEL: a ``local:`` model of the harness or a folder. Prints one JSON line: the weights' memory
(``mx.get_active_memory()`` after loading) and, per variant, ``mx.get_peak_memory()`` above it over one predict
call (after a warm-up call of the same shapes) and the call's seconds. The pairs: the first ``--docs`` hits of the
first ``--queries`` queries; with ``--queries`` > 1 only the ``--batch-size`` longest pairs (in tokens) are
kept, so that the call is one batch: the largest batch of the harness's offline scenario, which sets its peak.

- ``plain``: ``predict(pairs, batch_size)`` as the harness calls it;
- ``budget-8192`` / ``budget-2048``: with ``max_batch_tokens``;
- ``no-mask`` (encoders): ``plain`` with the attention mask left out (``mask=None`` to
  ``mx.fast.scaled_dot_product_attention``): if the peak drops by about B x H x L x L x itemsize, the masked call
  materialized the attention scores (MLX's unfused fallback) where the unmasked one ran a fused kernel;
- ``eval-per-layer``: ``plain``, but each transformer layer's output is evaluated (``mx.eval``) before the next
  layer is built, so MLX cannot keep more than one layer's intermediates alive at a time (a probe, not a fix:
  it adds a host sync per layer);
- ``one-batch-in-flight``: ``plain`` with the reranker's double buffering off (each batch evaluated before the next
  is built).

``--torch`` (encoders): sentence-transformers' ``CrossEncoder.predict`` over the same pairs and batch size,
``torch.cuda.max_memory_allocated`` above its weights.

``attention``: ``mx.fast.scaled_dot_product_attention`` alone on random (B, H, L, D) q/k/v in ``--dtype``, without a
mask and with the encoders' additive (B, 1, 1, L) padding mask (half the keys of each row masked): peak above the
inputs, against ``scores_mb`` = B x H x L x L x itemsize, the attention-score matrix an unfused path must hold
(float32 softmax: x 4 bytes); ``--torch``: ``torch.nn.functional.scaled_dot_product_attention`` the same way.

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
VARIANTS = ("plain", "budget-8192", "budget-2048", "eval-per-layer", "one-batch-in-flight")


def layer_class(reranker):
    """The class of the model's repeated transformer block (``...layers.0`` / ``...layer.0``)."""
    for path, module in reranker.model.named_modules():
        if path.endswith(("layers.0", "layer.0")):
            return type(module)
    raise ValueError("no layers.0 / layer.0 module found")


def load_pairs(candidates: str, queries: int, docs: int) -> list[tuple[str, str]]:
    """The first ``docs`` hits of the first ``queries`` queries."""
    data = json.loads(Path(candidates).read_text())[:queries]
    return [(q["query"], h["content"]) for q in data for h in q["hits"][:docs]]


def longest(pairs, lengths, n: int):
    """The ``n`` pairs with the most tokens (the first batch of a length-sorted plan)."""
    order = sorted(range(len(pairs)), key=lambda i: -lengths[i])[:n]
    return [pairs[i] for i in order], [lengths[i] for i in order]


def attention_probe(a) -> dict:
    """Peak memory of one fused attention call, with and without the encoders' additive padding mask."""
    import mlx_cross_encoder  # noqa: F401  # isort: skip  (CUDA settings before mlx.core)
    import mlx.core as mx

    dtype = getattr(mx, a.dtype)
    rows = []
    for shape in a.shape:
        B, H, L, D = shape
        q, k, v = (mx.random.normal((B, H, L, D)).astype(dtype) for _ in range(3))
        keep = mx.arange(L)[None, :] < mx.array([L // 2 + (i % (L // 2)) for i in range(B)])[:, None]
        mask = mx.where(keep[:, None, None, :], mx.array(0.0, dtype), mx.array(mx.finfo(dtype).min, dtype))
        mx.eval(q, k, v, mask)
        row = {"shape": shape, "scores_mb": B * H * L * L * mx.zeros((), dtype).itemsize / 2**20}
        for name, m in (("no_mask", None), ("additive_mask", mask)):
            for _ in range(2):  # the first call builds the kernels / cuDNN graph
                mx.synchronize()
                mx.clear_cache()
                base = mx.get_active_memory()
                mx.reset_peak_memory()
                start = time.perf_counter()
                mx.eval(mx.fast.scaled_dot_product_attention(q, k, v, scale=D**-0.5, mask=m))
                seconds = time.perf_counter() - start
            row[name] = {"peak_above_inputs_mb": (mx.get_peak_memory() - base) / 2**20, "seconds": seconds}
        if a.torch:
            row["torch"] = torch_attention(shape, a.dtype)
        rows.append(row)
        del q, k, v, mask
    return {"probe": "attention", "dtype": a.dtype, "device": str(mx.default_device()), "rows": rows}


def torch_attention(shape, dtype_name: str) -> dict:
    import torch
    import torch.nn.functional as F

    B, H, L, D = shape
    dtype = getattr(torch, dtype_name)
    q, k, v = (torch.randn(B, H, L, D, device="cuda", dtype=dtype) for _ in range(3))
    keep = (
        torch.arange(L, device="cuda")[None, :]
        < torch.tensor([L // 2 + (i % (L // 2)) for i in range(B)], device="cuda")[:, None]
    )
    mask = torch.zeros(B, 1, 1, L, device="cuda", dtype=dtype).masked_fill(
        ~keep[:, None, None, :], torch.finfo(dtype).min
    )
    out = {}
    for name, m in (("no_mask", None), ("additive_mask", mask)):
        for _ in range(2):
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            F.scaled_dot_product_attention(q, k, v, attn_mask=m)
            torch.cuda.synchronize()
        out[name] = {"peak_above_inputs_mb": (torch.cuda.max_memory_allocated() - base) / 2**20}
    return out


def torch_peak(path: str, dtype_name: str, pairs, batch_size: int) -> dict:
    """sentence-transformers over the same pairs: peak above its weights (after a warm-up call)."""
    import torch
    from sentence_transformers import CrossEncoder

    st = CrossEncoder(path, device="cuda", max_length=512, model_kwargs={"torch_dtype": getattr(torch, dtype_name)})
    weights = torch.cuda.memory_allocated()
    st.predict(pairs, batch_size=batch_size, show_progress_bar=False)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    st.predict(pairs, batch_size=batch_size, show_progress_bar=False)
    torch.cuda.synchronize()
    return {
        "weights_mb": weights / 2**20,
        "peak_above_weights_mb": (torch.cuda.max_memory_allocated() - weights) / 2**20,
        "seconds": time.perf_counter() - start,
        "attn_implementation": getattr(st.model.config, "_attn_implementation", None),
    }


def model_probe(a) -> dict:
    import mlx_cross_encoder  # noqa: F401  # isort: skip  (BLAS hook before mlx.core)
    import mlx.core as mx

    from harness.localmodels import resolve_model
    from mlx_cross_encoder import load_reranker

    pairs = load_pairs(a.candidates, a.queries, a.docs)
    mx.reset_peak_memory()
    path = str(resolve_model(a.model)) if a.model.startswith("local:") else a.model
    reranker = load_reranker(path, dtype=a.dtype, max_length=512)
    weights = mx.get_active_memory()
    lengths = [len(s) for s in reranker.tokenize(pairs)]
    if a.queries > 1:
        pairs, lengths = longest(pairs, lengths, a.batch_size)
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
    out["tokens"], out["max_tokens"] = int(sum(lengths)), int(max(lengths))
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

    for variant in a.variants:
        run_variant(variant, reranker, measure, mx)
    if a.torch:
        del reranker
        mx.clear_cache()
        out["torch"] = torch_peak(path, a.dtype, pairs, a.batch_size)
    return out


def run_variant(variant: str, reranker, measure, mx) -> None:
    """One variant of :func:`model_probe` (see the module docstring); patches are undone afterwards."""
    if variant == "plain":
        return measure("plain")
    if variant.startswith("budget-"):
        return measure(variant, max_batch_tokens=int(variant.split("-")[1]))
    if variant == "no-mask":
        import importlib

        module = importlib.import_module(type(reranker.model).__module__)
        original = module.attention_mask_4d
        module.attention_mask_4d = lambda mask, dtype: None
        try:
            return measure("no-mask")
        finally:
            module.attention_mask_4d = original
    if variant == "eval-per-layer":
        block = layer_class(reranker)
        original = block.__call__

        def evaluated(self, *args, **kwargs):
            y = original(self, *args, **kwargs)
            mx.eval(y)
            return y

        block.__call__ = evaluated
        try:
            return measure("eval-per-layer")
        finally:
            block.__call__ = original
    if variant == "one-batch-in-flight":
        real_async_eval = mx.async_eval
        mx.async_eval = mx.eval  # the rerankers' double buffering: each batch finishes before the next is built
        try:
            return measure("one-batch-in-flight")
        finally:
            mx.async_eval = real_async_eval
    raise ValueError(f"unknown variant {variant!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="local:<name>, a folder, or 'attention'")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--docs", type=int, default=100)
    ap.add_argument("--queries", type=int, default=1)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--torch", action="store_true")
    ap.add_argument("--shape", action="append", default=[], help="attention: B,H,L,D (repeatable)")
    ap.add_argument(
        "--candidates", default=str(Path(__file__).resolve().parents[2] / "shared/data/trec-dl/bm25_top100_dl19.json")
    )
    a = ap.parse_args()
    a.variants = [v for v in a.variants.split(",") if v]
    a.shape = [tuple(int(x) for x in s.split(",")) for s in a.shape] or [(256, 12, 512, 32)]
    print(json.dumps(attention_probe(a) if a.model == "attention" else model_probe(a)), flush=True)


if __name__ == "__main__":
    main()
