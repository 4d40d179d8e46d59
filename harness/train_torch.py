"""PyTorch training baselines with the MLX trainers' recipe: sentence-transformers cross-encoders and
transformers + peft LLM yes/no rerankers.

Both take the same knobs as ``mlx_cross_encoder.training.TrainingConfig`` (loss, pos_weight, group_size,
learning_rate, weight_decay, num_epochs, batch_size, gradient_accumulation_steps, warmup, lr_scheduler,
max_grad_norm, max_length, seed, fine_tune_type, LoRA rank/alpha/dropout/targets) as a :class:`TorchRecipe`,
a dict or any dataclass with those field names (an ``MLXCrossEncoderConfig`` works), read the same record
formats (pairs, triplets, FlagEmbedding groups) and return the same summary: wall and train time, tokens/s,
peak memory (with how it was measured), final dev metrics.

Dev evaluation and checkpoint choice follow the MLX trainer: with ``eval_data``, the dev metric is computed every
``eval_steps`` optimizer updates (``None``: at the end of each epoch) and after the last update, the best value of
``metric_for_best`` (strictly better than the best so far) keeps a copy of the trainable weights in memory, and
``load_best_model_at_end`` puts that copy back before the model is saved; ``final_metrics`` are then the best
evaluation's. Time spent evaluating is not counted in ``train_time_s`` (as in the MLX trainer).

* :func:`train_cross_encoder_torch`: ``CrossEncoder`` + ``CrossEncoderTrainer``, full or LoRA (peft). LoRA
  puts the classification head in ``modules_to_save`` so that it trains and is saved and reloaded with the
  adapter (sentence-transformers' ``add_adapter`` alone leaves a freshly initialised head frozen and unsaved).
  The Trainer keeps its own conventions: HF's lr schedulers (first update at lr 0 under warmup) and its own
  shuffling; grouped losses see one row per (epoch, query) with the negatives the MLX trainer samples for that
  epoch, trained as one pass.
* :func:`train_llm_reranker_torch`: a transformers causal LM + peft LoRA, the official Qwen3-Reranker prompt
  (tokenized as ``Qwen3Reranker`` does), score ``logit(yes) - logit(no)`` at the last real token, and a plain
  loop with the MLX trainer's exact batches (same seed -> same order and negatives), example-weighted gradient
  accumulation, global-norm clipping, AdamW (no decay on biases and norms) and the MLX trainer's schedule.

The record parsing and batching come from ``mlx_cross_encoder.training.data`` (importing it loads mlx.core,
~tens of MB of the process's RSS; torch's own tensors are unaffected).
"""

from __future__ import annotations

import dataclasses
import math
import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MetricFn = Callable[[dict, dict], dict]

DEFAULT_ENCODER_TARGETS = ("query", "key", "value", "dense")
DEFAULT_LLM_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class TorchRecipe:
    """The recipe knobs shared with the MLX trainers (same names, same meaning)."""

    loss: str = "bce"
    pos_weight: float | None = None
    group_size: int = 8
    temperature: float = 1.0
    learning_rate: float = 2e-5
    weight_decay: float = 0.01
    num_epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 16
    gradient_accumulation_steps: int = 1
    lr_scheduler: str = "linear"
    warmup_ratio: float = 0.0
    warmup_steps: int | None = None
    max_grad_norm: float | None = 1.0
    max_length: int | None = None
    fine_tune_type: str | None = None  # default: "full" for cross-encoders, "lora" for LLMs (as the MLX configs)
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_target_modules: tuple[str, ...] | None = None
    eval_batch_size: int = 32
    eval_steps: int | None = None  # evaluate every N updates (None: at the end of each epoch), and after the last
    metric_for_best: str = "ndcg@10"
    greater_is_better: bool = True
    load_best_model_at_end: bool = True
    logging_steps: int = 10
    seed: int = 42
    output_dir: str = "torch-reranker-output"
    instruction: str | None = None  # LLM rerankers

    @classmethod
    def from_any(cls, recipe: Any = None, **overrides) -> TorchRecipe:
        """A recipe from None, a dict, or a dataclass with (some of) these field names; unknown names are ignored."""
        if recipe is None:
            values: dict[str, Any] = {}
        elif isinstance(recipe, TorchRecipe):
            values = dataclasses.asdict(recipe)
        elif dataclasses.is_dataclass(recipe):
            values = dataclasses.asdict(recipe)
        elif isinstance(recipe, dict):
            values = dict(recipe)
        else:
            raise TypeError(f"recipe must be a dict or a dataclass, got {type(recipe).__name__}")
        values.update(overrides)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


