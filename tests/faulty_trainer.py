"""Trainers that fail on purpose, for the runner's handling of failed trainings (tests point
``harness.backends.registry.BACKENDS[backend].trainers`` entries here; the training worker finds this module
through PYTHONPATH)."""

from __future__ import annotations

import os
import signal


def train_killed(job):
    """Dies as the OOM killer kills: SIGKILL, no result written."""
    os.kill(os.getpid(), signal.SIGKILL)


def train_raises(job):
    raise RuntimeError(f"deliberate training failure for {job['name']}")


def train_copy(job):
    """Trains nothing, fast: saves the base model folder as the trained one. Test hooks from the environment:
    ``FAKE_TRAIN_LOG`` (a JSON line per call: name, output_dir, resume_from_checkpoint), ``FAKE_TRAIN_FAULT=raise``,
    ``FAKE_TRAIN_CHECKPOINT=1`` (writes an MLX-style checkpoint first), ``FAKE_TRAIN_GATE`` / ``FAKE_TRAIN_PIDFILE``
    (writes its pid, then waits while the gate file exists: a training interrupted at a known point)."""
    import json
    import shutil
    import time
    from pathlib import Path

    out = Path(job["output_dir"])
    if os.environ.get("FAKE_TRAIN_LOG"):
        record = {
            "name": job["name"],
            "output_dir": str(out),
            "resume_from_checkpoint": job["settings"].get("resume_from_checkpoint"),
        }
        with open(os.environ["FAKE_TRAIN_LOG"], "a") as f:
            f.write(json.dumps(record) + "\n")
    if os.environ.get("FAKE_TRAIN_FAULT") == "raise":
        raise RuntimeError(f"deliberate training failure for {job['name']}")
    if os.environ.get("FAKE_TRAIN_CHECKPOINT"):
        step = out / "mlx-trainer" / "checkpoints" / "step-0000002"
        step.mkdir(parents=True, exist_ok=True)
        (step / "state.json").write_text("{}")
    gate = os.environ.get("FAKE_TRAIN_GATE")
    if gate and os.path.exists(gate):
        Path(os.environ["FAKE_TRAIN_PIDFILE"]).write_text(str(os.getpid()))
        while os.path.exists(gate):
            time.sleep(0.05)
    from harness.backends import resolve_model_dir

    model_dir = out / "model"
    shutil.copytree(resolve_model_dir(job["base"]), model_dir, dirs_exist_ok=True)
    shutil.rmtree(out / "mlx-trainer" / "checkpoints", ignore_errors=True)  # as the MLX trainer's worker does
    return {
        "steps": 1,
        "train_time_s": 0.01,
        "tokens_per_s": 1.0,
        "peak_memory_mb": 1.0,
        "model_dir": str(model_dir),
        "adapter_dir": None,
        "trainer": "copy",
    }
