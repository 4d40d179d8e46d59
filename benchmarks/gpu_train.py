"""Training on one accelerator, MLX trainers vs the PyTorch baselines (issue 12 item 6), same data and settings.

    python benchmarks/gpu_train.py [--jobs minilm-full,minilm-lora,qwen3-0.6b-lora] [--backends mlx,torch]
        [--steps N] [--warmup W] [--json OUT] [--data DIR] [--ptx-cache DIR]

Jobs (each trainer in its own process, one after the other; torch on ``cuda`` when it sees a GPU; ``--backends``
names the trainers and their order: ``torch``, ``mlx`` (the trainer's default step: on a GPU the flat AdamW,
nothing compiled), and MLX variants for A/B runs, see :func:`backend_spec`):

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
sets. Reported per trainer:

- steady figures, the first ``--warmup`` updates excluded (both stacks build kernels in their first steps: MLX's
  CUDA backend compiles its kernels at run time): a host clock stamped at the start and at the end of every
  optimizer update, before its bookkeeping, on both stacks (``train_clock.StepClock``: the MLX trainer's
  end-of-run checkpoint is outside every window, as torch's final save is; torch's device synchronized at the
  window's two ends only), the window's mean seconds per update, the median / min / max of its single updates,
  tokens/s over the window (non-padding tokens per update as the MLX trainer counts them; both stacks are fed the
  same micro-batches), the first update's and the warm-up's seconds;
- the whole run: optimizer steps, train seconds (each trainer's own clock, warm-up included), the child process's
  wall seconds (imports, model load and setup included), tokens/s over the whole run, peak memory
  (``mx.get_peak_memory()`` / ``torch.cuda.max_memory_allocated()``), and what each stack ran with (parameter
  dtype, autocast, optimizer kind, TF32 switches, MLX's CUDA-graph and compile settings).

MLX's CUDA backend builds its kernels with NVRTC the first time it needs them and keeps them on disk
(``MLX_PTX_CACHE_DIR``; MLX's default ``$TMPDIR/mlx/<version>/ptx``), so a process's first update is slower when
the cache is cold (a fresh machine) than when an earlier process filled it. Every MLX child here uses
``--ptx-cache`` (default: ``MLX_PTX_CACHE_DIR`` if set, else ``<temp>/gpu-train-ptx-cache``, kept across children
and runs as MLX's default is), or, for a backend ending in ``-coldptx``, a new empty folder removed afterwards; each
row records the folder and how many kernel modules it held before and after (``ptx_cache``).

``GPU_TRAIN_TINY=1`` swaps in tiny test models (tests/builders) to check the script on a CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from train_clock import StepClock, table, with_steady

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


def train_once(
    backend: str, kind: str, path: str, data: list[dict], settings: dict, dtype: str, clock: StepClock | None = None
) -> tuple:
    """One training run in this process: the MLX trainer (``MLXCrossEncoderTrainer`` / ``Qwen3RerankerTrainer``) or
    its PyTorch baseline (``harness.train.torch_encoder`` / ``torch_llm``) on ``data`` with ``settings``
    (``TrainingSettings`` names). Returns (the trainer's result dict, what its peak memory measures, device).
    ``clock``: stamps the start and every update's end (:class:`StepClock`). Also used by
    ``benchmarks/train_llm_lora_speed.py``."""
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
        if clock is not None:
            from mlx.utils import tree_flatten

            trainable = tree_flatten(trainer.model.trainable_parameters())
            clock.info = {
                "optimizer": "mlx AdamW (MultiOptimizer: decay / no decay)",
                "param_dtype": str(trainable[0][1].dtype) if trainable else None,
                "MLX_ENABLE_TF32": os.environ.get("MLX_ENABLE_TF32"),  # None: mlx_cross_encoder sets 0 (float32)
                "MLX_CROSS_ENCODER_TRAIN_COMPILE": os.environ.get("MLX_CROSS_ENCODER_TRAIN_COMPILE", "auto"),
                **{
                    k: os.environ.get(k)
                    for k in ("MLX_MAX_OPS_PER_BUFFER", "MLX_CUDA_GRAPH_CACHE_SIZE", "MLX_USE_CUDA_GRAPHS")
                },
                "MLX_CROSS_ENCODER_TRAIN_CACHE_GB": os.environ.get("MLX_CROSS_ENCODER_TRAIN_CACHE_GB"),
                "MLX_CROSS_ENCODER_TRAIN_FLAT_ADAM": os.environ.get("MLX_CROSS_ENCODER_TRAIN_FLAT_ADAM"),
            }
            clock.hook_mlx(trainer)
        return trainer.train(data), "mx.get_peak_memory()", str(mx.default_device())
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if clock is not None:
        if device == "cuda":
            clock.sync = torch.cuda.synchronize
        clock.hook_torch(hf_trainer=kind == "cross_encoder")
    if kind == "cross_encoder":
        from harness.train.torch_encoder import train_cross_encoder_torch

        res = train_cross_encoder_torch(path, data, None, settings, device=device)
    else:
        from harness.train.torch_llm import train_llm_reranker_torch

        res = train_llm_reranker_torch(path, data, None, settings, device=device, dtype=dtype)
    return res, res.get("peak_memory_measure"), device


#: ``--backends`` MLX step names -> the environment that selects them (training/compiled_step.py)
STEP_MODES = {
    "plain": {"MLX_CROSS_ENCODER_TRAIN_COMPILE": "0", "MLX_CROSS_ENCODER_TRAIN_FLAT_ADAM": "0"},
    "eager": {"MLX_CROSS_ENCODER_TRAIN_COMPILE": "0", "MLX_CROSS_ENCODER_TRAIN_FLAT_ADAM": "1"},
    "update": {"MLX_CROSS_ENCODER_TRAIN_COMPILE": "update", "MLX_CROSS_ENCODER_TRAIN_FLAT_ADAM": "1"},
    "compiled": {"MLX_CROSS_ENCODER_TRAIN_COMPILE": "1", "MLX_CROSS_ENCODER_TRAIN_FLAT_ADAM": "1"},
}


def backend_spec(name: str) -> tuple[str, dict[str, str]]:
    """What a ``--backends`` name runs: (stack, extra environment of its process).

    ``torch``; ``mlx`` (the trainer's default step on a GPU: flat AdamW, nothing compiled;
    training/compiled_step.py), ``mlx-plain`` (the plain step: ``MLX_CROSS_ENCODER_TRAIN_COMPILE=0`` and
    ``MLX_CROSS_ENCODER_TRAIN_FLAT_ADAM=0``), ``mlx-eager`` (flat AdamW, nothing compiled), ``mlx-update`` (the
    update compiled), ``mlx-compiled`` (the whole step compiled); an MLX name may end in ``-opsN``:
    ``MLX_MAX_OPS_PER_BUFFER=N`` (operations per CUDA graph; mlx_cross_encoder's default on CUDA is 2), ``-gcN``
    (``MLX_CUDA_GRAPH_CACHE_SIZE=N``: instantiated graphs MLX keeps, default 100), ``-nographs``
    (``MLX_USE_CUDA_GRAPHS=0``: kernels launched one by one), ``-noflat`` (the compiled step's AdamW tensor by tensor:
    ``MLX_CROSS_ENCODER_TRAIN_FLAT_ADAM=0``), ``-nocache`` (``MLX_CROSS_ENCODER_TRAIN_CACHE_GB=none``: MLX's own
    buffer-cache limit during training) and/or ``-coldptx`` (an empty kernel cache: see the module docstring; the
    environment's ``MLX_PTX_CACHE_DIR`` is set by :func:`run_child`)."""
    if name == "torch":
        return "torch", {}
    parts = name.split("-")
    env: dict[str, str] = {}
    if parts[0] != "mlx":
        raise ValueError(f"unknown backend {name!r}")
    for part in parts[1:]:
        if part in STEP_MODES:
            env.update(STEP_MODES[part])
        elif part.startswith("ops") and part[3:].isdigit():
            env["MLX_MAX_OPS_PER_BUFFER"] = part[3:]
        elif part == "nocache":
            env["MLX_CROSS_ENCODER_TRAIN_CACHE_GB"] = "none"
        elif part.startswith("gc") and part[2:].isdigit():
            env["MLX_CUDA_GRAPH_CACHE_SIZE"] = part[2:]
        elif part == "nographs":
            env["MLX_USE_CUDA_GRAPHS"] = "0"
        elif part == "noflat":
            env["MLX_CROSS_ENCODER_TRAIN_FLAT_ADAM"] = "0"
        elif part != "coldptx":
            raise ValueError(
                f"unknown backend {name!r} (mlx[-plain|-eager|-update|-compiled][-noflat][-opsN][-gcN][-nographs]"
                "[-nocache][-coldptx] or torch)"
            )
    return "mlx", env


def child(backend: str, job: str, steps: int, warmup: int, data_dir: Path) -> dict:
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
    stack = backend_spec(backend)[0]
    clock = StepClock(sync_at=(0, warmup, steps))  # the start, the warm-up's end, the last update
    res, measure, device = train_once(stack, kind, path, data, settings, dtype, clock)
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
        "compiled_step": res.get("compiled_step"),
        "stack": clock.info,
        "stamps": clock.stamps,
        "step_tokens": res.get("step_tokens"),
    }


def kernel_modules(folder: Path) -> int:
    """How many kernel modules MLX's CUDA backend has cached in ``folder`` (one ``<name>.ptx`` each)."""
    return sum(1 for _ in folder.rglob("*.ptx")) if folder.is_dir() else 0


def run_child(backend: str, job: str, steps: int, warmup: int, data_dir: Path, timeout: float, ptx_cache: Path) -> dict:
    """One trainer in its own process; MLX's kernel cache is ``ptx_cache``, or a new empty folder for a
    ``-coldptx`` backend."""
    cmd = [sys.executable, __file__, "--child", backend, "--jobs", job, "--steps", str(steps), "--data", str(data_dir)]
    cmd += ["--warmup", str(warmup)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.update(backend_spec(backend)[1])
    cold = backend.endswith("-coldptx") or "-coldptx-" in backend
    cache = Path(tempfile.mkdtemp(prefix="gpu-train-coldptx-")) if cold else ptx_cache
    env["MLX_PTX_CACHE_DIR"] = str(cache)
    before = kernel_modules(cache)
    start = time.perf_counter()
    try:
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"job": job, "backend": backend, "error": f"timed out after {timeout:.0f} s"}
    finally:
        ptx = {"dir": str(cache), "cold": cold, "modules_before": before, "modules_after": kernel_modules(cache)}
        if cold:
            shutil.rmtree(cache, ignore_errors=True)
    wall = time.perf_counter() - start
    if res.returncode:
        return {"job": job, "backend": backend, "error": res.stderr.strip()[-1500:]}
    row = json.loads(res.stdout.strip().splitlines()[-1])
    row["process_wall_s"] = wall
    row["ptx_cache"] = ptx if backend_spec(backend)[0] == "mlx" else None  # torch builds no kernels at run time
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", default=",".join(JOBS))
    ap.add_argument(
        "--backends",
        default="mlx,torch",
        help="trainers per job, in this order (see backend_spec): torch, mlx, mlx-plain, mlx-eager, mlx-update, "
        "mlx-compiled, mlx-...-opsN",
    )
    ap.add_argument(
        "--steps", type=int, default=0, help="optimizer steps per job incl. warm-up (0: 150 encoder, 40 LLM)"
    )
    ap.add_argument("--warmup", type=int, default=5, help="first updates left out of the steady figures")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/trec-dl")
    ap.add_argument("--timeout", type=float, default=240, help="seconds per trainer process")
    ap.add_argument("--json", help="write the rows (with every update's clock stamps) here, after each trainer")
    ap.add_argument(
        "--ptx-cache",
        type=Path,
        default=Path(os.environ.get("MLX_PTX_CACHE_DIR") or Path(tempfile.gettempdir()) / "gpu-train-ptx-cache"),
        help="MLX's kernel cache folder for the MLX trainers (see the module docstring)",
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        steps = a.steps or DEFAULT_STEPS[JOBS[a.jobs][0]]
        # the tiny models and the trainers' output folders (TMPDIR itself is left alone)
        tempfile.tempdir = scratch = tempfile.mkdtemp(prefix="gpu-train-")
        try:
            print(json.dumps(child(a.child, a.jobs, steps, a.warmup, a.data)))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return
    for b in a.backends.split(","):
        try:
            backend_spec(b)
        except ValueError as exc:
            ap.error(str(exc))
    rows = []
    for job in a.jobs.split(","):
        steps = a.steps or DEFAULT_STEPS[JOBS[job][0]]
        for backend in a.backends.split(","):
            rows.append(run_child(backend, job, steps, a.warmup, a.data, a.timeout, a.ptx_cache))
            with_steady(rows, a.warmup)
            print(json.dumps({k: v for k, v in rows[-1].items() if k not in ("stamps", "step_tokens")})[:1500])
            if a.json:
                Path(a.json).write_text(json.dumps(rows, indent=1))
            print(table(rows, a.warmup), flush=True)  # after each trainer: a cut-off run still shows its rows


if __name__ == "__main__":
    main()