# -- shared pieces -----------------------------------------------------------------------------------------------


def _data():
    from mlx_cross_encoder.training import data

    return data


def _seed_everything(seed: int) -> None:
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _peak_memory(device: str) -> tuple[int | None, str]:
    import torch

    if device.startswith("cuda"):
        return int(torch.cuda.max_memory_allocated(device)), "torch.cuda.max_memory_allocated (tensors)"
    if device == "mps":
        return int(torch.mps.driver_allocated_memory()), "torch.mps.driver_allocated_memory at the end (not a peak)"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return int(rss * scale), "process peak RSS (ru_maxrss; includes everything the process loaded)"


def _reset_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)


def _ranking_run(scores: np.ndarray, keys: list[tuple[str, str]]) -> dict[str, dict[str, float]]:
    run: dict[str, dict[str, float]] = {}
    for (qid, did), s in zip(keys, scores):
        run.setdefault(qid, {})[did] = float(s)
    return run


def _dev_pairs(eval_data):
    queries, docs, qrels = _data().eval_rankings(eval_data)
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

    def __init__(self, recipe: TorchRecipe, total_steps: int, evaluate: Callable[[], dict],
                 parameters: Callable[[], Any]):  # fmt: skip
        self.recipe, self.total_steps = recipe, total_steps
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
        every = self.recipe.eval_steps
        return bool((every and step % every == 0) or (not every and epoch_end) or step >= self.total_steps)

    def run(self, step: int) -> dict:
        if step == self.last_step:  # already evaluated at this update
            return self.last_metrics
        tic = time.perf_counter()
        metrics = self._evaluate()
        name = self.recipe.metric_for_best
        if name not in metrics:
            raise KeyError(f"metric_for_best={name!r} is not among the metrics {sorted(metrics)}")
        value = metrics[name]
        sign = 1.0 if self.recipe.greater_is_better else -1.0
        improved = self.best_metric is None or sign * (value - self.best_metric) > 0
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

        if not self.recipe.load_best_model_at_end or self.best_state is None:
            return self.last_metrics
        if self.best_step != self.last_step:
            with torch.no_grad():
                for n, p in self._parameters():
                    p.copy_(self.best_state[n])
        return self.best_metrics

    def summary(self) -> dict[str, Any]:
        return {"best_metric": self.best_metric, "best_step": self.best_step, "metric": self.recipe.metric_for_best,
                "evaluations": self.evaluations, "eval_time_s": self.eval_time}  # fmt: skip


def _trainable(model):
    return lambda: ((n, p) for n, p in model.named_parameters() if p.requires_grad)


def _total_steps(n_micro: int, recipe: TorchRecipe) -> int:
    return recipe.max_steps or math.ceil(n_micro / recipe.gradient_accumulation_steps) * recipe.num_epochs


def torch_loss(name: str, scores, labels, teacher, group_size: int | None, pos_weight=None, temperature=1.0):
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
    raise ValueError(f"unknown loss {name!r}")


# -- sentence-transformers cross-encoders ----------------------------------------------------------------------


def group_softmax_cross_entropy_loss(model, temperature: float = 1.0):
    """Listwise loss module for ``CrossEncoderTrainer``: columns (query, doc_0 .. doc_{G-1}), positive first; the
    loss is ``-log softmax(scores / temperature)[0]`` per row (the MLX ``listwise`` loss, FlagEmbedding's)."""
    import torch
    from sentence_transformers.util import batch_to_device

    class GroupSoftmaxCrossEntropyLoss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model, self.temperature = model, temperature

        def forward(self, inputs, labels, prompt=None, task=None):
            queries, columns = inputs[0], inputs[1:]
            pairs = [(q, col[i]) for i, q in enumerate(queries) for col in columns]  # group by group, positive first
            features = batch_to_device(self.model.preprocess(pairs), self.model.device)
            scores = self.model(features)["scores"].view(len(queries), len(columns))
            return torch_loss("listwise", scores, None, None, len(columns), temperature=self.temperature)

        def get_config_dict(self):
            return {"temperature": self.temperature}

    return GroupSoftmaxCrossEntropyLoss()


