"""The optimized-BLAS switch measured: matmul GFLOP/s and MiniLM-L6 predict pairs/s, with and without it,
next to sentence-transformers on the same pairs.

    .venv/bin/python benchmarks/blas_minilm.py [--pairs 256] [--data ../shared/data/trec-dl/bm25_top100_dl19.json]

Each configuration runs in its own process (the BLAS is chosen at import time). Prints a Markdown table and
writes JSON to --output when given. Warm-up excluded: one untimed pass first.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_pairs(path: Path, n: int) -> list[tuple[str, str]]:
    pairs = []
    for entry in json.loads(path.read_text()):
        pairs += [(entry["query"], hit["content"]) for hit in entry["hits"]]
        if len(pairs) >= n:
            break
    return pairs[:n]


def child(kind: str, data: str, n: int, batch_size: int) -> dict:
    pairs = load_pairs(Path(data), n)
    from harness.localmodels import resolve_model

    model_dir = resolve_model("local:minilm-l6-seeded-head")
    out: dict = {"pairs": len(pairs)}
    if kind == "torch":
        import torch
        from sentence_transformers import CrossEncoder

        model = CrossEncoder(model_dir, device="cpu", max_length=512)
        out["threads"] = torch.get_num_threads()
        predict = lambda: model.predict(pairs, batch_size=batch_size)  # noqa: E731
    else:
        import mlx_cross_encoder

        # isort: split
        import mlx.core as mx

        from mlx_cross_encoder import _blas

        out["blas"] = _blas.loaded_library or "reference (bundled)"
        a = mx.random.normal((1024, 1024))
        mx.eval(a @ a)
        t = time.perf_counter()
        for _ in range(10):
            mx.eval(a @ a)
        out["matmul_gflops"] = 2 * 1024**3 * 10 / (time.perf_counter() - t) / 1e9
        model = mlx_cross_encoder.MLXCrossEncoder(model_dir, max_length=512)
        predict = lambda: model.predict(pairs, batch_size=batch_size)  # noqa: E731
    predict()  # warm-up
    t = time.perf_counter()
    scores = predict()
    out["seconds"] = time.perf_counter() - t
    out["pairs_per_s"] = len(pairs) / out["seconds"]
    out["scores_head"] = [float(s) for s in scores[:5]]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/trec-dl/bm25_top100_dl19.json"))
    ap.add_argument("--pairs", type=int, default=256)
    ap.add_argument("--reference-pairs", type=int, default=32, help="pairs for the slow reference-BLAS run")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--output")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.data, args.pairs, args.batch_size)))
        return
    configs = [
        ("mlx + optimized BLAS (default)", "mlx", "auto", args.pairs),
        ("mlx, MLX_CROSS_ENCODER_BLAS=off", "mlx", "off", args.reference_pairs),
        ("sentence-transformers (torch CPU)", "torch", "auto", args.pairs),
    ]
    rows = []
    for label, kind, blas, n in configs:
        env = {**os.environ, "MLX_CROSS_ENCODER_BLAS": blas, "PYTHONPATH": str(ROOT)}
        cmd = [
            sys.executable,
            __file__,
            "--child",
            kind,
            "--data",
            args.data,
            "--pairs",
            str(n),
            "--batch-size",
            str(args.batch_size),
        ]
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        rows.append({"config": label, **json.loads(res.stdout.strip().splitlines()[-1])})
    result = {"load_average_at_end": os.getloadavg(), "cpu_count": os.cpu_count(), "rows": rows}
    print("| config | BLAS | matmul 1024² GFLOP/s | pairs | MiniLM-L6 pairs/s |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        gf = f"{r['matmul_gflops']:.1f}" if "matmul_gflops" in r else "–"
        blas = r.get("blas", f"torch ({r.get('threads')} threads)")
        print(f"| {r['config']} | {blas} | {gf} | {r['pairs']} | {r['pairs_per_s']:.1f} |")
    print(f"load average at end: {result['load_average_at_end']}")
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
