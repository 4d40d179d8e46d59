"""LoRA training throughput of an LLM yes/no reranker: MLX (Qwen3RerankerTrainer) next to transformers + peft
(harness.train.torch_llm.train_llm_reranker_torch) on the same batches, same settings.

    .venv/bin/python benchmarks/train_llm_lora_speed.py [--model local:qwen3-reranker-0.6b-shape-4l]
        [--steps 6] [--batch-size 4] [--max-length 256] [--mlx-streams 1,2] [--json out.json]

``--mlx-streams``: the MLX trainer once per CPU stream count (``MLX_CROSS_ENCODER_CPU_STREAMS``: each micro-batch
is split over that many streams; default one per core).

Model: by default a random Qwen3 at Qwen3-Reranker-0.6B's per-layer shape (hidden 1024, 16/8 heads, head_dim 128,
intermediate 3072, vocabulary 151,669), 4 layers. Data: the first judged (query, passage) pairs of DL19's BM25
list (label = grade >= 2) from ../shared/data/trec-dl. LoRA r8 on the attention and MLP projections, float32,
BCE on logit_yes - logit_no. The data and the trainers' calls are ``benchmarks/gpu_train.py``'s (``judged_pairs``,
``train_once``; torch on CUDA when there is one). Each trainer runs in its own process; tokens/s is over training
steps only (the trainers' own counters: prompt tokens of the pairs fed), peak memory as each framework reports it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(backend: str, model: str, steps: int, batch: int, max_length: int) -> dict:
    from gpu_train import judged_pairs, train_once  # this folder's GPU training benchmark: one copy of both

    from harness.localmodels import resolve_model

    path = resolve_model(model)
    data = judged_pairs(ROOT.parent / "shared/data/trec-dl", steps * batch)
    out = tempfile.mkdtemp(prefix=f"lora-{backend}-")
    knobs = dict(
        batch_size=batch,
        max_length=max_length,
        lora_rank=8,
        learning_rate=1e-4,
        num_epochs=1,
        warmup_ratio=0.0,
        seed=0,
        output_dir=out,
    )
    res, measure, _ = train_once(backend, "llm", str(path), data, knobs, "float32")
    return {
        "backend": backend,
        "steps": res.get("steps"),
        "train_time_s": res.get("train_time_s"),
        "tokens_per_s": res.get("tokens_per_s"),
        "peak_memory_mb": (res.get("peak_memory_bytes") or 0) / 2**20,
        "peak_memory_measure": measure,
        "pairs": len(data),
        "mlx_streams": os.environ.get("MLX_CROSS_ENCODER_CPU_STREAMS") if backend == "mlx" else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="local:qwen3-reranker-0.6b-shape-4l")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--mlx-streams", default="", help="comma-separated CPU stream counts for the MLX trainer")
    ap.add_argument("--json")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a.model, a.steps, a.batch_size, a.max_length)))
        return
    rows = []
    runs = [("mlx", n) for n in a.mlx_streams.split(",") if n] or [("mlx", None)]
    for backend, streams in [*runs, ("torch", None)]:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            backend,
            "--model",
            a.model,
            "--steps",
            str(a.steps),
            "--batch-size",
            str(a.batch_size),
            "--max-length",
            str(a.max_length),
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        if streams:
            env["MLX_CROSS_ENCODER_CPU_STREAMS"] = streams
        res = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if res.returncode:
            rows.append({"backend": backend, "error": res.stderr.strip().splitlines()[-1:]})
            continue
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
    print(f"model {a.model}, {a.steps} steps x batch {a.batch_size}, max_length {a.max_length}, LoRA r8, float32")
    print("| trainer | steps | train s | tokens/s | peak memory MB (what) |")
    print("|---|---:|---:|---:|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['backend']} | error: {r['error']} | | | |")
            continue
        name = (
            "transformers + peft"
            if r["backend"] != "mlx"
            else ("MLX Qwen3RerankerTrainer" + (f", {r['mlx_streams']} CPU streams" if r.get("mlx_streams") else ""))
        )
        print(
            f"| {name} | {r['steps']} | {r['train_time_s']:.1f} | {r['tokens_per_s']:.0f} | "
            f"{r['peak_memory_mb']:.0f} ({r['peak_memory_measure']}) |"
        )
    print(f"load average at end: {os.getloadavg()} on {os.cpu_count()} cores")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