def _encoder_dataset(groups, recipe: TorchRecipe):
    """A ``datasets.Dataset`` in the column layout the chosen loss expects, and the pairs it will score."""
    from datasets import Dataset

    data = _data()
    if recipe.loss in data.POINTWISE_LOSSES:
        b = data.Batcher(groups, recipe.loss, recipe.batch_size, recipe.group_size, recipe.seed)
        rows = {"query": [it[0] for it in b.items], "document": [it[1] for it in b.items]}
        rows["label"] = [float(it[3] if recipe.loss == "mse" else it[2]) for it in b.items]
        pairs = [(it[0], it[1]) for it in b.items] * recipe.num_epochs
        return Dataset.from_dict(rows), pairs, len(b)
    b = data.Batcher(groups, recipe.loss, recipe.batch_size, recipe.group_size, recipe.seed)
    k = recipe.group_size
    rows: dict[str, list] = {"query": [], **{f"doc_{i}": [] for i in range(k)}, "label": []}
    pairs = []
    for epoch in range(recipe.num_epochs):  # the negatives the MLX trainer samples in each epoch
        for batch in b.batches(epoch):
            for g in range(batch.n_examples):
                members = batch.pairs[g * k : (g + 1) * k]
                pairs += members
                rows["query"].append(members[0][0])
                for i, (_, doc) in enumerate(members):
                    rows[f"doc_{i}"].append(doc)
                if recipe.loss == "margin_mse":
                    t = batch.teacher[g * k : (g + 1) * k]
                    rows["label"].append([float(t[0] - t[j]) for j in range(1, k)])
                else:
                    rows["label"].append(0.0)
    if recipe.loss == "margin_mse":  # MarginMSELoss's columns: query, positive, negative_1..k-1
        rows = {"query": rows["query"], "positive": rows["doc_0"],
                **{f"negative_{i}": rows[f"doc_{i}"] for i in range(1, k)}, "label": rows["label"]}  # fmt: skip
    return Dataset.from_dict(rows), pairs, len(b)


def _encoder_loss(model, recipe: TorchRecipe):
    import torch
    from sentence_transformers.cross_encoder import losses

    if recipe.loss == "bce":
        pw = None if recipe.pos_weight is None else torch.tensor(float(recipe.pos_weight))
        return losses.BinaryCrossEntropyLoss(model, pos_weight=pw)
    if recipe.loss == "mse":
        return losses.MSELoss(model)
    if recipe.loss == "margin_mse":
        return losses.MarginMSELoss(model)
    return group_softmax_cross_entropy_loss(model, recipe.temperature)


def add_lora_with_head(model, recipe: TorchRecipe, head: tuple[str, ...] = ("classifier",)) -> None:
    """peft LoRA on a sentence-transformers ``CrossEncoder`` whose head trains and is saved with the adapter.

    The transformers model inside the ``CrossEncoder`` is wrapped with ``peft.get_peft_model`` directly
    (``CrossEncoder.add_adapter`` goes through transformers' integration, which also requires a newer peft).
    """
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=recipe.lora_rank, lora_alpha=recipe.lora_alpha, lora_dropout=recipe.lora_dropout,
        target_modules=list(recipe.lora_target_modules or DEFAULT_ENCODER_TARGETS), modules_to_save=list(head),
    )  # fmt: skip
    model[0].model = get_peft_model(model[0].model, config)


def load_cross_encoder_torch(base_model: str | os.PathLike, adapter_dir: str | os.PathLike | None = None,
                             device: str = "cpu", max_length: int | None = None):  # fmt: skip
    """A ``CrossEncoder`` of ``base_model`` with the peft adapter (LoRA + trained head) of ``adapter_dir``."""
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(base_model), device=device, max_length=max_length)
    if adapter_dir is not None:
        from peft import PeftModel

        model[0].model = PeftModel.from_pretrained(model[0].model, str(adapter_dir)).to(device)
    model.eval()
    return model


