"""A suite's ``train:`` section as jobs: per (model, backend) the data files, the trainer and its settings.

:func:`plan_training` builds the data (:mod:`harness.train.data`: pairs, dev split by query, held-out check),
samples each model's pairs, writes the files the trainers read to ``<results>.train/data/`` (JSONL pair records
with their grade; their sha256 is the run's data fingerprint) and makes one :class:`TrainJob` per (model,
backend). Each job runs in its own worker process (``python -m harness.train.worker``, :mod:`.worker`) with the
trainer the backend registry names (``harness.backends.registry.BACKENDS[backend].trainers[kind]``: MLX
``MLXCrossEncoderTrainer`` / ``Qwen3RerankerTrainer``, PyTorch :mod:`.torch_encoder` / :mod:`.torch_llm`), into
``<results>.train/<model>-<backend>/``; the trained model is saved as a plain checkpoint folder (``model/``: LoRA
merged) and evaluated like any other reranker (:func:`trained_reranker`).

Words: a suite's *recipe* is what the suite says (training keys plus the sampling keys ``max_pairs`` and
``dev_max_docs``); the trainers' *settings* are a ``TrainingSettings`` (:func:`trainer_settings`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlx_cross_encoder.training.settings import TEACHER_LOSSES, TrainingSettings

from ..backends.registry import BACKENDS
from ..suite import RerankerSpec, Suite, SuiteError, TrainModelSpec, TrainSpec
from .data import TrainDataError, TrainingData, build_training_data, check_held_out, sample_dev_docs, sample_pairs

DEV_METRICS = ["ndcg@10", "mrr@10"]
DEV_METRIC = "ndcg@10"  # chooses the checkpoint


def _write_jsonl(records: list[dict], path: Path) -> str:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class TrainJob:
    model: TrainModelSpec
    backend: str
    reranker: str  # evaluated under this name
    out_dir: Path
    job: dict[str, Any]  # what the worker gets
    block: dict[str, Any]  # the run's train block, filled with the worker's result
    spec: RerankerSpec | None = None  # the trained model as a reranker (after a successful training)


@dataclass
class TrainingPlan:
    data: TrainingData
    jobs: list[TrainJob]
    root: Path
    summary: dict[str, Any] = field(default_factory=dict)


def train_names(train: TrainSpec | None) -> set[str]:
    """Names ``--only`` accepts for training: model names and trained reranker names."""
    if train is None:
        return set()
    return {m.name for m in train.models} | set(train.reranker_names())


def selected_jobs(train: TrainSpec, names: set[str] | None) -> list[tuple[TrainModelSpec, str]]:
    """(model, backend) pairs to train: all when ``names`` is None, else those named (a model name keeps both of
    its backends, ``<model>-<backend>`` one)."""
    return [
        (m, b)
        for m in train.models
        for b in m.backends
        if names is None or m.name in names or m.reranker_name(b) in names
    ]


#: suite recipe keys that choose the data, not how to train
SAMPLING_KEYS = ("max_pairs", "dev_max_docs", "candidates")


def suite_recipe(model: TrainModelSpec, max_pairs_cap: int | None) -> dict[str, Any]:
    """The model's suite recipe as a plain mapping (``max_pairs`` capped by ``--train-max-pairs``)."""
    recipe = model.recipe
    values = recipe.model_dump() if hasattr(recipe, "model_dump") else dataclasses.asdict(recipe)
    if "epochs" in values:  # the suite's older name of num_epochs
        values["num_epochs"] = values.pop("epochs")
    if max_pairs_cap is not None:
        values["max_pairs"] = min(max_pairs_cap, values.get("max_pairs") or max_pairs_cap)
    return values


def trainer_settings(model: TrainModelSpec, recipe: dict[str, Any]) -> dict[str, Any]:
    """The ``TrainingSettings`` both backends' trainers get (JSON): the recipe's training keys, the model's
    fine-tuning, the dev metric that picks the checkpoint, and the best checkpoint loaded at the end."""
    values = {k: v for k, v in recipe.items() if k not in SAMPLING_KEYS}
    values.update(fine_tune_type=model.fine_tune, metric_for_best=DEV_METRIC, load_best_model_at_end=True)
    if model.fine_tune == "lora":
        values.update(lora_rank=model.lora_rank, lora_alpha=model.lora_alpha, lora_dropout=model.lora_dropout)
    return TrainingSettings(**values).model_dump(mode="json", exclude={"output_dir"})


