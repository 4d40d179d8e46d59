"""Issue 12 item 2: does ``dtype: tf32`` compute TF32 and ``float32`` full float32, on both backends, through the
harness's own loading path? One fresh process per (backend, dtype), since MLX reads ``MLX_ENABLE_TF32`` once.

Each child loads the reranker with ``harness.backends.load_backend`` (the MLX backend sets the switch before
``mlx.core`` loads; torch's switches are set by the backend's ``tf32_matmuls`` around each call), then measures:

* ``matmul_rel_err``: a 1024x1024 float32 product on the backend's device against float64 numpy (Frobenius
  relative error): ~1e-6 in float32, ~3e-4 in TF32 (an H200 measured 3.0e-4 for MLX's default TF32 in session 2);
* what the run records: ``system.float32_matmul`` (+ ``mlx_enable_tf32`` / ``torch_allow_tf32``);
* scores of ``--pairs`` DL19 pairs (raw logits), so the parent reports max |tf32 - float32| per backend and
  max |mlx - torch| per dtype.

  python benchmarks/tf32_check.py --out tf32-check.json            # defaults: MiniLM seeded head, 200 pairs
  python benchmarks/tf32_check.py --model none                     # the matmul check only

On a CPU (no TF32 units) both dtypes compute float32: errors ~1e-6, records ``float32``. Each child is cut at
``--timeout`` seconds; the parent always writes what it has.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ROWS = [("mlx", "float32"), ("mlx", "tf32"), ("torch", "float32"), ("torch", "tf32")]
CANDIDATES = ROOT.parent / "shared" / "data" / "trec-dl" / "bm25_top100_dl19.json"


def relative_error(out: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(out.astype(np.float64) - ref) / np.linalg.norm(ref))


def operands(n: int = 1024) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    return a, b, a.astype(np.float64) @ b.astype(np.float64)


def mlx_matmul_error() -> float:
    import mlx.core as mx

    a, b, ref = operands()
    out = mx.matmul(mx.array(a), mx.array(b))
    mx.eval(out)
    return relative_error(np.array(out), ref)


def torch_matmul_error(backend) -> float:
    import torch

    from harness.backends.torch_backend import TF32, tf32_matmuls

    a, b, ref = operands()
    with tf32_matmuls(torch, backend.dtype == TF32):  # what TorchBackend.predict runs each call under
        out = torch.from_numpy(a).to(backend.device) @ torch.from_numpy(b).to(backend.device)
        return relative_error(out.float().cpu().numpy(), ref)


def load_pairs(path: Path, n: int) -> list[tuple[str, str]]:
    """The first ``n`` (query, passage) pairs of a candidate-list file, read and checked by the harness's reader."""
    from harness.sources.readers import read_candidates

    queries, ranked, texts = read_candidates(path)
    return [(queries[q], texts[d]) for q in ranked for d, _ in ranked[q]][:n]


def child(backend_name: str, dtype: str, args) -> dict:
    import mlx_cross_encoder  # noqa: F401  (the import hook; loads no MLX)
    from harness import backends

    spec = SimpleNamespace(
        name=f"{backend_name}-{dtype}", backend=backend_name, model=args.model, dtype=dtype, instruction=None,
        device="auto", batch_size=args.batch_size, options={"activation_fn": "identity"},
    )  # fmt: skip
    out: dict = {"backend": backend_name, "dtype": dtype}
    if args.model == "none":  # matmul only: the MLX backend's switch, or torch's context, without a model
        if backend_name == "mlx":
            from harness.backends.mlx_backend import arrange_tf32_switch

            arrange_tf32_switch(spec, dtype)
            from mlx_cross_encoder import precision

            out.update(matmul_rel_err=mlx_matmul_error(), float32_matmul=precision.float32_matmul())
        else:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
            out["matmul_rel_err"] = torch_matmul_error(SimpleNamespace(dtype=dtype, device=device))
        return out
    model_dir = args.model_dir  # resolved by the parent: resolving imports mlx_cross_encoder.hub, hence MLX
    start = time.perf_counter()
    backend = backends.load_backend(spec, args.max_length, model_dir)
    out["load_s"] = time.perf_counter() - start
    out["matmul_rel_err"] = mlx_matmul_error() if backend_name == "mlx" else torch_matmul_error(backend)
    pairs = load_pairs(Path(args.candidates), args.pairs)
    out["scores"] = [float(x) for x in backend.predict(pairs, batch_size=args.batch_size)]
    system = backend.describe()
    keys = ("device", "dtype", "float32_matmul", "mlx_enable_tf32", "torch_allow_tf32", "device_name")
    out["system"] = {k: system.get(k) for k in keys if k in system}
    return out


def run_child(backend_name: str, dtype: str, args) -> dict:
    cmd = [sys.executable, __file__, "--child", backend_name, dtype, "--model-dir", str(args.model_dir), *sys.argv[1:]]
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"backend": backend_name, "dtype": dtype, "error": f"cut at {args.timeout} s"}
    line = next((x for x in run.stdout.splitlines() if x.startswith("RESULT ")), None)
    if run.returncode != 0 or line is None:
        return {"backend": backend_name, "dtype": dtype, "error": run.stderr.strip()[-1500:]}
    return json.loads(line[len("RESULT ") :])


def summary(rows: list[dict]) -> dict:
    got = {(r["backend"], r["dtype"]): r for r in rows if "scores" in r}
    diffs = {}
    for b in ("mlx", "torch"):
        if (b, "float32") in got and (b, "tf32") in got:
            d = np.abs(np.subtract(got[b, "tf32"]["scores"], got[b, "float32"]["scores"]))
            diffs[f"{b}: tf32 vs float32 max_abs"] = float(d.max())
    for dt in ("float32", "tf32"):
        if ("mlx", dt) in got and ("torch", dt) in got:
            d = np.abs(np.subtract(got["mlx", dt]["scores"], got["torch", dt]["scores"]))
            diffs[f"{dt}: mlx vs torch max_abs"] = float(d.max())
    return diffs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="local:minilm-l6-seeded-head", help="model ref, or 'none': matmul only")
    parser.add_argument("--candidates", default=str(CANDIDATES))
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--timeout", type=float, default=60, help="seconds per child process")
    parser.add_argument("--out", help="JSON file for the rows and the summary")
    parser.add_argument("--child", nargs=2, metavar=("BACKEND", "DTYPE"), help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(*args.child, args)))
        return
    if args.model != "none":
        from harness import backends

        args.model_dir = backends.resolve_model_dir(args.model)
    rows = []
    for backend_name, dtype in ROWS:
        rows.append(run_child(backend_name, dtype, args))
        r = rows[-1]
        shown = {k: r[k] for k in ("matmul_rel_err", "float32_matmul", "system", "error") if k in r}
        print(f"{backend_name:5s} {dtype:7s} {json.dumps(shown)[:600]}", flush=True)
        if args.out:
            Path(args.out).write_text(json.dumps({"rows": rows, "summary": summary(rows)}, indent=1))
    print(json.dumps(summary(rows), indent=1))


if __name__ == "__main__":
    main()
