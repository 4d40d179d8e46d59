"""What the PyTorch training baselines share: the settings, seeding, peak memory, dev evaluation and the losses.

The baselines train with :class:`~mlx_cross_encoder.training.settings.TrainingSettings`, the MLX trainers' own
settings model (same names, same defaults): :mod:`.torch_encoder` (sentence-transformers cross-encoders) and
:mod:`.torch_llm` (transformers + peft LLM yes/no rerankers). They read the same record formats (pairs, triplets,
FlagEmbedding groups) through ``mlx_cross_encoder.training.data`` and return the same summary: wall and train
time, tokens/s, peak memory (with how it was measured), final dev metrics.

Dev evaluation and checkpoint choice follow the MLX trainer (:class:`DevSelection`): with ``eval_data``, the dev
metric is computed every ``eval_steps`` optimizer updates (``None``: at the end of each epoch) and after the last
update, the best value of ``metric_for_best`` (``TrainingSettings.improves``: better than the best so far by more
than ``early_stopping_threshold``, the MLX trainers' rule) keeps a copy of the
trainable weights in memory, and ``load_best_model_at_end`` puts that copy back before the model is saved;
``final_metrics`` are then the best evaluation's. Time spent evaluating is not counted in ``train_time_s``.
"""

from __future__ import annotations

import math
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mlx_cross_encoder.training.settings import TrainingSettings

MetricFn = Callable[[dict, dict], dict]


def settings_of(settings: Any = None, **overrides) -> TrainingSettings:
    """The shared settings from None, a dict or any ``TrainingSettings`` (an MLX trainer's config works: its
    family fields are dropped), with ``overrides`` on top."""
    if settings is None:
        values: dict[str, Any] = {}
    elif isinstance(settings, TrainingSettings):
        values = settings.settings().model_dump(exclude_unset=False)
    elif isinstance(settings, dict):
        values = dict(settings)
    else:
        raise TypeError(f"settings must be a TrainingSettings or a dict, got {type(settings).__name__}")
    return TrainingSettings(**{**values, **overrides})


def training_data():
    from mlx_cross_encoder.training import data

    return data


def seed_everything(seed: int) -> None:
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def peak_memory(device: str) -> tuple[int | None, str]:
    import torch

    if device.startswith("cuda"):
        return int(torch.cuda.max_memory_allocated(device)), "torch.cuda.max_memory_allocated (tensors)"
    if device == "mps":
        return int(torch.mps.driver_allocated_memory()), "torch.mps.driver_allocated_memory at the end (not a peak)"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return int(rss * scale), "process peak RSS (ru_maxrss; includes everything the process loaded)"


def reset_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)


def ranking_run(scores: np.ndarray, keys: list[tuple[str, str]]) -> dict[str, dict[str, float]]:
    run: dict[str, dict[str, float]] = {}
    for (qid, did), s in zip(keys, scores):
        run.setdefault(qid, {})[did] = float(s)
    return run


def dev_pairs_of(eval_data):
    queries, docs, qrels = training_data().eval_rankings(eval_data)
    pairs, keys = [], []
    for qid, texts in docs.items():
        for di, text in enumerate(texts):
            pairs.append((queries[qid], text))
            keys.append((qid, f"{qid}-d{di}"))
    return pairs, keys, qrels


def default_metric_fn(run: dict, qrels: dict) -> dict[str, float]:
    """nDCG@10 (and MRR@10) with the harness's metric code (trec_eval semantics)."""
    from harness.metrics import evaluate

    int_qrels = {q: {d: int(round(g)) for d, g in docs.items()} for q, docs in qrels.items()}
    means, _ = evaluate(int_qrels, run, ["ndcg@10", "mrr@10"])
    return means


class DevSelection:
    """Dev evaluations at the MLX trainer's points, and the best trainable weights kept in memory.

    ``evaluate()`` returns the dev metrics of the model as it is; ``parameters()`` yields ``(name, tensor)`` of the
    trainable parameters (what a checkpoint of the MLX trainer holds)."""

    def __init__(
        self, settings: TrainingSettings, total_steps: int, evaluate: Callable[[], dict], parameters: Callable[[], Any]
    ):
        self.settings, self.total_steps = settings, total_steps
        self._evaluate, self._parameters = evaluate, parameters
        self.best_metric: float | None = None
        self.best_step: int | None = None
        self.best_metrics: dict | None = None
        self.last_metrics: dict | None = None
        self.last_step: int | None = None
        self.best_state: dict | None = None
        self.evaluations: list[dict[str, Any]] = []
        self.eval_time = 0.0

    def due(self, step: int, epoch_end: bool) -> bool:
        every = self.settings.eval_steps
        return bool((every and step % every == 0) or (not every and epoch_end) or step >= self.total_steps)

    def run(self, step: int) -> dict:
        if step == self.last_step:  # already evaluated at this update
            return self.last_metrics
        tic = time.perf_counter()
        metrics = self._evaluate()
        value = self.settings.selection_value(metrics)
        improved = self.settings.improves(value, self.best_metric)  # the MLX trainers' rule (TrainingSettings)
        if improved:
            self.best_metric, self.best_step, self.best_metrics = value, step, metrics
            self.best_state = {n: p.detach().clone() for n, p in self._parameters()}
        self.last_metrics, self.last_step = metrics, step
        self.evaluations.append({"step": step, "metrics": metrics, "improved": improved})
        self.eval_time += time.perf_counter() - tic
        return metrics

    def finish(self) -> dict | None:
        """Load the best weights back (``load_best_model_at_end``); the metrics of the model as it now is."""
        import torch

        if not self.settings.load_best_model_at_end or self.best_state is None:
            return self.last_metrics
        if self.best_step != self.last_step:
            with torch.no_grad():
                for n, p in self._parameters():
                    p.copy_(self.best_state[n])
        return self.best_metrics

    def summary(self) -> dict[str, Any]:
        return {
            "best_metric": self.best_metric,
            "best_step": self.best_step,
            "metric": self.settings.metric_for_best,
            "evaluations": self.evaluations,
            "eval_time_s": self.eval_time,
        }


