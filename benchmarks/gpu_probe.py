"""H200 probe for issue 12: float32 precision (TF32) in MLX and torch, MLX-vs-transformers parity on the real
MiniLM-L6 weights, offline throughput per dtype, and a stage profile of MLX's encoder forward per dtype.

Run on the GPU machine from the repository root (PYTHONPATH=.), MLX and the model packages staged::

    python benchmarks/gpu_probe.py --candidates DL19.json --out DIR

MLX reads ``MLX_ENABLE_TF32`` and ``MLX_CUDA_USE_CUDNN_SDPA`` once, so every MLX configuration runs in its own
process (``gpu_probe.py mlx-scores`` / ``mlx-profile``); torch runs in the parent. Writes ``DIR/probe.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BATCH = int(os.environ.get("GPU_PROBE_BATCH", 256))  # smaller only to check the code on a CPU
MAX_LENGTH = 512


def load_pairs(path: str, max_queries: int | None) -> tuple[list[tuple[str, str]], list[int]]:
    """(query, passage) pairs of the first ``max_queries`` queries and the query index of each pair."""
    data = json.loads(Path(path).read_text())[:max_queries]
    pairs, owner = [], []
    for qi, item in enumerate(data):
        for hit in item["hits"]:
            pairs.append((item["query"], hit["content"]))
            owner.append(qi)
    return pairs, owner


def relative_error(out: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(out.astype(np.float64) - ref) / np.linalg.norm(ref))


# --- MLX side (a child process per configuration) --------------------------------------------------------------
def mlx_matmul_error() -> dict:
    import mlx.core as mx

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((1024, 1024), dtype=np.float32), rng.standard_normal((1024, 1024), dtype=np.float32)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    out = np.array(mx.array(a) @ mx.array(b))
    n = 8192 if mx.default_device() == mx.gpu else 256  # the CPU only checks that the code runs
    big = mx.random.normal((n, n))
    rates = {}
    for name, dtype in (("float32", mx.float32), ("bfloat16", mx.bfloat16)):
        x = big.astype(dtype)
        mx.eval(x)
        for _ in range(3):
            mx.eval(x @ x)
        t = time.perf_counter()
        for _ in range(10):
            mx.eval(x @ x)
        rates[name] = 2 * n**3 * 10 / (time.perf_counter() - t) / 1e12
    return {"matmul_1024_rel_err": relative_error(out, ref), "tflops_8192": rates}


def mlx_scores(args) -> None:
    import mlx_cross_encoder  # noqa: F401  (before mlx.core)

    # isort: split
    import mlx.core as mx

    from mlx_cross_encoder import MLXCrossEncoder

    result = {"env": {k: os.environ.get(k) for k in ("MLX_ENABLE_TF32", "MLX_CUDA_USE_CUDNN_SDPA")}}
    result.update(mlx_matmul_error())
    pairs = [tuple(p) for p in json.loads(Path(args.pairs).read_text())]
    model = MLXCrossEncoder(args.model, dtype=args.dtype, max_length=MAX_LENGTH)
    n_parity = args.parity_pairs
    logits = model.predict(pairs[:n_parity], batch_size=BATCH, activation_fn="identity")
    model.predict(pairs, batch_size=BATCH)  # warm-up: every batch shape once
    mx.reset_peak_memory()
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        model.predict(pairs, batch_size=BATCH)
        times.append(time.perf_counter() - t)
    result.update(
        pairs=len(pairs),
        seconds=times,
        pairs_per_s=len(pairs) / statistics.median(times),
        peak_mb=mx.get_peak_memory() / 2**20,
    )
    np.save(args.out + ".npy", np.asarray(logits, dtype=np.float32))
    Path(args.out + ".json").write_text(json.dumps(result))


def _bench(fn, n=20, warm=3) -> float:
    import mlx.core as mx

    for _ in range(warm):
        mx.eval(fn())
    times = []
    for _ in range(n):
        t = time.perf_counter()
        mx.eval(fn())
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def _profile_at(model, dtype, L: int, rng) -> dict:
    """Milliseconds of each stage at batch BATCH and length L (medians, see _bench)."""
    import mlx.core as mx
    import mlx.nn as nn

    from mlx_cross_encoder.models.layers import attention_mask_4d

    a = model.args
    B, H, nh = BATCH, a.hidden_size, a.num_attention_heads
    ids = mx.array(rng.integers(1000, 20000, (B, L)).astype(np.int32))
    lengths = rng.integers(L // 2, L + 1, B)
    mask = mx.array((np.arange(L)[None] < lengths[:, None]).astype(np.int32))
    full = mx.ones((B, L), dtype=mx.int32)
    x = mx.random.normal((B, L, H)).astype(dtype)
    m4 = attention_mask_4d(mask, dtype)
    q = mx.random.normal((B, nh, L, H // nh)).astype(dtype)
    layer = model.bert.encoder.layer[0]
    inter = mx.random.normal((B, L, a.intermediate_size)).astype(dtype)
    lin = nn.Linear(H, H)
    lin.set_dtype(dtype)
    stages = {
        "forward_padded_mask": lambda: model(ids, mask),
        "forward_full_mask": lambda: model(ids, full),
        "embeddings": lambda: model.bert.embeddings(ids, mx.zeros_like(ids), mx.arange(L)[None]),
        "one_layer_mask": lambda: layer(x, m4),
        "one_layer_no_mask": lambda: layer(x, None),
        "sdpa_mask": lambda: mx.fast.scaled_dot_product_attention(q, q, q, scale=0.125, mask=m4),
        "sdpa_no_mask": lambda: mx.fast.scaled_dot_product_attention(q, q, q, scale=0.125, mask=None),
        "sdpa_unfused": lambda: mx.softmax((q * 0.125) @ q.swapaxes(-1, -2) + m4, axis=-1) @ q,
        "linear_HxH": lambda: lin(x),
        "layernorm": lambda: layer.output.LayerNorm(x),
        "gelu_intermediate": lambda: layer.intermediate.act(inter),
        "ffn_out_dense": lambda: layer.output.dense(inter),
        "mask_4d": lambda: attention_mask_4d(mask, dtype),
    }
    return {name: _bench(fn) for name, fn in stages.items()}


def mlx_profile(args) -> None:
    """Milliseconds per stage of the MLX BERT forward at (B, L), with one stage left out or isolated."""
    import mlx.core as mx

    import mlx_cross_encoder  # noqa: F401
    from mlx_cross_encoder import MLXCrossEncoder

    enc = MLXCrossEncoder(args.model, dtype=args.dtype, max_length=MAX_LENGTH)
    model, dtype = enc.model, enc.dtype
    out: dict = {"env": {k: os.environ.get(k) for k in ("MLX_ENABLE_TF32", "MLX_CUDA_USE_CUDNN_SDPA")}}
    rng = np.random.default_rng(0)
    for L in (64, 128, 256):
        out[f"L{L}"] = _profile_at(model, dtype, L, rng)
    # cost of a new shape: first call vs repeat, as length-sorted batching meets a new L at every batch
    firsts, repeats = [], []
    for L in range(40, 200, 10):
        ids = mx.array(rng.integers(1000, 20000, (BATCH, L)).astype(np.int32))
        mask = mx.ones((BATCH, L), dtype=mx.int32)
        t = time.perf_counter()
        mx.eval(model(ids, mask))
        firsts.append((time.perf_counter() - t) * 1e3)
        t = time.perf_counter()
        mx.eval(model(ids, mask))
        repeats.append((time.perf_counter() - t) * 1e3)
    out["new_shape_ms"] = {"first": firsts, "repeat": repeats}
    Path(args.out + ".json").write_text(json.dumps(out))


# --- torch side (the parent) ----------------------------------------------------------------------------------
def torch_side(model_dir: str, pairs, n_parity: int, repeats: int) -> tuple[dict, dict]:
    import torch
    from sentence_transformers import CrossEncoder
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    info: dict = {
        "allow_tf32_default": torch.backends.cuda.matmul.allow_tf32,
        "torch": torch.__version__,
        "device_name": torch.cuda.get_device_name(0),
    }
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((1024, 1024), dtype=np.float32), rng.standard_normal((1024, 1024), dtype=np.float32)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    for flag in (False, True):
        torch.backends.cuda.matmul.allow_tf32 = flag
        out = (torch.from_numpy(a).cuda() @ torch.from_numpy(b).cuda()).cpu().numpy()
        info[f"matmul_1024_rel_err_allow_tf32_{flag}"] = relative_error(out, ref)
    torch.backends.cuda.matmul.allow_tf32 = False

    tok = AutoTokenizer.from_pretrained(model_dir)
    logits = {}
    for name in ("float32", "bfloat16", "float16"):
        model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=getattr(torch, name)).cuda().eval()
        chunks = []
        with torch.inference_mode():
            for i in range(0, n_parity, BATCH):
                batch = pairs[i : min(i + BATCH, n_parity)]
                feats = tok(
                    [p[0] for p in batch],
                    [p[1] for p in batch],
                    padding=True,
                    truncation="longest_first",
                    max_length=MAX_LENGTH,
                    return_tensors="pt",
                ).to("cuda")
                chunks.append(model(**feats).logits[:, 0].float().cpu().numpy())
        logits[name] = np.concatenate(chunks)
        del model
    speed = {}
    for name, tf32 in (("float32", False), ("float32-tf32", True), ("bfloat16", False), ("float16", False)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        dtype = getattr(torch, name.split("-")[0])
        ce = CrossEncoder(model_dir, device="cuda", max_length=MAX_LENGTH, model_kwargs={"torch_dtype": dtype})
        ce.predict(pairs, batch_size=BATCH, show_progress_bar=False)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            ce.predict(pairs, batch_size=BATCH, show_progress_bar=False)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
        speed[name] = {
            "seconds": times,
            "pairs_per_s": len(pairs) / statistics.median(times),
            "peak_mb": torch.cuda.max_memory_allocated() / 2**20,
        }
        del ce
        torch.cuda.empty_cache()
    torch.backends.cuda.matmul.allow_tf32 = False
    info["speed"] = speed
    return info, logits


def top10_same(a: np.ndarray, b: np.ndarray, owner: np.ndarray) -> float:
    same = []
    for q in np.unique(owner):
        rows = np.where(owner == q)[0]
        same.append(np.array_equal(np.argsort(-a[rows], kind="stable")[:10], np.argsort(-b[rows], kind="stable")[:10]))
    return float(np.mean(same))


MLX_CONFIGS = {
    "float32-tf32off": ("float32", {"MLX_ENABLE_TF32": "0"}),
    "float32-tf32on": ("tf32", {"MLX_ENABLE_TF32": "1"}),  # dtype tf32: float32 refuses the switch at 1
    "bfloat16": ("bfloat16", {}),
    "float16": ("float16", {}),
    "bfloat16-nocudnn": ("bfloat16", {"MLX_CUDA_USE_CUDNN_SDPA": "0"}),
}


def child(mode: str, model: str, dtype: str, env: dict, out: str, extra: list[str]) -> dict:
    cmd = [sys.executable, __file__, mode, "--model", model, "--dtype", dtype, "--out", out, *extra]
    run = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    if run.returncode != 0:
        return {"error": run.stderr[-3000:]}
    return json.loads(Path(out + ".json").read_text())


def main(args) -> None:
    from harness.localmodels import resolve_model

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model_dir = resolve_model("local:minilm-l6-seeded-head")
    pairs, owner = load_pairs(args.candidates, None)
    n_parity = sum(1 for o in owner if o < args.parity_queries)
    pairs_file = out / "pairs.json"
    pairs_file.write_text(json.dumps(pairs))
    report: dict = {"pairs": len(pairs), "parity_pairs": n_parity, "batch_size": BATCH, "max_length": MAX_LENGTH}
    info, ref = torch_side(model_dir, pairs, n_parity, args.repeats)
    report["torch"] = info
    own = np.asarray(owner[:n_parity])
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    report["torch_parity"] = {
        k: {
            "max_abs_logit": float(np.max(np.abs(v - ref["float32"]))),
            "top10_same": top10_same(v, ref["float32"], own),
        }
        for k, v in ref.items()
        if k != "float32"
    }
    report["mlx"] = {}
    chosen = os.environ.get("GPU_PROBE_CONFIGS")  # comma-separated MLX_CONFIGS names (default: all)
    for name, (dtype, env) in MLX_CONFIGS.items():
        if chosen and name not in chosen.split(","):
            continue
        res = child(
            "mlx-scores",
            model_dir,
            dtype,
            env,
            str(out / f"mlx-{name}"),
            ["--pairs", str(pairs_file), "--parity-pairs", str(n_parity), "--repeats", str(args.repeats)],
        )
        if "error" not in res:
            got = np.load(out / f"mlx-{name}.npy")
            res["parity_vs_transformers_fp32"] = {
                "max_abs_logit": float(np.max(np.abs(got - ref["float32"]))),
                "max_abs_sigmoid": float(np.max(np.abs(sig(got) - sig(ref["float32"])))),
                "top10_same": top10_same(got, ref["float32"], own),
            }
            same = ref.get(dtype)
            if dtype != "float32" and same is not None:
                res["vs_transformers_same_dtype_max_abs_logit"] = float(np.max(np.abs(got - same)))
        report["mlx"][name] = res
        print(name, json.dumps({k: v for k, v in res.items() if k != "seconds"})[:600], flush=True)
    report["profile"] = {}
    for name in ("float32-tf32on", "float32-tf32off", "bfloat16", "float16", "bfloat16-nocudnn")[: args.profiles]:
        dtype, env = MLX_CONFIGS[name]
        report["profile"][name] = child("mlx-profile", model_dir, dtype, env, str(out / f"profile-{name}"), [])
    (out / "probe.json").write_text(json.dumps(report, indent=1))
    print_summary(report)


def print_summary(r: dict) -> None:
    print("\n== precision ==")
    print(
        "torch allow_tf32 default:",
        r["torch"]["allow_tf32_default"],
        {k: v for k, v in r["torch"].items() if k.startswith("matmul")},
    )
    for name, res in r["mlx"].items():
        if "error" in res:
            print(name, "ERROR", res["error"][-800:])
            continue
        p = res.get("parity_vs_transformers_fp32", {})
        print(
            f"{name:18s} matmul_err={res['matmul_1024_rel_err']:.2e} tflops={res['tflops_8192']} "
            f"pairs/s={res['pairs_per_s']:.0f} peak={res['peak_mb']:.0f}MB parity={p}"
        )
    print("torch parity", r["torch_parity"])
    for name, s in r["torch"]["speed"].items():
        print(f"torch {name:14s} pairs/s={s['pairs_per_s']:.0f} peak={s['peak_mb']:.0f}MB")
    print("\n== profile (ms, B=256) ==")
    for name, prof in r["profile"].items():
        if "error" in prof:
            print(name, "ERROR", prof["error"][-800:])
            continue
        for L in ("L64", "L128", "L256"):
            print(name, L, {k: round(v, 3) for k, v in prof[L].items()})
        ns = prof["new_shape_ms"]
        print(name, "new shape first/repeat ms (sum):", round(sum(ns["first"]), 1), round(sum(ns["repeat"]), 1))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="main", choices=["main", "mlx-scores", "mlx-profile"])
    parser.add_argument("--candidates")
    parser.add_argument("--out", required=True)
    parser.add_argument("--model")
    parser.add_argument("--dtype")
    parser.add_argument("--pairs")
    parser.add_argument("--parity-pairs", type=int, default=0)
    parser.add_argument("--parity-queries", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--profiles", type=int, default=5, help="how many of the stage profiles to run (0: none)")
    a = parser.parse_args()
    {"main": main, "mlx-scores": mlx_scores, "mlx-profile": mlx_profile}[a.mode](a)