def train_cross_encoder_torch(
    model_name_or_path: str | os.PathLike,
    train_data,
    eval_data=None,
    recipe: Any = None,
    *,
    metric_fn: MetricFn | None = None,
    device: str = "cpu",
    **overrides,
) -> dict[str, Any]:
    """Fine-tune a sentence-transformers ``CrossEncoder`` with ``CrossEncoderTrainer``; see the module docstring.

    Returns ``{"model", "output_dir", "steps", "wall_time_s", "train_time_s", "train_tokens", "tokens_per_s",
    "peak_memory_bytes", "peak_memory_measure", "final_metrics", "train_loss", "log_history", "device"}``;
    ``output_dir/final`` holds the model (full) or the adapter with its head (LoRA).
    """
    import torch
    from sentence_transformers import CrossEncoder
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments

    wall = time.perf_counter()
    recipe = TorchRecipe.from_any(recipe, **overrides)
    recipe.fine_tune_type = recipe.fine_tune_type or "full"
    _seed_everything(recipe.seed)
    groups = _data().load_groups(train_data)
    model = CrossEncoder(str(model_name_or_path), num_labels=1, max_length=recipe.max_length, device=device)
    if recipe.fine_tune_type == "lora":
        add_lora_with_head(model, recipe)
    elif recipe.fine_tune_type != "full":
        raise ValueError(f"fine_tune_type must be 'full' or 'lora', got {recipe.fine_tune_type!r}")
    dataset, pairs, micro_per_epoch = _encoder_dataset(groups, recipe)
    grouped = recipe.loss not in _data().POINTWISE_LOSSES
    total = _total_steps(micro_per_epoch, recipe)
    out = Path(recipe.output_dir)
    args = CrossEncoderTrainingArguments(
        output_dir=str(out),
        num_train_epochs=1 if grouped else recipe.num_epochs,
        max_steps=recipe.max_steps or -1,
        per_device_train_batch_size=recipe.batch_size,
        gradient_accumulation_steps=recipe.gradient_accumulation_steps,
        learning_rate=recipe.learning_rate,
        weight_decay=recipe.weight_decay,
        lr_scheduler_type=recipe.lr_scheduler if recipe.lr_scheduler != "constant" else "constant_with_warmup",
        warmup_steps=recipe.warmup_steps if recipe.warmup_steps is not None else math.ceil(recipe.warmup_ratio * total),
        max_grad_norm=recipe.max_grad_norm or 0.0,
        seed=recipe.seed,
        data_seed=recipe.seed,
        logging_steps=recipe.logging_steps,
        save_strategy="no",
        report_to="none",
        use_cpu=device == "cpu",
        disable_tqdm=True,
    )  # fmt: skip
    selection = None
    callbacks = []
    if eval_data is not None:
        from transformers import TrainerCallback

        dev_pairs, keys, qrels = _dev_pairs(eval_data)

        def evaluate() -> dict:
            was_training = model.training
            with torch.inference_mode():
                scores = model.predict(dev_pairs, batch_size=recipe.eval_batch_size,
                                       activation_fn=torch.nn.Identity(), show_progress_bar=False)  # fmt: skip
            model.train(was_training)
            return (metric_fn or default_metric_fn)(_ranking_run(np.asarray(scores), keys), qrels)

        selection = DevSelection(recipe, total, evaluate, _trainable(model))

        class DevEvaluation(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if selection.due(state.global_step, epoch_end=False) or state.global_step >= state.max_steps:
                    selection.run(state.global_step)

            def on_epoch_end(self, args, state, control, **kwargs):
                if selection.due(state.global_step, epoch_end=True):
                    selection.run(state.global_step)

        callbacks.append(DevEvaluation())
    trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=dataset, loss=_encoder_loss(model, recipe),
                                  callbacks=callbacks)  # fmt: skip
    _reset_peak(device)
    output = trainer.train()
    peak, measure = _peak_memory(device)
    # HF's train_runtime includes the callbacks: the dev evaluations are taken out, as the MLX trainer does
    train_time = float(output.metrics["train_runtime"]) - (selection.eval_time if selection else 0.0)
    tokens = _count_tokens(model.tokenizer, pairs, model.max_seq_length)
    metrics = selection.finish() if selection is not None else None
    model.eval()
    final = out / "final"
    if recipe.fine_tune_type == "lora":
        model[0].model.save_pretrained(str(final))  # peft adapter: LoRA tensors + the head (modules_to_save)
    else:
        model.save_pretrained(str(final))
    return {
        "model": model,
        "output_dir": str(final),
        "steps": int(output.global_step),
        "total_steps_planned": total,
        "wall_time_s": time.perf_counter() - wall,
        "train_time_s": train_time,
        "train_tokens": tokens,
        "tokens_per_s": tokens / train_time if train_time else None,
        "peak_memory_bytes": peak,
        "peak_memory_measure": measure,
        "final_metrics": metrics,
        "train_loss": float(output.training_loss),
        "log_history": list(trainer.state.log_history),
        "device": device,
        **(selection.summary() if selection is not None else {}),
    }


