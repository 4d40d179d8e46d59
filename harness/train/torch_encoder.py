"""PyTorch baseline for cross-encoders: sentence-transformers' ``CrossEncoderTrainer``, full or LoRA (peft).

:func:`train_cross_encoder_torch` takes the MLX trainers' :class:`~mlx_cross_encoder.training.settings.TrainingSettings`.
LoRA puts the classification head in ``modules_to_save`` so that it trains and is saved and reloaded with the
adapter (sentence-transformers' ``add_adapter`` alone leaves a freshly initialised head frozen and unsaved). What
the MLX trainer does is given to the Trainer: its AdamW groups (no decay on biases and norms), its learning-rate
schedule (``mlx_schedule``: no zero-lr first update) and no dropout in the base model (the MLX encoders have none;
LoRA dropout stays). The Trainer keeps its own shuffling and its accumulation (mean loss per micro-batch divided
by the accumulation steps, not weighted by examples); grouped losses see one row per (epoch, query) with the
negatives the MLX trainer samples for that epoch, trained as one pass. (The LLM baseline, :mod:`.torch_llm`, is a plain loop that follows the MLX trainer update for update.)
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from mlx_cross_encoder.training.settings import TrainingSettings

from .torch_common import (
    DevSelection,
    MetricFn,
    adamw,
    default_metric_fn,
    dev_pairs_of,
    mlx_schedule,
    peak_memory,
    ranking_run,
    reset_peak,
    seed_everything,
    settings_of,
    torch_loss,
    total_updates,
    trainable_parameters,
    training_data,
)

DEFAULT_ENCODER_TARGETS = ("query", "key", "value", "dense")


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


def _encoder_dataset(groups, settings: TrainingSettings):
    """A ``datasets.Dataset`` in the column layout the chosen loss expects, and the pairs it will score."""
    from datasets import Dataset

    data = training_data()
    if settings.loss in data.POINTWISE_LOSSES:
        b = data.Batcher(groups, settings.loss, settings.batch_size, settings.group_size, settings.seed)
        rows = {"query": [it[0] for it in b.items], "document": [it[1] for it in b.items]}
        rows["label"] = [float(it[3] if settings.loss == "mse" else it[2]) for it in b.items]
        pairs = [(it[0], it[1]) for it in b.items] * settings.num_epochs
        return Dataset.from_dict(rows), pairs, len(b)
    b = data.Batcher(groups, settings.loss, settings.batch_size, settings.group_size, settings.seed)
    k = settings.group_size
    rows: dict[str, list] = {"query": [], **{f"doc_{i}": [] for i in range(k)}, "label": []}
    pairs = []
    for epoch in range(settings.num_epochs):  # the negatives the MLX trainer samples in each epoch
        for batch in b.batches(epoch):
            for g in range(batch.n_examples):
                members = batch.pairs[g * k : (g + 1) * k]
                pairs += members
                rows["query"].append(members[0][0])
                for i, (_, doc) in enumerate(members):
                    rows[f"doc_{i}"].append(doc)
                if settings.loss == "margin_mse":
                    t = batch.teacher[g * k : (g + 1) * k]
                    rows["label"].append([float(t[0] - t[j]) for j in range(1, k)])
                else:
                    rows["label"].append(0.0)
    if settings.loss == "margin_mse":  # MarginMSELoss's columns: query, positive, negative_1..k-1
        rows = {"query": rows["query"], "positive": rows["doc_0"],
                **{f"negative_{i}": rows[f"doc_{i}"] for i in range(1, k)}, "label": rows["label"]}  # fmt: skip
    return Dataset.from_dict(rows), pairs, len(b)


def _encoder_loss(model, settings: TrainingSettings):
    import torch
    from sentence_transformers.cross_encoder import losses

    if settings.loss == "bce":
        pw = None if settings.pos_weight is None else torch.tensor(float(settings.pos_weight))
        return losses.BinaryCrossEntropyLoss(model, pos_weight=pw)
    if settings.loss == "mse":
        return losses.MSELoss(model)
    if settings.loss == "margin_mse":
        return losses.MarginMSELoss(model)
    return group_softmax_cross_entropy_loss(model, settings.temperature)


def add_lora_with_head(model, settings: TrainingSettings, head: tuple[str, ...] = ("classifier",)) -> None:
    """peft LoRA on a sentence-transformers ``CrossEncoder`` whose head trains and is saved with the adapter.

    The transformers model inside the ``CrossEncoder`` is wrapped with ``peft.get_peft_model`` directly
    (``CrossEncoder.add_adapter`` goes through transformers' integration, which also requires a newer peft).
    """
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=settings.lora_rank, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
        target_modules=list(settings.lora_target_modules or DEFAULT_ENCODER_TARGETS), modules_to_save=list(head),
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


def _training_arguments(settings: TrainingSettings, total: int, out: Path, device: str, grouped: bool):
    """``CrossEncoderTrainingArguments`` with the settings (grouped losses: one pass over the rows of every epoch)."""
    from sentence_transformers.cross_encoder import CrossEncoderTrainingArguments

    return CrossEncoderTrainingArguments(
        output_dir=str(out),
        num_train_epochs=1 if grouped else settings.num_epochs,
        max_steps=settings.max_steps or -1,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        learning_rate=settings.learning_rate,  # the optimizer and schedule themselves are given (adamw, mlx_schedule)
        max_grad_norm=settings.max_grad_norm or 0.0,
        seed=settings.seed,
        data_seed=settings.seed,
        logging_steps=settings.logging_steps,
        save_strategy="no",
        report_to="none",
        use_cpu=device == "cpu",
        disable_tqdm=True,
    )  # fmt: skip


def _dev_selection(model, eval_data, settings: TrainingSettings, total: int, metric_fn: MetricFn | None):
    """The :class:`DevSelection` and the Trainer callback that evaluates where the MLX trainer does (none without
    ``eval_data``)."""
    if eval_data is None:
        return None, []
    import torch
    from transformers import TrainerCallback

    dev_pairs, keys, qrels = dev_pairs_of(eval_data)

    def evaluate() -> dict:
        was_training = model.training
        with torch.inference_mode():
            scores = model.predict(dev_pairs, batch_size=settings.eval_batch_size,
                                   activation_fn=torch.nn.Identity(), show_progress_bar=False)  # fmt: skip
        model.train(was_training)
        return (metric_fn or default_metric_fn)(ranking_run(np.asarray(scores), keys), qrels)

    selection = DevSelection(settings, total, evaluate, trainable_parameters(model))

    class DevEvaluation(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if selection.due(state.global_step, epoch_end=False) or state.global_step >= state.max_steps:
                selection.run(state.global_step)

        def on_epoch_end(self, args, state, control, **kwargs):
            if selection.due(state.global_step, epoch_end=True):
                selection.run(state.global_step)

    return selection, [DevEvaluation()]


def train_cross_encoder_torch(
    model_name_or_path: str | os.PathLike,
    train_data,
    eval_data=None,
    settings: Any = None,
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
    from sentence_transformers.cross_encoder import CrossEncoderTrainer

    wall = time.perf_counter()
    settings = settings_of(settings, **overrides)
    fine_tune = settings.fine_tune("cross_encoder")
    seed_everything(settings.seed)
    groups = training_data().load_groups(train_data)
    model = CrossEncoder(str(model_name_or_path), num_labels=1, max_length=settings.max_length, device=device)
    for module in model.modules():  # the MLX encoders have no dropout: train the same function
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    if fine_tune == "lora":
        add_lora_with_head(model, settings)
    elif fine_tune != "full":
        raise ValueError(f"fine_tune_type must be 'full' or 'lora', got {fine_tune!r}")
    dataset, pairs, micro_per_epoch = _encoder_dataset(groups, settings)
    grouped = settings.loss not in training_data().POINTWISE_LOSSES
    total = total_updates(micro_per_epoch, settings)
    out = Path(settings.output_dir)
    args = _training_arguments(settings, total, out, device, grouped)
    selection, callbacks = _dev_selection(model, eval_data, settings, total, metric_fn)
    optimizer = adamw([(n, p) for n, p in model.named_parameters() if p.requires_grad], settings)
    trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=dataset, loss=_encoder_loss(model, settings),
                                  callbacks=callbacks, optimizers=(optimizer, mlx_schedule(optimizer, settings, total)))
    reset_peak(device)
    output = trainer.train()
    peak, measure = peak_memory(device)
    # HF's train_runtime includes the callbacks: the dev evaluations are taken out, as the MLX trainer does
    train_time = float(output.metrics["train_runtime"]) - (selection.eval_time if selection else 0.0)
    tokens = _count_tokens(model.tokenizer, pairs, model.max_seq_length)
    metrics = selection.finish() if selection is not None else None
    model.eval()
    final = out / "final"
    if fine_tune == "lora":
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