def trainer_of(kind: str, backend: str) -> str:
    """The ``"module:function"`` that trains a model of ``kind`` with ``backend`` (the backend registry's)."""
    return BACKENDS[backend].trainers[kind]


def model_pools(data: TrainingData, train: TrainSpec, candidates: str, distill: bool) -> tuple[list, list]:
    """(train, dev) pairs one model sees: judged pairs only unless ``candidates == "all"``; for a distillation
    loss the training pairs that have a teacher score; dev pairs only from ``train.dev.sources`` when given."""
    train_pool, dev_pool = data.train_pool, data.dev_pool
    if candidates != "all":
        train_pool, dev_pool = [p for p in train_pool if p.judged], [p for p in dev_pool if p.judged]
    if distill:
        train_pool = [p for p in train_pool if p.teacher is not None]
    if train.dev.sources is not None:
        keep = set(train.dev.sources)
        dev_pool = [p for p in dev_pool if p.source in keep]
    return train_pool, dev_pool


def plan_training(
    suite: Suite,
    selected: list[tuple[TrainModelSpec, str]],
    root: Path,
    train_max_pairs: int | None = None,
    progress: bool = True,
) -> TrainingPlan:
    """Build the data, check it is held out from every suite dataset, write the trainers' files under ``root``
    and make one job per (model, backend). Raises SuiteError / TrainDataError before anything is trained."""
    train = suite.train
    source = str(suite.path) if suite.path else "train"
    unjudged = any(suite_recipe(m, None).get("candidates") == "all" for m, _ in selected)
    try:
        data = build_training_data(train, unjudged=unjudged)
    except TrainDataError as exc:
        raise SuiteError(f"{source}: train.data: {exc}") from None
    held_out = check_held_out(data, suite.datasets, source)
    if not data.train_pool:
        raise SuiteError(f"{source}: train.data: no training pairs")
    jobs, files = [], {}
    for model, backend in selected:
        recipe = suite_recipe(model, train_max_pairs)
        info = _model_files(data, train, model, recipe, root, files, source)
        jobs.append(_train_job(model, backend, recipe, info, root, train.label_threshold, progress))
    summary = {
        "root": str(root),
        "sources": data.sources,
        "n_pairs": len(data.pairs),
        "n_queries": len(data.queries),
        "n_train_queries": len(data.train_keys),
        "n_dev_queries": len(data.dev_keys),
        "label_threshold": train.label_threshold,
        "dev_split": {"fraction": train.dev.fraction, "seed": train.dev.seed},
        "held_out": held_out,
        "teacher": data.teacher,
        "train_max_pairs": train_max_pairs,
        "models": [],
    }
    return TrainingPlan(data, jobs, root, summary)


