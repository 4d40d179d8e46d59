"""The MLX trainers' fast step on a GPU: the update on flat vectors (:class:`FlatAdam`), optionally compiled.

The plain step (``RerankerTrainerBase._accumulate_plain`` + ``_update``) builds the graph op by op every step:
MiniLM-L6's forward and backward pass (~2,400 primitives), then per parameter tensor the example weighting, the
division by the examples, the global-norm clipping and AdamW (~4,600 primitives for its 105 tensors; CPU count
with ``mx.export_to_dot``), and evaluates the micro-batch and the update separately. On MLX's CUDA backend each
is a kernel launch: on the H200 (session 6 DIAG) the plain MiniLM step took 101 ms per update after warm-up,
torch 44 ms.

:class:`CompiledStep` does the same arithmetic (``test_training_compiled`` checks losses, norms, learning rates and
parameters after several updates against the plain step) with two functions:

- ``accumulate(inputs, labels, teacher, group_size, n, acc)``: the micro-batch's loss and gradients, weighted by
  its ``n`` examples and added to ``acc`` (None for the update's first micro-batch); with the flat AdamW the
  gradients are one vector (:meth:`FlatAdam.flatten`), so the weighting and the sum are one kernel each;
- ``apply(acc, n_total)``: the mean gradient, clipped to ``max_grad_norm``, and AdamW; returns the norm before
  clipping and the learning rate used. With :class:`FlatAdam` the update is a dozen ops over flat vectors (the
  parameters and moments stay flat; the model's tensors and the optimizer's per-tensor moments are views).

Either may be ``mx.compile``d with ``state = [model.state, optimizer.state, mx.random.state, flat buffers]`` as
implicit inputs and outputs (the pattern of MLX's and mlx-lm's training loops). Compiling fuses elementwise chains,
but on MLX's CUDA backend every new fused kernel is compiled by NVRTC at run time: compiling the whole step made
the first MiniLM updates take more than 20 s on the H200 (session 6 DIAG), while the update alone is a handful of
kernels. Example counts are Python ints (compile constants: one trace per distinct count); widths are padded to a
multiple of 32 on a GPU, so a run traces a few shapes.

``MLX_CROSS_ENCODER_TRAIN_COMPILE``: ``auto`` (default: ``0``), ``0`` (nothing compiled), ``update`` (``apply``
compiled), ``1`` (both). ``MLX_CROSS_ENCODER_TRAIN_FLAT_ADAM``: ``auto`` (default: on a GPU), ``1``, ``0`` (tensor
by tensor, as ``optimizer.update``). With nothing compiled and no flat AdamW the trainers take their plain step:
so by default a GPU runs the flat AdamW uncompiled (no run-time kernel builds beyond the plain step's) and the
CPU the plain step. This step runs each micro-batch on one stream (the CPU-stream split is
the plain step's).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from itertools import accumulate

import mlx.core as mx
import mlx.optimizers as optim
from mlx.utils import tree_flatten, tree_map, tree_unflatten

from .gpu_memory import on_gpu

#: environment variable: "auto", "0", "update" or "1" (what is compiled; see the module docstring)
COMPILE_ENV_VAR = "MLX_CROSS_ENCODER_TRAIN_COMPILE"
#: environment variable: "auto", "1" or "0" (the flat AdamW, :class:`FlatAdam`)
FLAT_ENV_VAR = "MLX_CROSS_ENCODER_TRAIN_FLAT_ADAM"


#: what ``MLX_CROSS_ENCODER_TRAIN_COMPILE`` may say -> (compile accumulate, compile apply)
COMPILE_MODES = {"0": (False, False), "update": (False, True), "1": (True, True)}


def weigh_add(acc, grads, n):
    """``acc + n * grads`` tensor by tensor (``grads`` alone when ``acc`` is None): a micro-batch's gradients of its
    mean loss, weighted by its ``n`` examples, added to the update's sum (the plain and the fast step share it)."""
    weighted = tree_map(lambda g: g * n, grads)
    return weighted if acc is None else tree_map(lambda a, g: a + g, acc, weighted)


def mean_clip_update(model, optimizer, acc, n_total: int, max_grad_norm: float | None):
    """AdamW tensor by tensor with the mean gradient ``acc / n_total``, clipped to ``max_grad_norm`` when set;
    returns the norm before clipping (None without clipping). The plain step's update, and the fast step's without
    the flat AdamW."""
    grads = tree_map(lambda a: a / n_total, acc)
    norm = None
    if max_grad_norm:
        grads, norm = optim.clip_grad_norm(grads, max_grad_norm)
    optimizer.update(model, grads)
    return norm


