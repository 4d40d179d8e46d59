"""Small pieces shared by the encoder architectures."""

from __future__ import annotations

import math
from functools import partial

import mlx.core as mx
import mlx.nn as nn

# erf(z) ~= z * P(z^2) / Q(z^2) on |z| < ERF_ONE, and exactly sign(z) beyond: there 1 - |erf(z)| < 3e-8, below
# float32's resolution at 1, so GELU(x) is exactly x or 0 and its error cannot grow with |x|. Coefficients fitted
# here (Loeb's linearized least squares, then Lawson reweighting toward minimax, against scipy.special.erf on
# [0, ERF_ONE]). Measured in float32 against torch's exact GELU/erf in float64 on 3.6M points over [-1e3, 1e3]
# (tests/mlx_cross_encoder/test_gelu.py): erf within 4.0e-7; GELU within 1.54e-6 absolute, the largest at
# x ~ 5.5 (about 3 float32 ulps there); for |x| > 5.6 the result is x or 0 and the error, below 1e-7, shrinks
# with |x| (the previous fit, clipped at 4 without the sign, drifted to 8.5e-4 at |x| = 1e3). MLX's own erf
# GELU: 4.7e-7.
ERF_ONE = 3.92
_ERF_P = (1.12837875, 0.206155449, 0.0514030755, 0.00397462212, 0.000149022788, -1.99431929e-06, 1.99184154e-08)
_ERF_Q = (1.0, 0.516029298, 0.117581852, 0.0148928706, 0.00102452212)


def _horner(coefficients, y):
    acc = coefficients[-1]
    for c in reversed(coefficients[:-1]):
        acc = acc * y + c
    return acc


def erf_rational(z: mx.array) -> mx.array:
    """float32 erf: the rational function inside ``|z| < ERF_ONE``, ``sign(z)`` outside."""
    inside = mx.clip(z, -ERF_ONE, ERF_ONE)
    y = inside * inside
    return mx.where(mx.abs(z) < ERF_ONE, inside * _horner(_ERF_P, y) / _horner(_ERF_Q, y), mx.sign(z))


_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@partial(mx.compile, shapeless=True)
def _gelu_rational_value(x):
    x32 = x.astype(mx.float32)
    return (0.5 * x32 * (1.0 + erf_rational(x32 * 0.7071067811865476))).astype(x.dtype)


@partial(mx.compile, shapeless=True)
def _gelu_rational_derivative(x):
    """``GELU'(x) = Phi(x) + x * phi(x)`` in float32, one fused kernel."""
    x32 = x.astype(mx.float32)
    cdf = 0.5 * (1.0 + erf_rational(x32 * 0.7071067811865476))
    return cdf + x32 * (mx.exp(-0.5 * x32 * x32) * _INV_SQRT_2PI)


@mx.custom_function
def _gelu_rational(x):
    return _gelu_rational_value(x)


@_gelu_rational.vjp
def _gelu_rational_vjp(primals, cotangent, output):
    # Training speed (issue 12 item 6): MLX differentiating through the compiled rational erf built ~20 unfused
    # CPU kernels (2.2 s of a 2.6 s MiniLM intermediate-layer step here); this closed-form derivative is one kernel
    # (~4x faster) and closer to the exact GELU'(x) (3e-7 vs 5e-6 against torch in float64).
    x = primals[0] if isinstance(primals, (list, tuple)) else primals  # mx.grad passes the array itself
    return ((cotangent.astype(mx.float32) * _gelu_rational_derivative(x)).astype(cotangent.dtype),)


def gelu(x):
    """Exact (erf) GELU. On the CPU, MLX's erf is scalar code (~28 ns/element here): there we evaluate erf as a
    rational function in one compiled, fused kernel (~8x faster; within 1.6e-6 of the exact GELU for every float32
    input, see ``ERF_ONE``)."""
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
