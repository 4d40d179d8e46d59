"""Training on one accelerator, MLX trainers vs the PyTorch baselines (issue 12 item 6), same data and settings.

    python benchmarks/gpu_train.py [--jobs minilm-full,minilm-lora,qwen3-0.6b-lora] [--backends mlx,torch]
        [--steps N] [--warmup W] [--json OUT] [--data DIR]

Jobs (each trainer in its own process, one after the other; torch on ``cuda`` when it sees a GPU; ``--backends``
names the trainers and their order: ``torch``, ``mlx`` (the trainer's default step: compiled on a GPU), and MLX
variants for A/B runs, see :func:`backend_spec`):

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
  CUDA backend compiles its kernels at run time): a host clock stamped at the start and after every update
  (:class:`StepClock`; torch's device synchronized at the window's two ends only), the window's mean seconds per
  update, the median / min / max of its single updates, tokens/s over the window (non-padding tokens per update as
  the MLX trainer counts them; both stacks are fed the same micro-batches) and the warm-up's seconds;
- the whole run: optimizer steps, train seconds (each trainer's own clock, warm-up included), the child process's
  wall seconds (imports, model load and setup included), tokens/s over the whole run, peak memory
  (``mx.get_peak_memory()`` / ``torch.cuda.max_memory_allocated()``), and what each stack ran with (parameter
  dtype, autocast, optimizer kind, TF32 switches, MLX's CUDA-graph and compile settings).

``GPU_TRAIN_TINY=1`` swaps in tiny test models (tests/builders) to check the script on a CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
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


class StepClock:
    """Host clock stamps at the start of training (``stamps[0]``) and at the end of every optimizer update
    (``stamps[k]``: update ``k``), for either stack.

    MLX: the trainer's callback, called after each update (which ends with its results read back: the device is
    idle). torch: ``torch.optim``'s global step post-hook (after each ``optimizer.step()``) and, for the
    cross-encoder's HF Trainer, ``CallbackHandler.on_train_begin`` as the start (the LLM baseline's plain loop has
    no such event: its start is not stamped, ``stamps[0]`` is None). The torch device is synchronized only at the
    stamps in ``sync_at`` (the start, the end of the warm-up, the last update), so the trainers' own overlap of host
    and device work is left as it is: windows between synchronized stamps are exact, single torch steps inside a
    window are host-clock figures."""

    def __init__(self, sync=None, sync_at: tuple[int, ...] = ()):
        self.stamps: list[float | None] = []
        self.sync, self.sync_at = sync, set(sync_at)
        self.info: dict = {}

    def stamp(self) -> None:
        if self.sync is not None and len(self.stamps) in self.sync_at:
            self.sync()
        self.stamps.append(time.perf_counter())

    def mlx_callback(self, trainer, record) -> None:
        self.stamp()

    def hook_torch(self, hf_trainer: bool) -> None:
        """Stamp every ``optimizer.step()``'s end; with ``hf_trainer``, stamp the HF Trainer's start and record its
        optimizer's kind, the parameters' dtype and whether autocast is on."""
        from torch.optim.optimizer import register_optimizer_step_post_hook

        clock = self
        register_optimizer_step_post_hook(lambda opt, args, kwargs: clock.stamp())
        if not hf_trainer:
            self.stamps.append(None)
            return
        from transformers.trainer_callback import CallbackHandler

        begin = CallbackHandler.on_train_begin

        def on_train_begin(handler, args, state, control):
            opt = getattr(handler.optimizer, "optimizer", handler.optimizer)  # accelerate's wrapper holds it
            params = [p for g in opt.param_groups for p in g["params"]]
            import torch

            clock.info = {
                "float32_matmul_precision": torch.get_float32_matmul_precision(),
                "allow_tf32": torch.backends.cuda.matmul.allow_tf32,
                "optimizer": type(opt).__name__,
                "foreach": opt.defaults.get("foreach"),
                "fused": opt.defaults.get("fused"),  # None/None: torch's default, the foreach kernels on CUDA
                "param_dtype": str(params[0].dtype) if params else None,
                "autocast": bool(args.bf16 or args.fp16),
                "attn_implementation": getattr(getattr(handler.model, "config", None), "_attn_implementation", None),
            }
            clock.stamp()
            return begin(handler, args, state, control)

        CallbackHandler.on_train_begin = on_train_begin


def steady(stamps: list, warmup: int, step_tokens: list[int] | None) -> dict:
    """Per-update figures from ``stamps`` (:class:`StepClock`), the first ``warmup`` updates excluded: the window's
    mean seconds per update (end of update ``warmup`` to the end of the last), the median, min and max of its
    single updates, tokens/s over the window (``step_tokens``: non-padding tokens per update) and the warm-up's
    seconds (start to the end of update ``warmup``; None when the start was not stamped)."""
    n = len(stamps) - 1
    if n - warmup < 1 or warmup < 1:
        return {"warmup_steps": warmup, "timed_steps": max(0, n - warmup)}
    timed = [stamps[k] - stamps[k - 1] for k in range(warmup + 1, n + 1)]
    window = stamps[n] - stamps[warmup]
    tokens = sum(step_tokens[warmup:n]) if step_tokens and len(step_tokens) >= n else None
    return {
        "warmup_steps": warmup,
        "timed_steps": len(timed),
        "warmup_s": stamps[warmup] - stamps[0] if stamps[0] is not None else None,
        "window_s": window,
        "mean_step_s": window / len(timed),
        "median_step_s": statistics.median(timed),
        "min_step_s": min(timed),
        "max_step_s": max(timed),
        "window_tokens": tokens,
        "tokens_per_s": tokens / window if tokens is not None and window > 0 else None,
        # the MLX trainer writes its end-of-run checkpoint before the last update's callback (torch's Trainer,
        # save_strategy "no", does not): the window's mean without the last update, for a like-for-like figure
        "mean_step_s_without_last": statistics.mean(timed[:-1]) if len(timed) > 1 else None,
    }


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
        callbacks = []
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
            callbacks = [clock.mlx_callback]
            clock.stamp()
        return trainer.train(data, callbacks=callbacks), "mx.get_peak_memory()", str(mx.default_device())
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
    ``MLX_CROSS_ENCODER_TRAIN_FLAT_ADAM=0``) and/or ``-nocache``
    (``MLX_CROSS_ENCODER_TRAIN_CACHE_GB=none``: MLX's own buffer-cache limit during training)."""
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
        else:
            raise ValueError(
                f"unknown backend {name!r} (mlx[-plain|-eager|-update|-compiled][-noflat][-opsN][-gcN][-nographs][-nocache] or torch)"
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
    n = len(data) // knobs["batch_size"]
    clock = StepClock(sync_at=(0, warmup, n))
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


def run_child(backend: str, job: str, steps: int, warmup: int, data_dir: Path, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--child", backend, "--jobs", job, "--steps", str(steps), "--data", str(data_dir)]
    cmd += ["--warmup", str(warmup)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.update(backend_spec(backend)[1])
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


def with_steady(rows: list[dict], warmup: int) -> None:
    """Add each row's warm-up-excluded figures (:func:`steady`). Tokens per update are the MLX trainer's count of
    the job (both stacks are fed the same micro-batches; the torch trainer reports only its total, which is
    checked equal)."""
    for r in rows:
        if "error" in r:
            continue
        tokens = r.get("step_tokens") or next(
            (m.get("step_tokens") for m in rows if m.get("job") == r["job"] and m.get("step_tokens")), None
        )
        if len(r["stamps"]) != r["steps"] + 1:
            r["steady"] = {"error": f"{len(r['stamps'])} clock stamps for {r['steps']} updates (expected one more)"}
            continue
        r["steady"] = steady(r["stamps"], warmup, tokens)


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
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        steps = a.steps or DEFAULT_STEPS[JOBS[a.jobs][0]]
        scratch = tempfile.mkdtemp(prefix="gpu-train-")
        os.environ["TMPDIR"] = tempfile.tempdir = scratch  # the tiny models and the trainers' output folders
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
            rows.append(run_child(backend, job, steps, a.warmup, a.data, a.timeout))
            with_steady(rows, a.warmup)
            print(json.dumps({k: v for k, v in rows[-1].items() if k not in ("stamps", "step_tokens")})[:1500])
            if a.json:
                Path(a.json).write_text(json.dumps(rows, indent=1))
            print(table(rows, a.warmup), flush=True)  # after each trainer: a cut-off run still shows its rows


def table(rows: list[dict], warmup: int) -> str:
    """Markdown: per trainer, the steady figures (first ``warmup`` updates excluded) and the whole run's."""
    out = [
        f"steady = updates after the first {warmup} (window: end of update {warmup} to the end of the last); "
        "train s = the trainer's own clock over all updates (warm-up included)",
        "| job | trainer | device | steps | steady s/update (mean) | median [min-max] ms | steady tokens/s | "
        "warm-up s | train s | process wall s | peak MB |",
        "|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['job']} | {r['backend']} | error | | | | | | | | |")
            continue
        st = r.get("steady") or {}
        if st.get("timed_steps"):
            spread = f"{st['median_step_s'] * 1e3:.1f} [{st['min_step_s'] * 1e3:.1f}-{st['max_step_s'] * 1e3:.1f}]"
            mean, tps = f"{st['mean_step_s']:.4f}", f"{st['tokens_per_s'] or 0:,.0f}"
            warm = f"{st['warmup_s']:.2f}" if st.get("warmup_s") is not None else "n/a"
        else:
            spread = mean = tps = warm = "n/a"
        out.append(
            f"| {r['job']} | {r['backend']} | {r['device']} | {r['steps']} | {mean} | {spread} | {tps} | {warm} | "
            f"{r['train_time_s']:.2f} | {r['process_wall_s']:.1f} | {r['peak_memory_mb']:,.0f} |"
        )
    return "\n".join(out)


if __name__ == "__main__":
    main()
