"""Small pieces shared by the encoder architectures."""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn


def gelu_tanh(x):
    return 0.5 * x * (1.0 + mx.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * mx.power(x, 3))))


ACT2FN = {
    "gelu": nn.gelu,  # exact (erf), as transformers' "gelu"
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
