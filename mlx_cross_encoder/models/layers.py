"""Small pieces shared by the encoder architectures."""

from __future__ import annotations

import math
from functools import partial

import mlx.core as mx
import mlx.nn as nn


# erf(x) ~= x * P(x^2) / Q(x^2) on [-4, 4] (|erf| rounds to 1 in float32 outside); coefficients fitted here
# (Loeb's iterative least squares against scipy.special.erf), max abs error 5e-7 evaluated in float32.
_ERF_P = (1.12837882e00, 2.06113619e-01, 5.13860058e-02, 3.96561788e-03, 1.48224583e-04, -1.97751571e-06, 1.96679305e-08)
_ERF_Q = (1.0, 0.5159926, 0.11755334, 0.01488066, 0.00102047)


def _horner(coefficients, y):
    acc = coefficients[-1]
    for c in reversed(coefficients[:-1]):
        acc = acc * y + c
    return acc


@partial(mx.compile, shapeless=True)
def _gelu_rational(x):
    z = mx.clip(x.astype(mx.float32) * 0.7071067811865476, -4.0, 4.0)
    y = z * z
    erf = z * _horner(_ERF_P, y) / _horner(_ERF_Q, y)
    return (0.5 * x.astype(mx.float32) * (1.0 + erf)).astype(x.dtype)


def gelu(x):
    """Exact (erf) GELU. On the CPU, MLX's erf is scalar code (~28 ns/element here): there we evaluate erf as a
    rational function in one compiled, fused kernel (~8x faster, within 5e-7 of erf)."""
    if mx.default_device() == mx.cpu:
        return _gelu_rational(x)
    return nn.gelu(x)


def gelu_tanh(x):
    return 0.5 * x * (1.0 + mx.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * mx.power(x, 3))))


ACT2FN = {
    "gelu": gelu,  # exact (erf), as transformers' "gelu"
    "gelu_new": gelu_tanh,
    "gelu_pytorch_tanh": gelu_tanh,
    "gelu_fast": gelu_tanh,
    "relu": nn.relu,
    "silu": nn.silu,
    "swish": nn.silu,
    "tanh": mx.tanh,
}


def attention_mask_4d(attention_mask: mx.array, dtype) -> mx.array:
    """(batch, length) 1/0 padding mask -> additive (batch, 1, 1, length) mask in ``dtype``."""
    keep = attention_mask[:, None, None, :].astype(mx.bool_)
    return mx.where(keep, mx.array(0.0, dtype=dtype), mx.array(mx.finfo(dtype).min, dtype=dtype))
