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
  examples and added to ``acc`` (the running sum; None for the update's first micro-batch; with the flat AdamW
  the gradients are one vector, :meth:`FlatAdam.flatten`);
- ``apply(acc, n_total)``: the mean gradient, clipped to ``max_grad_norm``, and the AdamW update; returns the norm
  before clipping and the learning rate used. The update runs on one flat vector per optimizer group
  (:class:`FlatAdam`, the optimizer's own ``apply_single``; ``MLX_CROSS_ENCODER_TRAIN_FLAT_ADAM=0``: tensor by
  tensor as ``optimizer.update`` does).

Example counts are Python ints, so compile treats them as constants (one trace per distinct count: the last,
smaller batch of an epoch adds one). Widths are padded to a multiple of 32 on a GPU, so a run traces a few shapes.

``MLX_CROSS_ENCODER_TRAIN_COMPILE``: ``auto`` (default: compiled on a GPU, plain on the CPU, where a batch's
width is its longest row, so nearly every step would be a new shape to trace), ``1`` (always), ``0`` (never).
The compiled path runs each micro-batch on one stream (the CPU-stream split is the plain path's).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from functools import partial

import mlx.core as mx
import mlx.optimizers as optim
from mlx.utils import tree_flatten, tree_map, tree_unflatten

#: environment variable: "auto" (GPU only), "1" (always) or "0" (never)
COMPILE_ENV_VAR = "MLX_CROSS_ENCODER_TRAIN_COMPILE"
#: environment variable: "0" turns the compiled step's flat AdamW (:class:`FlatAdam`) off (tensor by tensor)
FLAT_ENV_VAR = "MLX_CROSS_ENCODER_TRAIN_FLAT_ADAM"


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


def _leaf(tree, path: str):
    """The node of a nested dict/list tree at a dotted ``tree_flatten`` path."""
    node = tree
    for part in path.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


class FlatAdam:
    """The update of an Adam/AdamW ``MultiOptimizer`` (``schedule.make_optimizer``) computed on one flat vector per
    optimizer group instead of tensor by tensor, with the optimizer's own ``apply_single`` (same formulas), its
    state kept per tensor (what checkpoints save) and the global-norm clipping of ``optim.clip_grad_norm``.

    Per tensor, MLX's AdamW is a chain of ~20 small ops (moments, bias-correction scalars, decay); on a GPU each
    is a kernel, ~2,000 per update for MiniLM-L6's 105 tensors. Flat, an update is the gradients' concatenation
    (one copy per tensor, in ``accumulate``) and a dozen kernels over the vectors: the parameters and moments stay
    flat from update to update (``buffers``, part of the compiled state), the model's tensors and the optimizer's
    per-tensor ``m``/``v`` (what checkpoints save) are views into them. Used only when every trainable tensor has
    one dtype and every sub-optimizer is an Adam (:meth:`supports`)."""

    def __init__(self, model, optimizer):
        self.optimizer = optimizer
        subs = optimizer.optimizers if isinstance(optimizer, optim.MultiOptimizer) else [optimizer]
        filters = optimizer.filters if isinstance(optimizer, optim.MultiOptimizer) else [lambda *a: True]
        groups: list[list[str]] = [[] for _ in subs]
        for key, value in tree_flatten(model.trainable_parameters()):
            groups[next(i for i, fn in enumerate(filters) if fn(key, value))].append(key)
        self.groups = list(zip(subs, groups))  # empty groups too: their step and schedule advance as well
        self.keys = [k for _, keys in self.groups for k in keys]
        # each group's parameters and moments as flat vectors, kept from update to update (compiled state): the
        # model's tensors and the optimizer's per-tensor m/v are views into the latest ones, so an update copies
        # only the gradients into one vector. Built from the tensors as they are now (after any resume).
        params = dict(tree_flatten(model.trainable_parameters()))
        self.shapes = {k: params[k].shape for k in self.keys}
        self.buffers: list[dict[str, mx.array]] = []
        for o, keys in self.groups:
            if keys:
                st = [_leaf(o.state, k) for k in keys]
                self.buffers.append(
                    {
                        "p": mx.concatenate([params[k].reshape(-1) for k in keys]),
                        "m": mx.concatenate([x["m"].reshape(-1) for x in st]),
                        "v": mx.concatenate([x["v"].reshape(-1) for x in st]),
                    }
                )
        mx.eval(self.buffers)

    @staticmethod
    def supports(model, optimizer) -> bool:
        subs = optimizer.optimizers if isinstance(optimizer, optim.MultiOptimizer) else [optimizer]
        params = tree_flatten(model.trainable_parameters())
        return bool(params) and len({v.dtype for _, v in params}) == 1 and all(isinstance(o, optim.Adam) for o in subs)

    def flatten(self, grads: dict) -> mx.array:
        """The gradient tree as one vector, tensors in the update's order (one copy per tensor)."""
        flat_g = dict(tree_flatten(grads))
        return mx.concatenate([flat_g[k].reshape(-1) for k in self.keys])

    def __call__(self, model, g: mx.array, max_grad_norm: float | None, divisor) -> mx.array:
        """Update ``model`` with the flat gradient ``g / divisor`` (:meth:`flatten`), clipped; returns the norm
        before clipping (0 without clipping)."""
        g = g / divisor
        norm = mx.array(0.0)
        if max_grad_norm:  # optim.clip_grad_norm's arithmetic, over one vector
            norm = mx.sqrt(mx.square(g.astype(mx.float32) if g.dtype == mx.float16 else g).sum())
            g = (g * mx.minimum(max_grad_norm / (norm + 1e-6), 1.0)).astype(g.dtype)
        updated, start, buffers = [], 0, iter(self.buffers)
        for o, keys in self.groups:
            o.apply_gradients({}, {})  # the schedule and step bookkeeping that apply_gradients does first
            if not keys:
                continue
            buf = next(buffers)
            n = buf["p"].size
            state = {"m": buf["m"], "v": buf["v"]}
            buf["p"] = o.apply_single(g[start : start + n], buf["p"], state)
            buf["m"], buf["v"] = state["m"], state["v"]
            offset = 0
            for k in keys:
                shape = self.shapes[k]
                size = math.prod(shape)
                leaf = _leaf(o.state, k)
                leaf["m"] = buf["m"][offset : offset + size].reshape(shape)
                leaf["v"] = buf["v"][offset : offset + size].reshape(shape)
                updated.append((k, buf["p"][offset : offset + size].reshape(shape)))
                offset += size
            start += n
        model.update(tree_unflatten(updated))
        return norm


def flat_adam_enabled() -> bool:
    """Whether the compiled step updates on one flat vector (``MLX_CROSS_ENCODER_TRAIN_FLAT_ADAM``, default 1)."""
    raw = os.environ.get(FLAT_ENV_VAR, "1").strip().lower() or "1"
    if raw not in ("0", "1"):
        raise ValueError(f"{FLAT_ENV_VAR}={raw!r}: expected 1 or 0")
    return raw == "1"


class CompiledStep:
    """The compiled ``accumulate`` and ``apply`` of one ``train()`` call (see the module docstring).

    Built after the optimizer is initialised and any checkpoint is loaded: the compiled functions capture the
    model's, the optimizer's and the random generator's state trees as they are then."""

    def __init__(
        self,
        model,
        optimizer,
        value_and_grad: Callable,
        max_grad_norm: float | None,
        flat_optimizer: bool | None = None,
    ):
        flat_optimizer = flat_adam_enabled() if flat_optimizer is None else flat_optimizer
        flat = FlatAdam(model, optimizer) if flat_optimizer and FlatAdam.supports(model, optimizer) else None
        state = [model.state, optimizer.state, mx.random.state, flat.buffers if flat is not None else []]

        @partial(mx.compile, inputs=state, outputs=state)
        def accumulate(inputs, labels, teacher, group_size, n, acc):
            loss, grads = value_and_grad(inputs, labels, teacher, group_size)
            if flat is not None:  # one vector: the weighting and the sum are one kernel each
                weighted = flat.flatten(grads) * n
                return loss * n, weighted if acc is None else acc + weighted
            weighted = tree_map(lambda g: g * n, grads)
            if acc is not None:
                weighted = tree_map(lambda a, g: a + g, acc, weighted)
            return loss * n, weighted

        @partial(mx.compile, inputs=state, outputs=state)
        def apply(acc, n_total):
            if flat is not None:
                norm = flat(model, acc, max_grad_norm, n_total)
                return norm, optimizer.learning_rate
            grads = tree_map(lambda a: a / n_total, acc)
            norm = mx.array(0.0)
            if max_grad_norm:
                grads, norm = optim.clip_grad_norm(grads, max_grad_norm)
            optimizer.update(model, grads)
            return norm, optimizer.learning_rate

        self.accumulate = accumulate
        self.apply = apply
        self.clips = bool(max_grad_norm)
        self.flat = flat is not None
