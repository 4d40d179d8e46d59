"""PyTorch baseline for cross-encoders: sentence-transformers' ``CrossEncoderTrainer``, full or LoRA (peft).

:func:`train_cross_encoder_torch` takes the MLX trainers' ``TrainingSettings``. LoRA puts the classification head
in ``modules_to_save`` so that it trains and is saved and reloaded with the adapter (sentence-transformers'
``add_adapter`` alone leaves a freshly initialised head frozen and unsaved).

What the MLX trainer does is given to the Trainer: its AdamW groups (no decay on biases and norms), its
learning-rate schedule (``mlx_schedule``: no zero-lr first update), no dropout in the base model (the MLX encoders
have none; LoRA dropout stays), its micro-batches in their order, epoch by epoch (with the negatives the MLX
trainer samples for each epoch; :class:`.torch_encoder_data.MLXBatches`), and example-weighted accumulation (each micro-batch's mean
loss weighted by its examples, where the Trainer would weight micro-batches alike). From the same weights (LoRA:
``lora_init``) both make the same updates: tested update for update, full and LoRA, with micro-batches of unequal
size in one update. (The LLM baseline, :mod:`.torch_llm`, is a plain loop that does the same.)
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
    load_lora_init,
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
from .torch_encoder_data import MLXBatches, encoder_dataset


def group_softmax_cross_entropy_loss(
    model, temperature: float = 1.0, loss: str = "listwise", teacher_temperature: float = 1.0
):
    """Listwise loss module for ``CrossEncoderTrainer``: columns (query, doc_0 .. doc_{G-1}).

    ``listwise``: positive first, the loss is ``-log softmax(scores / temperature)[0]`` per row (the MLX
    ``listwise`` loss, FlagEmbedding's). ``listwise_kl``: the row's label is the list of the G teacher scores, the
    loss is ``KL(softmax(teacher / teacher_temperature) || softmax(scores / temperature))`` (the MLX
    ``listwise_kl``)."""
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
            teacher = None
            if loss == "listwise_kl":
                rows = labels if isinstance(labels, torch.Tensor) else torch.stack([torch.as_tensor(r) for r in labels])
                teacher = rows.to(device=scores.device, dtype=torch.float32).view_as(scores)
            return torch_loss(
                loss, scores, None, teacher, len(columns), temperature=self.temperature,
                teacher_temperature=teacher_temperature,
            )  # fmt: skip

        def get_config_dict(self):
            return {"temperature": self.temperature, "loss": loss, "teacher_temperature": teacher_temperature}

    return GroupSoftmaxCrossEntropyLoss()


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
    return group_softmax_cross_entropy_loss(model, settings.temperature, settings.loss, settings.teacher_temperature)


def add_lora_with_head(model, settings: TrainingSettings, head: tuple[str, ...] = ("classifier",)) -> None:
    """peft LoRA on a sentence-transformers ``CrossEncoder`` whose head trains and is saved with the adapter.

    The transformers model inside the ``CrossEncoder`` is wrapped with ``peft.get_peft_model`` directly
    (``CrossEncoder.add_adapter`` goes through transformers' integration, which also requires a newer peft).
    """
    from peft import LoraConfig, get_peft_model

    from mlx_cross_encoder.training.lora import DEFAULT_ENCODER_TARGETS  # the MLX trainer's targets: one list

    config = LoraConfig(
        r=settings.lora_rank,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=list(settings.lora_target_modules or DEFAULT_ENCODER_TARGETS),
        modules_to_save=list(head),
    )
    model[0].model = get_peft_model(model[0].model, config)


def load_cross_encoder_torch(
    base_model: str | os.PathLike,
    adapter_dir: str | os.PathLike | None = None,
    device: str = "cpu",
    max_length: int | None = None,
):
    """A ``CrossEncoder`` of ``base_model`` with the peft adapter (LoRA + trained head) of ``adapter_dir``."""
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(base_model), device=device, max_length=max_length)
    if adapter_dir is not None:
        from peft import PeftModel

        model[0].model = PeftModel.from_pretrained(model[0].model, str(adapter_dir)).to(device)
    model.eval()
    return model


def _training_arguments(settings: TrainingSettings, total: int, out: Path, device: str):
    """``CrossEncoderTrainingArguments`` with the settings (optimizer and schedule are given to the Trainer)."""
    from sentence_transformers.cross_encoder import CrossEncoderTrainingArguments

    return CrossEncoderTrainingArguments(
        output_dir=str(out),
        num_train_epochs=settings.num_epochs,
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
    )


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
            scores = model.predict(
                dev_pairs,
                batch_size=settings.eval_batch_size,
                activation_fn=torch.nn.Identity(),
                show_progress_bar=False,
            )
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


def _trainer_class():
    from sentence_transformers.cross_encoder import CrossEncoderTrainer

    class MLXOrderTrainer(CrossEncoderTrainer):
        """``CrossEncoderTrainer`` fed the MLX trainer's micro-batches in its order (no shuffling of its own)."""

        def __init__(self, batches: MLXBatches, *args, **kwargs):
            self.mlx_batches = batches
            super().__init__(*args, **kwargs)

        def get_batch_sampler(self, dataset, batch_size, drop_last, valid_label_columns=None, generator=None, seed=0):
            return self.mlx_batches  # only the training set is batched here (no eval_dataset is given)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            weight = self.mlx_batches.next_weight() if model.training else 1.0
            return (out[0] * weight, *out[1:]) if return_outputs else out * weight

    return MLXOrderTrainer


def _MLXOrderTrainer(batches, **kwargs):  # noqa: N802 (builds the class on first use: sentence-transformers is heavy)
    return _trainer_class()(batches, **kwargs)


def _cross_encoder(model_name_or_path, settings: TrainingSettings, fine_tune: str, device: str, lora_init):
    """The ``CrossEncoder`` to train: dropout off (the MLX encoders have none: the same function trains), LoRA with
    its head (started from ``lora_init`` when given) or every weight."""
    import torch
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(model_name_or_path), num_labels=1, max_length=settings.max_length, device=device)
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    if fine_tune == "lora":
        add_lora_with_head(model, settings)
        if lora_init is not None:
            load_lora_init(model[0].model, lora_init)
    elif fine_tune != "full":
        raise ValueError(f"fine_tune_type must be 'full' or 'lora', got {fine_tune!r}")
    return model


def train_cross_encoder_torch(
    model_name_or_path: str | os.PathLike,
    train_data,
    eval_data=None,
    settings: Any = None,
    *,
    metric_fn: MetricFn | None = None,
    device: str = "cpu",
    lora_init: str | os.PathLike | None = None,
    **overrides,
) -> dict[str, Any]:
    """Fine-tune a sentence-transformers ``CrossEncoder`` with ``CrossEncoderTrainer``; see the module docstring.

    ``lora_init``: a folder whose ``adapters.safetensors`` holds the starting LoRA matrices (mlx-lm layout,
    transformers module names; ``torch_common.load_lora_init``), e.g. the MLX trainer's initial adapter renamed
    with the MLX model's ``hf_weights``.

    Returns ``{"model", "output_dir", "steps", "wall_time_s", "train_time_s", "train_tokens", "tokens_per_s",
    "peak_memory_bytes", "peak_memory_measure", "final_metrics", "train_loss", "log_history", "device"}``;
    ``output_dir/final`` holds the model (full) or the adapter with its head (LoRA).
    """
    wall = time.perf_counter()
    settings = settings_of(settings, **overrides)
    fine_tune = settings.fine_tune("cross_encoder")
    seed_everything(settings.seed)
    groups = training_data().load_groups(train_data)
    model = _cross_encoder(model_name_or_path, settings, fine_tune, device, lora_init)
    dataset, batches, pairs, micro_per_epoch = encoder_dataset(groups, settings)
    total = total_updates(micro_per_epoch, settings)
    out = Path(settings.output_dir)
    args = _training_arguments(settings, total, out, device)
    selection, callbacks = _dev_selection(model, eval_data, settings, total, metric_fn)
    optimizer = adamw([(n, p) for n, p in model.named_parameters() if p.requires_grad], settings)
    trainer = _MLXOrderTrainer(
        batches,
        model=model,
        args=args,
        train_dataset=dataset,
        loss=_encoder_loss(model, settings),
        callbacks=callbacks,
        optimizers=(optimizer, mlx_schedule(optimizer, settings, total)),
    )
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
