"""Training on one accelerator, MLX trainers vs the PyTorch baselines (issue 12 item 6), same data and settings.

    python benchmarks/gpu_train.py [--jobs minilm-full,minilm-lora,qwen3-0.6b-lora] [--steps N] [--json OUT]
        [--data DIR]

Jobs (each trainer in its own process, one after the other; torch on ``cuda`` when it sees a GPU):

- ``minilm-full``: the real all-MiniLM-L6-v2 encoder + seeded head (``local:minilm-l6-seeded-head``), full
  fine-tuning, float32 (true float32 on both: MLX_ENABLE_TF32=0 is mlx_cross_encoder's default, torch's
  allow_tf32 is False), batch 32, max_length 256. MLX ``MLXCrossEncoderTrainer`` vs sentence-transformers'
  ``CrossEncoderTrainer`` (``harness.train.torch_encoder.train_cross_encoder_torch``, which feeds the MLX
  trainer's micro-batch order and schedule).
- ``minilm-lora``: the same with LoRA r8 (alpha 16) on query/key/value/dense, the head trained in full.
- ``qwen3-0.6b-lora``: random Qwen3-Reranker-0.6B shape (``local:qwen3-reranker-0.6b-shape``, 28 layers), bfloat16
  weights, LoRA r16 (alpha 32) on the attention and MLP projections, batch 8, max_length 256. MLX
  ``Qwen3RerankerTrainer`` vs transformers + peft (``harness.train.torch_llm.train_llm_reranker_torch``).

Data: DL19's judged BM25 pairs (label = grade >= 2; positives and negatives interleaved, repeated to fill the
steps) from ``--data`` (default ../shared/data/trec-dl). DL19 is a dev set here, not one of the held-out test
sets. Reported per trainer: optimizer steps, train seconds (steps only: each trainer's own clock), the child
process's wall seconds (imports, model load and setup included), tokens/s (each trainer's count of non-padding
tokens fed / train seconds), peak memory (``mx.get_peak_memory()`` / ``torch.cuda.max_memory_allocated()``).
``GPU_TRAIN_TINY=1`` swaps in tiny test models (tests/builders) to check the script on a CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

JOBS = {
    # name: (kind, model, settings)
    "minilm-full": (
        "cross_encoder",
        "local:minilm-l6-seeded-head",
        dict(fine_tune_type="full", batch_size=32, max_length=256, learning_rate=2e-5, dtype="float32"),
    ),
    "minilm-lora": (
        "cross_encoder",
        "local:minilm-l6-seeded-head",
        dict(
            fine_tune_type="lora",
            lora_rank=8,
            lora_alpha=16,
            batch_size=32,
            max_length=256,
            learning_rate=1e-4,
            dtype="float32",
        ),
    ),
    "qwen3-0.6b-lora": (
        "llm",
        "local:qwen3-reranker-0.6b-shape",
        dict(
            fine_tune_type="lora",
            lora_rank=16,
            lora_alpha=32,
            batch_size=8,
            max_length=256,
            learning_rate=1e-4,
            dtype="bfloat16",
        ),
    ),
}
DEFAULT_STEPS = {"cross_encoder": 150, "llm": 40}


def judged_pairs(data_dir: Path, n: int) -> list[dict]:
    """``n`` DL19 (query, passage, label) records: judged BM25 hits, positives and negatives interleaved."""
    data = json.loads((data_dir / "bm25_top100_dl19.json").read_text())
    qrels: dict[str, dict[str, int]] = {}
    for line in (data_dir / "qrels_dl19.txt").read_text().splitlines():
        if line.strip():
            qid, _, docid, grade = line.split()
            qrels.setdefault(qid, {})[docid] = int(grade)
    pos, neg = [], []
    for entry in data:
        for hit in entry["hits"]:
            grade = qrels.get(str(hit["qid"]), {}).get(str(hit["docid"]))
            if grade is not None:
                (pos if grade >= 2 else neg).append(
                    {"query": entry["query"], "document": hit["content"], "label": int(grade >= 2)}
                )
    mixed = [x for pair in zip(pos, neg) for x in pair]
    return (mixed * (n // len(mixed) + 1))[:n]


def tiny_model(kind: str) -> str:
    sys.path.insert(0, str(ROOT / "tests"))
    import builders

    out = Path(tempfile.mkdtemp(prefix="gpu-train-tiny-"))
    return str(builders.bert_cross_encoder(out / "bert") if kind == "cross_encoder" else builders.qwen3_causal_lm(out))


def train_once(backend: str, kind: str, path: str, data: list[dict], settings: dict, dtype: str) -> tuple:
    """One training run in this process: the MLX trainer (``MLXCrossEncoderTrainer`` / ``Qwen3RerankerTrainer``) or
    its PyTorch baseline (``harness.train.torch_encoder`` / ``torch_llm``) on ``data`` with ``settings``
    (``TrainingSettings`` names). Returns (the trainer's result dict, what its peak memory measures, device).
    Also used by ``benchmarks/train_llm_lora_speed.py``."""
    if backend == "mlx":
        import mlx_cross_encoder  # noqa: F401  # isort: skip  (BLAS hook before mlx.core)
        import mlx.core as mx

        if kind == "cross_encoder":
            from mlx_cross_encoder import MLXCrossEncoderConfig, MLXCrossEncoderTrainer

            cfg = MLXCrossEncoderConfig(
                pretrained_path=path, dtype=dtype, show_progress_bar=False, save_steps=10**9, **settings
            )
            trainer = MLXCrossEncoderTrainer(config=cfg)
        else:
            from mlx_cross_encoder import Qwen3RerankerConfig, Qwen3RerankerTrainer

            cfg = Qwen3RerankerConfig(
                model_name=path, dtype=dtype, show_progress_bar=False, save_steps=10**9, **settings
            )
            trainer = Qwen3RerankerTrainer(cfg)
        trainer.prepare_model()
        return trainer.train(data), "mx.get_peak_memory()", str(mx.default_device())
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cross_encoder":
        from harness.train.torch_encoder import train_cross_encoder_torch

        res = train_cross_encoder_torch(path, data, None, settings, device=device)
    else:
        from harness.train.torch_llm import train_llm_reranker_torch

        res = train_llm_reranker_torch(path, data, None, settings, device=device, dtype=dtype)
    return res, res.get("peak_memory_measure"), device


def child(backend: str, job: str, steps: int, data_dir: Path) -> dict:
    kind, model, knobs = JOBS[job]
    knobs = dict(knobs)
    dtype = knobs.pop("dtype")
    if os.environ.get("GPU_TRAIN_TINY"):
        path = tiny_model(kind)
        knobs["max_length"] = 64  # the tiny BERT has 128 positions
    else:
        from harness.localmodels import resolve_model

        path = resolve_model(model)
    data = judged_pairs(data_dir, steps * knobs["batch_size"])
    settings = dict(knobs, num_epochs=1, warmup_ratio=0.0, seed=0, output_dir=tempfile.mkdtemp(prefix=f"{job}-"))
    res, measure, device = train_once(backend, kind, path, data, settings, dtype)
    return {
        "job": job,
        "backend": backend,
        "device": device,
        "model": model,
        "dtype": dtype,
        "settings": knobs,
        "pairs": len(data),
        "steps": res.get("steps"),
        "train_time_s": res.get("train_time_s"),
        "train_tokens": res.get("train_tokens"),
        "tokens_per_s": res.get("tokens_per_s"),
        "peak_memory_mb": (res.get("peak_memory_bytes") or 0) / 2**20,
        "peak_memory_measure": measure,
    }


def run_child(backend: str, job: str, steps: int, data_dir: Path, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--child", backend, "--jobs", job, "--steps", str(steps), "--data", str(data_dir)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    try:
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"job": job, "backend": backend, "error": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - start
    if res.returncode:
        return {"job": job, "backend": backend, "error": res.stderr.strip()[-1500:]}
    row = json.loads(res.stdout.strip().splitlines()[-1])
    row["process_wall_s"] = wall
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", default=",".join(JOBS))
    ap.add_argument("--steps", type=int, default=0, help="optimizer steps per job (0: 150 encoder, 40 LLM)")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/trec-dl")
    ap.add_argument("--timeout", type=float, default=240, help="seconds per trainer process")
    ap.add_argument("--json")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a.jobs, a.steps or DEFAULT_STEPS[JOBS[a.jobs][0]], a.data)))
        return
    rows = []
    for job in a.jobs.split(","):
        steps = a.steps or DEFAULT_STEPS[JOBS[job][0]]
        for backend in ("mlx", "torch"):
            rows.append(run_child(backend, job, steps, a.data, a.timeout))
            print(json.dumps(rows[-1])[:1500], flush=True)
            if a.json:
                Path(a.json).write_text(json.dumps(rows, indent=1))
    print("| job | trainer | device | steps | train s | process wall s | tokens/s | peak MB |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['job']} | {r['backend']} | error | | | | | |")
            continue
        print(
            f"| {r['job']} | {r['backend']} | {r['device']} | {r['steps']} | {r['train_time_s']:.2f} | "
            f"{r['process_wall_s']:.1f} | {r['tokens_per_s'] or 0:,.0f} | {r['peak_memory_mb']:,.0f} |"
        )


if __name__ == "__main__":
    main()
