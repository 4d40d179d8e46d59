"""The PyTorch twin of ``mlx_cross_encoder.training.infonce``: sentence-transformers' ``MultipleNegativesRankingLoss``
on a ``SentenceTransformer``, with the MLX trainer's recipe update for update.

Same batches (``infonce.batch_order``: seeded shuffle, no two examples of one query in a batch, full batches only),
same document layout (positives, then each hard-negative column), the loss computed by
``MultipleNegativesRankingLoss.compute_loss_from_embeddings`` itself, AdamW with the MLX groups (no decay on biases
and norms) and the MLX schedule (``training.schedule.lr_at``: warmup, then linear decay). Dropout is off (the model
stays in eval mode), as MLX encoders have none. A plain loop rather than ``SentenceTransformerTrainer``: the
trainer's sampler and schedule would give each stack different batches and learning rates. With ``evaluate``, the
MLX trainer's checkpoint selection (``infonce.DevSelection`` at ``infonce.eval_points``: step 0, every
``eval_steps``, the last update; the best step's weights restored).

``fine_tune="lora"`` (:func:`add_lora`): PEFT LoRA (``peft.get_peft_model``) on the transformer of the
``SentenceTransformer``, on the MLX trainer's targets (``settings.lora_targets``; a decoder's default ``q_proj/k_proj/v_proj/o_proj``,
an encoder's must be named), ``scaling = alpha / rank``, no dropout, ``A`` from
``infonce.lora_a_init`` keyed by the module's name (a decoder's names are the MLX paths: both stacks start from the
same adapters), ``B = 0``; :func:`merge_lora` folds the adapters into the weights before saving.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from mlx_cross_encoder.training.infonce import (
    DECODER_LORA_TARGETS,
    DevSelection,
    InfoNCEExample,
    InfoNCESettings,
    batch_texts,
    eval_points,
    lora_a_init,
    training_batches,
)
from mlx_cross_encoder.training.schedule import lr_at, no_decay


def _features(model, texts: list[str]):
    features = model.preprocess(texts)
    return {k: v.to(model.device) if hasattr(v, "to") else v for k, v in features.items()}


def add_lora(model, settings: InfoNCESettings) -> list[str]:
    """PEFT LoRA on ``model[0].auto_model`` (frozen base; trainable ``lora_A``/``lora_B``); returns the wrapped
    module names (relative to the transformer)."""
    import torch
    from peft import LoraConfig, get_peft_model

    transformer = model[0]
    names = [n for n, _ in transformer.auto_model.named_modules()]
    is_decoder = any(n.endswith("." + t) for n in names for t in DECODER_LORA_TARGETS)  # a decoder's projections
    if not (settings.lora_targets or is_decoder):
        raise ValueError("an encoder's LoRA twin needs lora_targets named (recipe lora_target_modules, as the MLX "
                         "model file's lora_targets); a decoder's default to q_proj/k_proj/v_proj/o_proj")  # fmt: skip
    targets = list(settings.lora_targets or DECODER_LORA_TARGETS)
    config = LoraConfig(r=settings.lora_rank, lora_alpha=settings.lora_alpha, target_modules=targets,
                        lora_dropout=0.0, bias="none")  # fmt: skip
    peft_model = get_peft_model(transformer.auto_model, config)
    _set_transformer_model(transformer, peft_model)
    inner = peft_model.base_model.model
    wrapped = []
    with torch.no_grad():
        for name, module in inner.named_modules():
            if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
                a = module.lora_A["default"].weight  # (rank, in)
                a.copy_(torch.from_numpy(lora_a_init(name, a.shape[1], settings.lora_rank, settings.seed).T))
                module.lora_B["default"].weight.zero_()
                wrapped.append(name)
    if not wrapped:
        raise ValueError(f"lora targets {targets} match no module of {type(inner).__name__}")
    return sorted(wrapped)


def merge_lora(model) -> None:
    """Fold PEFT adapters into the transformer's weights (``merge_and_unload``): a plain model to save."""
    transformer = model[0]
    if hasattr(transformer.auto_model, "merge_and_unload"):
        _set_transformer_model(transformer, transformer.auto_model.merge_and_unload())


