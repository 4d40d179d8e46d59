"""The ``train:`` section's jobs in a suite run: each model trained in its own worker (``harness.train.worker``
through ``harness.run.spawn``), its block recorded as it ends, the trained model then measured like a reranker.

A training kept from the resumed file (ok, same plan, its weights unchanged: ``same_training``) is not redone; any
other trains in ``.<name>.partial/``, which replaces the model folder only when it succeeded (``train_job``; MLX
trainers resume a partial training of the same job from its checkpoint).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .output import document_of
from .prepare import prepare_reranker
from .spawn import spawn_worker

TRAIN_WORKER = "harness.train.worker"
#: trainers that continue an interrupted training from the latest checkpoint in their folder
#: (``resume_from_checkpoint``; MLX: ``mlx_cross_encoder.training.checkpoint``)
RESUMABLE_TRAINERS = {"harness.train.worker:train_mlx_cross_encoder", "harness.train.worker:train_mlx_llm"}
JOB_RECORD = "job.json"  # in a training's folder: the job it was started with (what a resumed training must equal)


def train_summary(block: dict[str, Any]) -> str:
    """One log line for a training block."""
    if block["status"] != "ok":
        return f"error: {block['error'].splitlines()[0]}"
    parts = [f"{block['steps']} steps", f"{block['wall_time_s']:.1f} s wall ({block['train_time_s']:.1f} s training)"]
    if block.get("tokens_per_s"):
        parts.append(f"{block['tokens_per_s']:.0f} tokens/s")
    if block.get("best_dev") is not None:
        parts.append(f"best dev nDCG@10 {block['best_dev']:.4f} at step {block['best_step']}")
    return "ok: " + ", ".join(parts)


def train_models(run, plan) -> None:
    """Every training job of ``plan`` in its own worker, recorded in ``run`` (an ``Execution``) as it ends; a failed
    one is recorded, the others go on."""
    from ..train.plan import train_block, trained_reranker

    n_jobs = len(plan.jobs)
    run.log(
        f"training {n_jobs} model{'s' * (n_jobs != 1)} on {plan.summary['n_pairs']} judged pairs of "
        f"{plan.summary['n_queries']} queries ({plan.summary['n_dev_queries']} dev queries) into "
        f"{plan.root}"
    )
    for number, job in enumerate(plan.jobs, 1):
        job.block["base_fingerprint"] = base_fingerprint(job.model.base)
        old = run.trained_before.get((job.model.name, job.backend)) if run.resume else None
        note = ""
        if old is not None and same_training(job, old):
            job.block, note = old, " (kept from the resumed file: not trained again)"
            run.reused.add(job.reranker)
        else:
            try:
                result = train_job(job, run.workdir, run.timeout_s, run.progress, run.resume, run.log)
            except Exception as exc:  # a harness bug must not lose the other trainings
                result = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
            job.block = train_block(job, result)
        if job.block["status"] == "ok":
            job.spec = trained_reranker(job)
            run.prepared[job.reranker] = prepare_reranker(job.spec)
        run.record_train(job)
        run.log(f"[train {number}/{n_jobs}] {job.reranker}: {train_summary(job.block)}{note}")


def train_job(
    job, workdir: Path, timeout_s: float | None, progress: bool, resume: bool, log: Callable[[str], None]
) -> dict[str, Any]:
    """Train ``job`` in ``.<name>.partial/`` beside its folder, which replaces the folder only once the
    training succeeded: a good trained model is never deleted before its replacement exists. With --resume, a
    partial training of the same job continues from its checkpoint when its trainer can."""
    final, partial = Path(job.out_dir), Path(job.out_dir).parent / f".{Path(job.out_dir).name}.partial"
    spec = {**job.job, "output_dir": str(partial)}
    record = {k: v for k, v in spec.items() if k != "progress"}
    resumable = (
        resume
        and spec["trainer"] in RESUMABLE_TRAINERS
        and _read_json(partial / JOB_RECORD) == record
        and any((partial / "mlx-trainer" / "checkpoints").glob("step-*/state.json"))
    )
    if resumable:
        spec["settings"] = {**spec["settings"], "resume_from_checkpoint": True}
        log(f"{job.reranker}: resuming the interrupted training from its checkpoint in {partial}")
    else:
        shutil.rmtree(partial, ignore_errors=True)  # a partial training: never a model anyone evaluated
        partial.mkdir(parents=True)
        (partial / JOB_RECORD).write_text(json.dumps(record, indent=1, sort_keys=True))
    result = spawn_worker(spec, workdir, timeout_s, progress, module=TRAIN_WORKER)
    if result.get("status") != "ok":
        return result  # the partial folder stays (a later --resume continues it); the old folder too
    if resumable:
        result["resumed_from_checkpoint"] = True
    old = final.parent / f".{final.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.rename(final, old)  # the good old model is set aside only now that its replacement is complete
    os.rename(partial, final)
    shutil.rmtree(old, ignore_errors=True)
    result = moved(result, str(partial), str(final))
    return moved(result, str(partial.absolute()), str(final.absolute()))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def base_fingerprint(base: str) -> str | None:
    """The base model's weights fingerprint (None when it cannot be resolved here: the training will say why)."""
    from .. import backends

    try:
        return backends.weights_fingerprint(backends.resolve_model_dir(base))
    except Exception:
        return None


def same_training(job, old: dict[str, Any]) -> bool:
    """Whether the resumed file's training block ``old`` is this job's, complete and unchanged: ok, the same
    planned settings, data and base (every key the plan sets; the base weights' fingerprint when the old file
    recorded one), and its model folder still holding the weights it recorded."""
    from .. import backends

    if old.get("status") != "ok" or not old.get("model_dir") or not old.get("model_fingerprint"):
        return False
    planned = document_of(job.block)
    for key, value in planned.items():
        if key == "status" or (key == "base_fingerprint" and "base_fingerprint" not in old):
            continue
        if old.get(key) != value:
            return False
    model_dir = Path(old["model_dir"])
    if not model_dir.is_relative_to(job.out_dir) or not model_dir.is_dir():
        return False
    if old.get("adapter_dir") and not Path(old["adapter_dir"]).exists():
        return False
    try:
        return backends.weights_fingerprint(model_dir) == old["model_fingerprint"]
    except Exception:
        return False


def moved(value: Any, old: str, new: str) -> Any:
    """``value`` with the paths under ``old`` renamed to under ``new`` (a worker result after its folder moved)."""
    if isinstance(value, str):
        return new + value[len(old) :] if value == old or value.startswith(old + os.sep) else value
    if isinstance(value, dict):
        return {k: moved(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [moved(v, old, new) for v in value]
    return value