def _count_tokens(tokenizer, pairs, max_length: int | None) -> int:
    """Non-padding tokens of the pairs as the model sees them (truncated to ``max_length``)."""
    total = 0
    for i in range(0, len(pairs), 256):
        chunk = pairs[i : i + 256]
        enc = tokenizer([q for q, _ in chunk], [d for _, d in chunk], truncation=True, max_length=max_length)
        total += sum(len(ids) for ids in enc["input_ids"])
    return total


# -- transformers + peft LLM yes/no rerankers ------------------------------------------------------------------


class LLMRerankerScorer:
    """A transformers causal LM scored as ``Qwen3Reranker`` scores: official prompt, right padding, last token."""

    def __init__(self, model, tokenizer, max_length: int = 8192, instruction: str | None = None, template=None):
        from mlx_cross_encoder.llm_reranker import QWEN3_TEMPLATE

        self.model, self.tokenizer = model, tokenizer
        self.template = template or QWEN3_TEMPLATE
        self.instruction = instruction
        self.prefix_ids = tokenizer(self.template.prefix, add_special_tokens=False)["input_ids"]
        self.suffix_ids = tokenizer(self.template.suffix, add_special_tokens=False)["input_ids"]
        self.max_length = max_length
        vocab = tokenizer.get_vocab()
        self.yes_id, self.no_id = vocab[self.template.yes], vocab[self.template.no]
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else 0

    def encode(self, pairs) -> list[list[int]]:
        budget = self.max_length - len(self.prefix_ids) - len(self.suffix_ids)
        bodies = [self.template.format_body(q, d, self.instruction) for q, d in pairs]
        ids = self.tokenizer(bodies, add_special_tokens=False)["input_ids"]
        return [self.prefix_ids + x[:budget] + self.suffix_ids for x in ids]

    def scores(self, pairs):
        """``logit(yes) - logit(no)`` per pair (a differentiable torch tensor) and the number of tokens."""
        import torch

        ids = self.encode(pairs)
        lengths = torch.tensor([len(x) for x in ids])
        batch = torch.full((len(ids), int(lengths.max())), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(batch)
        for row, x in enumerate(ids):
            batch[row, : len(x)] = torch.tensor(x)
            mask[row, : len(x)] = 1
        device = next(self.model.parameters()).device
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        hidden = base.model(input_ids=batch.to(device), attention_mask=mask.to(device)).last_hidden_state
        last = hidden[torch.arange(len(ids), device=device), (lengths - 1).to(device)]
        logits = base.lm_head(last)
        return (logits[:, self.yes_id] - logits[:, self.no_id]).float(), int(lengths.sum())


def train_llm_reranker_torch(
    model_name_or_path: str | os.PathLike,
    train_data,
    eval_data=None,
    recipe: Any = None,
    *,
    metric_fn: MetricFn | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    **overrides,
) -> dict[str, Any]:
    """LoRA (or full) fine-tuning of an LLM yes/no reranker with transformers + peft; see the module docstring.

    Returns the same summary as :func:`train_cross_encoder_torch` plus ``"scorer"`` (an :class:`LLMRerankerScorer`
    of the trained model) and ``"history"`` (per-update loss, lr, grad norm); ``output_dir/final`` holds the peft
    adapter (or the full model).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mlx_cross_encoder.training.schedule import lr_at, no_decay

    wall = time.perf_counter()
    recipe = TorchRecipe.from_any(recipe, **overrides)
    recipe.fine_tune_type = recipe.fine_tune_type or "lora"
    _seed_everything(recipe.seed)
    data = _data()
    groups = data.load_groups(train_data)
    batcher = data.Batcher(groups, recipe.loss, recipe.batch_size, recipe.group_size, recipe.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(model_name_or_path))
    model = AutoModelForCausalLM.from_pretrained(str(model_name_or_path), dtype=getattr(torch, dtype)).to(device)
    if recipe.fine_tune_type == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(
            r=recipe.lora_rank, lora_alpha=recipe.lora_alpha, lora_dropout=recipe.lora_dropout,
            target_modules=list(recipe.lora_target_modules or DEFAULT_LLM_TARGETS),
        ))  # fmt: skip
    elif recipe.fine_tune_type != "full":
        raise ValueError(f"fine_tune_type must be 'full' or 'lora', got {recipe.fine_tune_type!r}")
    scorer = LLMRerankerScorer(model, tokenizer, recipe.max_length or 8192, recipe.instruction)

    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [{"params": [p for n, p in params if not no_decay(n)], "weight_decay": recipe.weight_decay},
         {"params": [p for n, p in params if no_decay(n)], "weight_decay": 0.0}],
        lr=recipe.learning_rate,
    )  # fmt: skip
    accum = recipe.gradient_accumulation_steps
    micro_per_epoch = len(batcher)
    total = _total_steps(micro_per_epoch, recipe)
    warmup = recipe.warmup_steps if recipe.warmup_steps is not None else math.ceil(recipe.warmup_ratio * total)
    history: list[dict[str, Any]] = []
    step, tokens, train_time = 0, 0, 0.0
    selection = None
    if eval_data is not None:
        dev_pairs, keys, qrels = _dev_pairs(eval_data)

        def evaluate() -> dict:
            model.eval()
            with torch.inference_mode():
                scores = np.concatenate([
                    scorer.scores(dev_pairs[i : i + recipe.eval_batch_size])[0].cpu().numpy()
                    for i in range(0, len(dev_pairs), recipe.eval_batch_size)
                ])  # fmt: skip
            model.train()
            return (metric_fn or default_metric_fn)(_ranking_run(scores, keys), qrels)

        selection = DevSelection(recipe, total, evaluate, _trainable(model))
    _reset_peak(device)
    model.train()
    done = False
    for epoch in range(recipe.num_epochs if not recipe.max_steps else 10**9):
        tic = time.perf_counter()
        eval_before = selection.eval_time if selection is not None else 0.0
        acc_n, acc_loss = 0, 0.0
        optimizer.zero_grad(set_to_none=True)
        for mi, batch in enumerate(batcher.batches(epoch)):
            scores, n_tokens = scorer.scores(batch.pairs)
            labels = torch.tensor(batch.labels, device=scores.device)
            teacher = torch.tensor(batch.teacher, device=scores.device) if batch.teacher is not None else None
            loss = torch_loss(recipe.loss, scores, labels, teacher, batch.group_size, recipe.pos_weight,
                              recipe.temperature)  # fmt: skip
            (loss * batch.n_examples).backward()  # example-weighted: the sum is divided by acc_n at the update
            acc_n += batch.n_examples
            acc_loss += float(loss.detach()) * batch.n_examples
            tokens += n_tokens
            last = mi == micro_per_epoch - 1
            if (mi + 1) % accum != 0 and not last:
                continue
            for _, p in params:
                if p.grad is not None:
                    p.grad /= acc_n
            norm = torch.nn.utils.clip_grad_norm_([p for _, p in params], recipe.max_grad_norm or float("inf"))
            lr = lr_at(step, recipe.learning_rate, total, warmup, recipe.lr_scheduler)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            history.append({"step": step, "loss": acc_loss / acc_n, "lr": lr, "grad_norm": float(norm)})
            acc_n, acc_loss = 0, 0.0
            if selection is not None and selection.due(step, epoch_end=last):
                selection.run(step)
            if step >= total:
                done = True
                break
        train_time += time.perf_counter() - tic - ((selection.eval_time if selection is not None else 0.0) - eval_before)
        if done:
            break
    peak, measure = _peak_memory(device)
    metrics = selection.finish() if selection is not None else None
    model.eval()
    final = Path(recipe.output_dir) / "final"
    model.save_pretrained(str(final))
    tokenizer.save_pretrained(str(final))
    return {
        "model": model,
        "scorer": scorer,
        "output_dir": str(final),
        "steps": step,
        "total_steps_planned": total,
        "wall_time_s": time.perf_counter() - wall,
        "train_time_s": train_time,
        "train_tokens": tokens,
        "tokens_per_s": tokens / train_time if train_time else None,
        "peak_memory_bytes": peak,
        "peak_memory_measure": measure,
        "final_metrics": metrics,
        "train_loss": history[-1]["loss"] if history else None,
        "history": history,
        "device": device,
        **(selection.summary() if selection is not None else {}),
    }
