"""Names of dtypes and score activations, and weight quantization, as the MLX rerankers and trainers read them."""

from __future__ import annotations

from collections.abc import Callable

import mlx.core as mx
import mlx.nn as nn

DTYPES = {
    "float32": mx.float32,
    "fp32": mx.float32,
    "float16": mx.float16,
    "fp16": mx.float16,
    "half": mx.float16,
    "bfloat16": mx.bfloat16,
    "bf16": mx.bfloat16,
}

ACTIVATIONS: dict[str, Callable[[mx.array], mx.array]] = {
    "sigmoid": mx.sigmoid,
    "identity": lambda x: x,
    "tanh": mx.tanh,
    "softmax": lambda x: mx.softmax(x, axis=-1),
}
#: sentence-transformers stores the activation as a class path in config.json
ST_ACTIVATIONS = {
    "torch.nn.modules.activation.Sigmoid": "sigmoid",
    "torch.nn.modules.linear.Identity": "identity",
    "torch.nn.modules.activation.Tanh": "tanh",
    "torch.nn.modules.activation.Softmax": "softmax",
}


def resolve_dtype(dtype) -> mx.Dtype:
    if dtype is None:
        return mx.float32
    if isinstance(dtype, mx.Dtype):
        return dtype
    if isinstance(dtype, str) and dtype.lower() in DTYPES:
        return DTYPES[dtype.lower()]
    raise ValueError(f"unsupported dtype {dtype!r}; use one of: float32, float16, bfloat16")


def resolve_activation(activation_fn) -> Callable[[mx.array], mx.array]:
    if callable(activation_fn):
        return activation_fn
    if isinstance(activation_fn, str) and activation_fn.lower() in ACTIVATIONS:
        return ACTIVATIONS[activation_fn.lower()]
    raise ValueError(f"unknown activation_fn {activation_fn!r}; use a callable or one of {sorted(ACTIVATIONS)}")


def quantize_linear_layers(model: nn.Module, bits: int, group_size: int = 64, skip: tuple[str, ...] = ()) -> None:
    """Quantize the weights of the Linear layers whose input width divides into groups (heads in ``skip`` stay)."""
    if bits not in (4, 8):
        raise ValueError(f"quantize must be 4 or 8 (bits), got {bits!r}")

    def predicate(path: str, module: nn.Module) -> bool:
        return (
            isinstance(module, nn.Linear)
            and module.weight.shape[-1] % group_size == 0
            and not any(path.startswith(prefix) for prefix in skip)
        )

    nn.quantize(model, group_size=group_size, bits=bits, class_predicate=predicate)