def _model_files(
    data: TrainingData,
    train: TrainSpec,
    model: TrainModelSpec,
    recipe: dict[str, Any],
    root: Path,
    files: dict[tuple, dict[str, Any]],
    source: str,
) -> dict[str, Any]:
    """The train/dev files one model reads and what they hold: written under ``root/data`` once per sampling key
    (models that sample alike share them; ``files`` caches them by that key)."""
    max_pairs, dev_max_docs, seed = recipe.get("max_pairs"), recipe.get("dev_max_docs"), recipe["seed"]
    candidates, distill = recipe.get("candidates", "judged"), recipe["loss"] in TEACHER_LOSSES
    key = (max_pairs, dev_max_docs, seed, candidates, distill)
    if key in files:
        return files[key]
    train_pool, dev_pool = model_pools(data, train, candidates, distill)
    if not train_pool:
        raise SuiteError(f"{source}: train.data: no training pairs for model {model.name} ({candidates=})")
    train_pairs = sample_pairs(train_pool, max_pairs, seed)
    dev_pairs = sample_dev_docs(dev_pool, dev_max_docs, seed)
    tag = f"{candidates}-pairs{max_pairs or 'all'}-dev{dev_max_docs or 'all'}-seed{seed}"
    tag += "-teacher" if distill else ""
    train_file, dev_file = root / "data" / f"train-{tag}.jsonl", root / "data" / f"dev-{tag}.jsonl"
    train_sha = _write_jsonl([p.record(teacher=distill) for p in train_pairs], train_file)
    dev_sha = _write_jsonl([p.record(teacher=False) for p in dev_pairs], dev_file) if dev_pairs else None
    files[key] = {
        "candidates": candidates,
        "teacher": data.teacher if distill else None,
        "n_train_without_teacher": sum(p.teacher is None for p in data.train_pool) if distill else None,
        "n_train_unjudged": sum(not p.judged for p in train_pairs),
        "n_dev_unjudged": sum(not p.judged for p in dev_pairs),
        "dev_sources": train.dev.sources,
        "fingerprint": hashlib.sha256(f"{train_sha}:{dev_sha}".encode()).hexdigest(),
        "train_file": str(train_file),
        "dev_file": str(dev_file) if dev_pairs else None,
        "train_sha256": train_sha,
        "dev_sha256": dev_sha,
        "n_train_pairs": len(train_pairs),
        "n_train_positives": sum(p.label > 0.5 for p in train_pairs),
        "n_train_queries": len({p.query_key for p in train_pairs}),
        "n_dev_queries": len({p.query_key for p in dev_pairs}),
        "n_dev_pairs": len(dev_pairs),
        "n_dev_positives": sum(p.label > 0.5 for p in dev_pairs),
        "label_threshold": train.label_threshold,
        "dev_split": {"fraction": train.dev.fraction, "seed": train.dev.seed},
    }
    return files[key]


def _train_job(
    model: TrainModelSpec,
    backend: str,
    recipe: dict[str, Any],
    info: dict[str, Any],
    root: Path,
    label_threshold: int,
    progress: bool,
) -> TrainJob:
    """One (model, backend) job: what its worker gets and the train block its result fills."""
    name = model.reranker_name(backend)
    out_dir = root / name
    job = {
        "name": name,
        "model": model.name,
        "kind": model.kind,
        "backend": backend,
        "trainer": trainer_of(model.kind, backend),
        "base": model.base,
        "fine_tune": model.fine_tune,
        "instruction": model.instruction,
        "settings": trainer_settings(model, recipe),
        "train_file": info["train_file"],
        "dev_file": info["dev_file"],
        "relevance_level": label_threshold,
        "dev_metrics": DEV_METRICS,
        "dev_metric": DEV_METRIC,
        "output_dir": str(out_dir),
        "progress": progress,
    }
    block = {
        "model": model.name,
        "backend": backend,
        "kind": model.kind,
        "base": model.base,
        "fine_tune": model.fine_tune,
        "status": None,
        "recipe": recipe,
        "lora": {"rank": model.lora_rank, "alpha": model.lora_alpha, "dropout": model.lora_dropout}
        if model.fine_tune == "lora"
        else None,
        "data": {k: v for k, v in info.items() if k not in ("train_file", "dev_file")},
        "artifact_dir": str(out_dir),
    }
    return TrainJob(model, backend, name, out_dir, job, block)


#: what a failed training's block keeps of the worker's failure (``harness.run.spawn.WorkerFailure``)
FAILURE_KEYS = ("exit_code", "signal", "traceback", "log_tail")


def train_block(job: TrainJob, result: dict[str, Any]) -> dict[str, Any]:
    """The run's ``train`` block from a worker result (ok or error). A failed one is a ``WorkerFailure`` (or the
    parent's record of a harness exception): it always names its ``error``; its cause (:data:`FAILURE_KEYS`) is
    copied where known."""
    block = dict(job.block)
    if result.get("status") != "ok":
        block.update(status="error", error=result["error"])
        block.update({k: result[k] for k in FAILURE_KEYS if result.get(k) is not None})
        return block
    block.update({k: v for k, v in result.items() if k not in ("status",)})
    block["status"] = "ok"
    return block


def trained_reranker(job: TrainJob) -> RerankerSpec:
    """The trained model as an ordinary reranker: its saved folder, the recipe's truncation, float32."""
    m = job.model
    return RerankerSpec(
        name=job.reranker,
        backend=job.backend,
        model=job.block["model_dir"],
        dtype="float32",
        batch_size=m.batch_size,
        max_length=m.recipe.max_length,
        device="auto",
        instruction=m.instruction if m.kind == "llm" else None,
    )