def _set_transformer_model(transformer, model) -> None:
    """Replace the transformers model of a sentence-transformers ``Transformer`` module (``auto_model`` is a read-only
    view of ``model`` in sentence-transformers 6.x, the attribute itself before)."""
    if isinstance(getattr(type(transformer), "auto_model", None), property):
        transformer.model = model
    else:
        transformer.auto_model = model


def selection(model, evaluate: Callable[[], dict[str, float]], metric: str = "ndcg@10") -> DevSelection:
    """A ``DevSelection`` over ``model``'s trainable weights (copies: torch updates its tensors in place)."""
    import torch

    def snapshot():
        return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    def restore(kept):
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n in kept:
                    p.copy_(kept[n])

    return DevSelection(evaluate, snapshot, restore, metric)


def train_sentence_transformer(
    model,
    examples: list[InfoNCEExample],
    settings: InfoNCESettings,
    evaluate: Callable[[], dict[str, float]] | None = None,
    metric: str = "ndcg@10",
) -> dict[str, Any]:
    """Fine-tuning of ``model`` (a ``SentenceTransformer``) in place, full or LoRA (:func:`add_lora`; the adapters
    stay unmerged: :func:`merge_lora` before saving); returns losses, wall time (dev evaluations excluded),
    tokens/s, peak memory (CUDA only; None on CPU, where PyTorch keeps no peak), the LoRA modules and, with
    ``evaluate``, the checkpoint selection (the best step's weights restored)."""
    import torch
    from sentence_transformers.losses import MultipleNegativesRankingLoss

    torch.manual_seed(settings.seed)
    lora_modules = add_lora(model, settings) if settings.fine_tune == "lora" else None
    loss_fn = MultipleNegativesRankingLoss(model, scale=settings.scale)
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for n, p in params if not no_decay(n)], "weight_decay": settings.weight_decay},
            {"params": [p for n, p in params if no_decay(n)], "weight_decay": 0.0},
        ],
        lr=settings.learning_rate,
        betas=(0.9, 0.999),
        eps=1e-8,
    )
    batches = training_batches(examples, settings)
    total = len(batches)
    if total == 0:
        raise ValueError(f"{len(examples)} examples make no full batch of {settings.batch_size} distinct queries")
    warmup = settings.warmup_steps(total)
    model.eval()  # dropout off: the MLX encoders have none
    cuda = str(model.device).startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats(model.device)
    chooser = selection(model, evaluate, metric) if evaluate is not None else None
    points = set(eval_points(total, settings.eval_steps))
    losses, tokens, step, start = [], 0, 0, time.perf_counter()
    if chooser is not None:
        chooser.run(0)
    step_times = []
    for batch in batches:
        t0 = time.perf_counter()
        queries, docs = batch_texts(examples, batch)
        q_features, d_features = _features(model, queries), _features(model, docs)
        q = model(q_features)["sentence_embedding"]
        d = model(d_features)["sentence_embedding"]
        n = len(queries)
        columns = [q] + [d[i : i + n] for i in range(0, d.shape[0], n)]
        loss = loss_fn.compute_loss_from_embeddings(columns, None)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, settings.learning_rate, total, warmup, "linear")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))  # a host sync: the step's GPU work is inside its time
        step_times.append(time.perf_counter() - t0)
        tokens += int(q_features["attention_mask"].sum()) + int(d_features["attention_mask"].sum())
        step += 1
        if chooser is not None and step in points:
            chooser.run(step)
    if chooser is not None:
        chooser.restore()
    wall = time.perf_counter() - start - (chooser.eval_time_s if chooser else 0.0)
    return {
        "steps": total,
        "losses": losses,
        "wall_s": wall,
        "tokens": tokens,
        "tokens_per_s": tokens / wall if wall else None,
        "peak_memory_mb": torch.cuda.max_memory_allocated(model.device) / 2**20 if cuda else None,
        "selection": chooser.summary() if chooser else None,
        "lora_modules": lora_modules,
        "step_times_s": step_times,
    }
