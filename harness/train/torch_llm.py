"""PyTorch baseline for LLM yes/no rerankers: transformers causal LM + peft LoRA, in a loop that follows the MLX
trainer update for update.

The model is scored as ``Qwen3Reranker`` scores (:class:`LLMRerankerScorer`: the official prompt tokenized as
the reranker does, right padding, ``logit(yes) - logit(no)`` at the last real token). The loop takes the MLX
trainer's exact batches (``mlx_cross_encoder.training.data.Batcher``: same seed, same order and negatives), its
example-weighted gradient accumulation (the update's gradient is the mean over all its examples, so micro-batches
of unequal size count by their size), global-norm clipping, AdamW with no decay on biases and norms, and its
learning-rate schedule (``lr_at``). ``lora_init`` starts the LoRA matrices from an MLX adapter (mlx-lm layout),
so both frameworks can be compared from one initialization.
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


class LLMRerankerScorer:
    """A transformers causal LM scored as ``Qwen3Reranker`` scores: official prompt, right padding, last token."""

    def __init__(self, model, tokenizer, max_length: int = 8192, instruction: str | None = None, template=None):
        from mlx_cross_encoder.llm_template import QWEN3_TEMPLATE

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


def _model(model_name_or_path, settings: TrainingSettings, fine_tune: str, device: str, dtype: str, lora_init):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_name_or_path), dtype=getattr(torch, dtype)).to(device)
    if fine_tune == "full":
        if lora_init is not None:
            raise ValueError("lora_init needs fine_tune_type='lora'")
        return model
    from peft import LoraConfig, get_peft_model

    # the MLX trainer's targets (mlx-lm module paths inside a block; peft matches them as name suffixes)
    from mlx_cross_encoder.training.llm import DEFAULT_LLM_TARGETS

    model = get_peft_model(
        model,
        LoraConfig(
            r=settings.lora_rank,
            lora_alpha=settings.lora_alpha,
            lora_dropout=settings.lora_dropout,
            target_modules=list(settings.lora_target_modules or DEFAULT_LLM_TARGETS),
        ),
    )
    if lora_init is not None:
        load_lora_init(model, lora_init)
    return model


class _Loop:
    """The update loop (what the MLX trainer's ``train`` does, in torch); ``history`` holds one record per update."""

    def __init__(self, scorer, params, settings: TrainingSettings, batcher, total: int, selection):
        self.scorer, self.params, self.settings, self.batcher = scorer, params, settings, batcher
        self.total, self.selection = total, selection
        self.optimizer = adamw(params, settings)
        self.warmup = settings.warmup_updates(total)
        self.history: list[dict[str, Any]] = []
        self.step, self.tokens, self.train_time = 0, 0, 0.0

    def micro_batch(self, batch) -> float:
        """Forward and backward of one micro-batch; its gradient is added weighted by its number of examples."""
        import torch

        s = self.settings
        scores, n_tokens = self.scorer.scores(batch.pairs)
        labels = torch.tensor(batch.labels, device=scores.device)
        teacher = torch.tensor(batch.teacher, device=scores.device) if batch.teacher is not None else None
        loss = torch_loss(
            s.loss, scores, labels, teacher, batch.group_size, s.pos_weight, s.temperature, s.teacher_temperature
        )
        (loss * batch.n_examples).backward()  # example-weighted: the sum is divided by the update's examples
        self.tokens += n_tokens
        return float(loss.detach()) * batch.n_examples

    def update(self, n_examples: int, loss_sum: float) -> None:
        import torch

        from mlx_cross_encoder.training.schedule import lr_at

        s = self.settings
        for _, p in self.params:
            if p.grad is not None:
                p.grad /= n_examples
        max_norm = s.max_grad_norm or float("inf")
        norm = torch.nn.utils.clip_grad_norm_([p for _, p in self.params], max_norm)
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(self.step, s.learning_rate, self.total, self.warmup, s.lr_scheduler)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.history.append(
            {
                "step": self.step,
                "loss": loss_sum / n_examples,
                "lr": float(self.optimizer.param_groups[0]["lr"]),
                "grad_norm": float(norm),
            }
        )

    def epoch(self, epoch: int) -> bool:
        """One epoch (or what is left of the updates); True when the last update is done."""
        accum, micro_per_epoch = self.settings.gradient_accumulation_steps, len(self.batcher)
        acc_n, acc_loss = 0, 0.0
        self.optimizer.zero_grad(set_to_none=True)
        for mi, batch in enumerate(self.batcher.batches(epoch)):
            acc_loss += self.micro_batch(batch)
            acc_n += batch.n_examples
            last = mi == micro_per_epoch - 1
            if (mi + 1) % accum != 0 and not last:
                continue
            self.update(acc_n, acc_loss)
            acc_n, acc_loss = 0, 0.0
            if self.selection is not None and self.selection.due(self.step, epoch_end=last):
                self.selection.run(self.step)
            if self.step >= self.total:
                return True
        return False

    def run(self) -> None:
        s = self.settings
        for epoch in range(s.num_epochs if not s.max_steps else 10**9):
            tic = time.perf_counter()
            eval_before = self.selection.eval_time if self.selection is not None else 0.0
            done = self.epoch(epoch)
            eval_time = (self.selection.eval_time if self.selection is not None else 0.0) - eval_before
            self.train_time += time.perf_counter() - tic - eval_time
            if done:
                break


def _dev_selection(scorer: LLMRerankerScorer, eval_data, settings: TrainingSettings, total: int, metric_fn):
    """The :class:`DevSelection` of a training with dev data (None without): the dev lists scored in batches of
    ``eval_batch_size`` by the model in eval mode, ranked, and measured with ``metric_fn``."""
    import torch

    if eval_data is None:
        return None
    dev_pairs, keys, qrels = dev_pairs_of(eval_data)
    model, size = scorer.model, settings.eval_batch_size

    def evaluate() -> dict:
        model.eval()
        with torch.inference_mode():
            scores = np.concatenate(
                [scorer.scores(dev_pairs[i : i + size])[0].cpu().numpy() for i in range(0, len(dev_pairs), size)]
            )
        model.train()
        return (metric_fn or default_metric_fn)(ranking_run(scores, keys), qrels)

    return DevSelection(settings, total, evaluate, trainable_parameters(model))


def train_llm_reranker_torch(
    model_name_or_path: str | os.PathLike,
    train_data,
    eval_data=None,
    settings: Any = None,
    *,
    metric_fn: MetricFn | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    instruction: str | None = None,
    lora_init: str | os.PathLike | None = None,
    **overrides,
) -> dict[str, Any]:
    """LoRA (or full) fine-tuning of an LLM yes/no reranker with transformers + peft; see the module docstring.

    ``settings``: a ``TrainingSettings`` (a ``Qwen3RerankerConfig`` works, its ``instruction`` included), a dict,
    or None, with ``overrides`` on top. Returns the summary of :func:`.torch_encoder.train_cross_encoder_torch`
    plus ``"scorer"`` (an :class:`LLMRerankerScorer` of the trained model) and ``"history"`` (per update: loss,
    the learning rate the optimizer used, grad norm before clipping); ``output_dir/final`` holds the peft adapter
    (or the full model).
    """
    from transformers import AutoTokenizer

    wall = time.perf_counter()
    instruction = instruction if instruction is not None else getattr(settings, "instruction", None)
    settings = settings_of(settings, **overrides)
    fine_tune = settings.fine_tune("llm")
    seed_everything(settings.seed)
    data = training_data()
    batcher = data.Batcher(
        data.load_groups(train_data), settings.loss, settings.batch_size, settings.group_size, settings.seed
    )
    tokenizer = AutoTokenizer.from_pretrained(str(model_name_or_path))
    model = _model(model_name_or_path, settings, fine_tune, device, dtype, lora_init)
    scorer = LLMRerankerScorer(model, tokenizer, settings.max_length or 8192, instruction)
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    total = total_updates(len(batcher), settings)
    selection = _dev_selection(scorer, eval_data, settings, total, metric_fn)
    reset_peak(device)
    model.train()
    loop = _Loop(scorer, params, settings, batcher, total, selection)
    loop.run()
    peak, measure = peak_memory(device)
    metrics = selection.finish() if selection is not None else None
    model.eval()
    final = Path(settings.output_dir) / "final"
    model.save_pretrained(str(final))
    tokenizer.save_pretrained(str(final))
    return {
        "model": model,
        "scorer": scorer,
        "output_dir": str(final),
        "steps": loop.step,
        "total_steps_planned": total,
        "wall_time_s": time.perf_counter() - wall,
        "train_time_s": loop.train_time,
        "train_tokens": loop.tokens,
        "tokens_per_s": loop.tokens / loop.train_time if loop.train_time else None,
        "peak_memory_bytes": peak,
        "peak_memory_measure": measure,
        "final_metrics": metrics,
        "train_loss": loop.history[-1]["loss"] if loop.history else None,
        "history": loop.history,
        "optimizer": loop.optimizer,
        "device": device,
        **(selection.summary() if selection is not None else {}),
    }
