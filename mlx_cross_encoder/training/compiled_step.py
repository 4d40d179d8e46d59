"""The MLX trainers' step as compiled functions (``mx.compile``), used on a GPU by default.

The plain step (``RerankerTrainerBase._accumulate`` + ``_update``) builds the graph op by op every step: the
forward and backward pass, then per parameter the example weighting, the division by the examples, the global-norm
clipping and AdamW (~12 elementwise ops per tensor: ~1,700 small kernels for MiniLM-L6's ~100 tensors), and
evaluates the micro-batch and the update separately, reading the loss, the norm and the learning rate back one by
one. Compiled, the same computation is traced once per input shape and its elementwise chains are fused, as
MLX's and mlx-lm's training loops do (``state = [model.state, optimizer.state, mx.random.state]`` as the compiled
functions' implicit inputs and outputs).

Two compiled functions, the same arithmetic as the plain path (``test_training_compiled`` checks losses and
parameters after several updates against it):

- ``accumulate(inputs, labels, teacher, n, acc)``: the micro-batch's loss and gradients, weighted by its ``n``
  examples and added to ``acc`` (the running sum; None for the update's first micro-batch);
- ``apply(acc, n_total)``: the mean gradient, clipped to ``max_grad_norm``, and the AdamW update; returns the norm
  before clipping and the learning rate used.

Example counts are Python ints, so compile treats them as constants (one trace per distinct count: the last,
smaller batch of an epoch adds one). Widths are padded to a multiple of 32 on a GPU, so a run traces a few shapes.

``MLX_CROSS_ENCODER_TRAIN_COMPILE``: ``auto`` (default: compiled on a GPU, plain on the CPU, where a batch's
width is its longest row, so nearly every step would be a new shape to trace), ``1`` (always), ``0`` (never).
The compiled path runs each micro-batch on one stream (the CPU-stream split is the plain path's).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial

import mlx.core as mx
import mlx.optimizers as optim
from mlx.utils import tree_map

#: environment variable: "auto" (GPU only), "1" (always) or "0" (never)
COMPILE_ENV_VAR = "MLX_CROSS_ENCODER_TRAIN_COMPILE"


def compile_enabled() -> bool:
    """Whether the trainers use :class:`CompiledStep` (``MLX_CROSS_ENCODER_TRAIN_COMPILE``, see the module doc)."""
    raw = os.environ.get(COMPILE_ENV_VAR, "auto").strip().lower() or "auto"
    if raw == "auto":
        return mx.default_device().type == mx.gpu
    if raw in ("1", "true", "on"):
        return True
    if raw in ("0", "false", "off"):
        return False
    raise ValueError(f"{COMPILE_ENV_VAR}={raw!r}: expected auto, 1 or 0")


class CompiledStep:
    """The compiled ``accumulate`` and ``apply`` of one ``train()`` call (see the module docstring).

    Built after the optimizer is initialised and any checkpoint is loaded: the compiled functions capture the
    model's, the optimizer's and the random generator's state trees as they are then."""

    def __init__(self, model, optimizer, value_and_grad: Callable, max_grad_norm: float | None):
        state = [model.state, optimizer.state, mx.random.state]

        @partial(mx.compile, inputs=state, outputs=state)
        def accumulate(inputs, labels, teacher, group_size, n, acc):
            loss, grads = value_and_grad(inputs, labels, teacher, group_size)
            weighted = tree_map(lambda g: g * n, grads)
            if acc is not None:
                weighted = tree_map(lambda a, g: a + g, acc, weighted)
            return loss * n, weighted

        @partial(mx.compile, inputs=state, outputs=state)
        def apply(acc, n_total):
            grads = tree_map(lambda a: a / n_total, acc)
            norm = mx.array(0.0)
            if max_grad_norm:
                grads, norm = optim.clip_grad_norm(grads, max_grad_norm)
            optimizer.update(model, grads)
            return norm, optimizer.learning_rate

        self.accumulate = accumulate
        self.apply = apply
        self.clips = bool(max_grad_norm)
