"""Learning-rate schedules (warmup then linear/cosine decay) and the AdamW optimizer setup.

``lr_at`` and ``no_decay`` are plain Python (the PyTorch baselines use them too); MLX is imported only by the
functions that build MLX objects.
"""

from __future__ import annotations

import math

from .settings import LR_SCHEDULERS as SCHEDULERS


def lr_at(
    step: int, base_lr: float, total_steps: int, warmup_steps: int, scheduler: str = "linear", min_lr_ratio: float = 0.0
) -> float:
    """Learning rate of update ``step`` (0-based).

    Warmup: ``base_lr * (step + 1) / warmup_steps`` for the first ``warmup_steps`` updates (no wasted zero-lr
    update), then decay from ``base_lr`` towards ``min_lr_ratio * base_lr`` over the remaining updates:
    linearly, along a half cosine, or not at all (``constant``).
    """
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if scheduler == "constant":
        return base_lr
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    if scheduler == "linear":
        factor = 1.0 - progress
    elif scheduler == "cosine":
        factor = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        raise ValueError(f"unknown lr scheduler {scheduler!r}; use one of {SCHEDULERS}")
    return base_lr * (min_lr_ratio + (1.0 - min_lr_ratio) * factor)


def make_schedule(
    base_lr: float, total_steps: int, warmup_steps: int, scheduler: str = "linear", min_lr_ratio: float = 0.0
):
    """The schedule as an ``mlx.optimizers`` callable of the optimizer's step counter."""
    import mlx.core as mx

    if scheduler not in SCHEDULERS:
        raise ValueError(f"unknown lr scheduler {scheduler!r}; use one of {SCHEDULERS}")
    table = mx.array(
        [lr_at(s, base_lr, total_steps, warmup_steps, scheduler, min_lr_ratio) for s in range(total_steps + 1)],
        dtype=mx.float32,
    )

    def schedule(step):
        return table[mx.minimum(step, total_steps).astype(mx.int32)]

    return schedule


def no_decay(path: str, _param=None) -> bool:
    """Parameters exempt from weight decay, as in transformers' Trainer: biases and LayerNorm/RMSNorm weights."""
    leaf = path.rsplit(".", 1)[-1]
    return leaf == "bias" or "norm" in path.lower()


def make_optimizer(schedule, weight_decay: float, betas=(0.9, 0.999), eps: float = 1e-8):
    """AdamW with PyTorch's semantics (bias correction on, no decay on biases and norms): an
    ``mlx.optimizers.MultiOptimizer`` of a no-decay AdamW (for ``no_decay`` paths) and a decayed one."""
    import mlx.optimizers as optim

    decayed = optim.AdamW(
        learning_rate=schedule, betas=list(betas), eps=eps, weight_decay=weight_decay, bias_correction=True
    )
    plain = optim.AdamW(learning_rate=schedule, betas=list(betas), eps=eps, weight_decay=0.0, bias_correction=True)
    return optim.MultiOptimizer([plain, decayed], [no_decay])