def compile_mode() -> tuple[bool, bool]:
    """(compile ``accumulate``, compile ``apply``) from ``MLX_CROSS_ENCODER_TRAIN_COMPILE``: ``auto`` (the default:
    ``0``), ``0``, ``update`` or ``1`` (see the module docstring)."""
    raw = os.environ.get(COMPILE_ENV_VAR, "auto").strip().lower() or "auto"
    if raw == "auto":
        raw = "0"  # NVRTC builds each new fused kernel at run time on CUDA: not by default until measured faster
    if raw not in COMPILE_MODES:
        raise ValueError(f"{COMPILE_ENV_VAR}={raw!r}: expected auto, 0, update or 1")
    return COMPILE_MODES[raw]


def flat_adam_enabled() -> bool:
    """Whether the update runs on flat vectors (``MLX_CROSS_ENCODER_TRAIN_FLAT_ADAM``: ``auto`` (default: on a
    GPU), ``1`` or ``0``)."""
    raw = os.environ.get(FLAT_ENV_VAR, "auto").strip().lower() or "auto"
    if raw == "auto":
        return on_gpu()
    if raw not in ("0", "1"):
        raise ValueError(f"{FLAT_ENV_VAR}={raw!r}: expected auto, 1 or 0")
    return raw == "1"


def compile_enabled() -> bool:
    """Whether the trainers use :class:`CompiledStep` at all (some part compiled, or the flat AdamW); else their
    plain step."""
    return any(compile_mode()) or flat_adam_enabled()


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
        self.buffers: list[dict[str, mx.array]] = []
        # per group, each tensor's (key, its optimizer state dict, shape, offset in the vectors, size): walked once
        # here, not per update (the state dicts stay the same objects; compiled calls replace their arrays only)
        self.views: list[list[tuple[str, dict, tuple, int, int]]] = []
        for o, keys in self.groups:
            st = [_leaf(o.state, k) for k in keys]
            sizes = [params[k].size for k in keys]
            offsets = [0, *accumulate(sizes)][: len(keys)]
            self.views.append(list(zip(keys, st, [params[k].shape for k in keys], offsets, sizes)))
            if keys:
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
        for (o, keys), views in zip(self.groups, self.views):
            o.apply_gradients({}, {})  # the schedule and step bookkeeping that apply_gradients does first
            if not keys:
                continue
            buf = next(buffers)
            n = buf["p"].size
            state = {"m": buf["m"], "v": buf["v"]}
            buf["p"] = o.apply_single(g[start : start + n], buf["p"], state)
            buf["m"], buf["v"] = state["m"], state["v"]
            for k, leaf, shape, offset, size in views:
                leaf["m"] = buf["m"][offset : offset + size].reshape(shape)
                leaf["v"] = buf["v"][offset : offset + size].reshape(shape)
                updated.append((k, buf["p"][offset : offset + size].reshape(shape)))
            start += n
        model.update(tree_unflatten(updated))
        return norm


class CompiledStep:
    """The ``accumulate`` and ``apply`` of one ``train()`` call, each compiled or not (see the module docstring).

    Built after the optimizer is initialised and any checkpoint is loaded: compiled functions capture the model's,
    the optimizer's and the random generator's state trees as they are then."""

    def __init__(
        self,
        model,
        optimizer,
        value_and_grad: Callable,
        max_grad_norm: float | None,
        flat_optimizer: bool | None = None,
        compile_parts: tuple[bool, bool] | None = None,
    ):
        flat_optimizer = flat_adam_enabled() if flat_optimizer is None else flat_optimizer
        compile_grad, compile_update = compile_mode() if compile_parts is None else compile_parts
        flat = FlatAdam(model, optimizer) if flat_optimizer and FlatAdam.supports(model, optimizer) else None
        state = [model.state, optimizer.state, mx.random.state, flat.buffers if flat is not None else []]
        compiled = partial(mx.compile, inputs=state, outputs=state)

        def accumulate(inputs, labels, teacher, group_size, n, acc):
            loss, grads = value_and_grad(inputs, labels, teacher, group_size)
            if flat is not None:  # one vector: the weighting and the sum are one kernel each
                weighted = flat.flatten(grads) * n
                return loss * n, weighted if acc is None else acc + weighted
            return loss * n, weigh_add(acc, grads, n)

        def apply(acc, n_total):
            if flat is not None:
                norm = flat(model, acc, max_grad_norm, n_total)
                return norm, optimizer.learning_rate
            norm = mean_clip_update(model, optimizer, acc, n_total, max_grad_norm)
            return (mx.array(0.0) if norm is None else norm), optimizer.learning_rate

        self.accumulate = compiled(accumulate) if compile_grad else accumulate
        self.apply = compiled(apply) if compile_update else apply
        self.compiled_parts = (compile_grad, compile_update)
        self.clips = bool(max_grad_norm)
        self.flat = flat is not None

    def describe(self) -> dict[str, bool]:
        """What ran, for the trainers' summaries: ``{"accumulate", "apply"}`` compiled or not, ``flat_adam``."""
        return dict(zip(("accumulate", "apply"), self.compiled_parts), flat_adam=self.flat)