def trainable_parameters(model):
    return lambda: ((n, p) for n, p in model.named_parameters() if p.requires_grad)


def total_updates(n_micro: int, settings: TrainingSettings) -> int:
    return settings.max_steps or math.ceil(n_micro / settings.gradient_accumulation_steps) * settings.num_epochs


def load_lora_init(model, adapter_dir: str | os.PathLike) -> int:
    """Copy the LoRA matrices of an adapter in mlx-lm's layout (``<module>.lora_a`` (in, r), ``<module>.lora_b``
    (r, out), module names as transformers names them) into a peft model (``lora_A.weight`` (r, in),
    ``lora_B.weight`` (out, r)); returns how many matrices were copied. Every LoRA matrix of the peft model must be
    given (a partial start would not be one initialization)."""
    import torch
    from safetensors.numpy import load_file

    tensors = load_file(str(Path(adapter_dir) / "adapters.safetensors"))
    targets = {n: p for n, p in model.named_parameters() if ".lora_A." in n or ".lora_B." in n}
    copied = 0
    with torch.no_grad():
        for name, param in targets.items():
            module = name.split("base_model.model.", 1)[-1].split(".lora_")[0]
            key = f"{module}.lora_a" if ".lora_A." in name else f"{module}.lora_b"
            if key not in tensors:
                raise KeyError(f"{adapter_dir}: no {key} for {name}")
            param.copy_(torch.from_numpy(np.ascontiguousarray(tensors[key].T)))
            copied += 1
    return copied


def adamw(params, settings: TrainingSettings):
    """``torch.optim.AdamW`` with the MLX trainer's groups (``schedule.no_decay``: no weight decay on biases and
    norm weights), betas and eps; ``params`` are ``(name, parameter)`` pairs."""
    import torch

    from mlx_cross_encoder.training.schedule import no_decay

    return torch.optim.AdamW(
        [
            {"params": [p for n, p in params if not no_decay(n)], "weight_decay": settings.weight_decay},
            {"params": [p for n, p in params if no_decay(n)], "weight_decay": 0.0},
        ],
        lr=settings.learning_rate,
        betas=tuple(settings.adam_betas),
        eps=settings.adam_eps,
    )


def mlx_schedule(optimizer, settings: TrainingSettings, total: int):
    """A ``LambdaLR`` giving update ``k`` the MLX trainer's learning rate ``lr_at(k)`` (warmup without a zero-lr
    first update, then the decay), for a Trainer that steps the scheduler after each update."""
    import torch

    from mlx_cross_encoder.training.schedule import lr_at

    warmup = settings.warmup_updates(total)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: lr_at(k, 1.0, total, warmup, settings.lr_scheduler))


def torch_loss(
    name: str,
    scores,
    labels,
    teacher,
    group_size: int | None,
    pos_weight=None,
    temperature=1.0,
    teacher_temperature=1.0,
):
    """The MLX trainer's losses in torch (mean over pairs or groups; see mlx_cross_encoder.training.losses)."""
    import torch
    import torch.nn.functional as F

    s = scores.float().reshape(-1)
    if name == "bce":
        pw = None if pos_weight is None else torch.tensor(float(pos_weight), device=s.device)
        return F.binary_cross_entropy_with_logits(s, labels.float().reshape(-1), pos_weight=pw)
    if name == "mse":
        return F.mse_loss(s, teacher.float().reshape(-1))
    if name == "listwise":
        g = s.reshape(-1, group_size) / temperature
        return F.cross_entropy(g, torch.zeros(g.shape[0], dtype=torch.long, device=g.device))
    if name == "margin_mse":
        g, t = s.reshape(-1, group_size), teacher.float().reshape(-1, group_size)
        return F.mse_loss(g[:, :1] - g[:, 1:], t[:, :1] - t[:, 1:])
    if name == "listwise_kl":
        g = s.reshape(-1, group_size) / temperature
        t = teacher.float().reshape(-1, group_size) / teacher_temperature
        return F.kl_div(F.log_softmax(g, dim=1), F.log_softmax(t, dim=1), log_target=True, reduction="batchmean")
    raise ValueError(f"unknown loss {name!r}")
