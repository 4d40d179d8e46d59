"""The answer head of an LLM yes/no reranker: the [no, yes] rows of the output projection and P(yes).

``two_row_head`` (exact): run the backbone only and project each row's last hidden state onto the two LM-head rows
of "no"/"yes" (dequantizing just those two rows of a quantized head), instead of computing full-vocabulary logits
for every position. :func:`two_rows_match` checks on a probe that the family does not post-process its logits
(soft-capping, scaling), else the full logits are used.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import mlx.core as mx
import mlx.nn as nn

logger = logging.getLogger("mlx_cross_encoder")

#: ``(weight, bias)`` of the [no, yes] rows of the output projection
HeadRows = tuple[mx.array, "mx.array | None"]


def p_yes(logits: mx.array) -> mx.array:
    """``exp(log_softmax([no, yes])[yes])`` in float32, as the reference computes it."""
    logits = logits.astype(mx.float32)
    return mx.exp(logits[:, 1] - mx.logsumexp(logits, axis=-1))


ACTIVATIONS: dict[str, Callable[[mx.array], mx.array]] = {
    "softmax": p_yes,
    "sigmoid": p_yes,  # sigmoid(yes - no) is softmax([no, yes])[yes]
    "identity": lambda logits: (logits[:, 1] - logits[:, 0]).astype(mx.float32),
}


def resolve_activation(activation_fn) -> Callable[[mx.array], mx.array]:
    """A function of the ``(n, 2)`` [no, yes] logits: None = P(yes); a callable gets ``logit_yes - logit_no``."""
    if activation_fn is None:
        return p_yes
    if callable(activation_fn):
        return lambda logits: activation_fn((logits[:, 1] - logits[:, 0]).astype(mx.float32))
    if isinstance(activation_fn, str) and activation_fn.lower() in ACTIVATIONS:
        return ACTIVATIONS[activation_fn.lower()]
    raise ValueError(
        f"unknown activation_fn {activation_fn!r}; use None (P(yes)), a callable on logit_yes - logit_no, "
        f"or one of {sorted(ACTIVATIONS)}"
    )


def head_module(lm: nn.Module, backbone: nn.Module | None) -> nn.Module | None:
    """The output projection: ``lm_head``, else the tied input embedding."""
    if "lm_head" in lm:
        return lm["lm_head"]
    if backbone is not None and "embed_tokens" in backbone:
        return backbone["embed_tokens"]
    return None


def vocab_rows(head: nn.Module | None) -> int | None:
    weight = getattr(head, "weight", None)
    return None if weight is None else int(weight.shape[0])


def two_rows(head: nn.Module | None, no_id: int, yes_id: int) -> HeadRows | None:
    """The [no, yes] rows of the output projection (dequantized if quantized), read from the current weights."""
    rows = mx.array([no_id, yes_id])
    if isinstance(head, (nn.QuantizedLinear, nn.QuantizedEmbedding)):
        biases = head.get("biases")
        weight = mx.dequantize(
            head["weight"][rows],
            head["scales"][rows],
            biases[rows] if biases is not None else None,
            group_size=head.group_size,
            bits=head.bits,
            mode=head.mode,
        )
    elif isinstance(head, (nn.Linear, nn.Embedding)):
        weight = head.weight[rows]
    else:  # e.g. a LoRA-wrapped head, or none
        return None
    bias = head.bias[rows] if isinstance(head, (nn.Linear, nn.QuantizedLinear)) and "bias" in head else None
    return weight, bias


def project(hidden: mx.array, rows: HeadRows) -> mx.array:
    """``(batch, 2)`` [no, yes] logits of last hidden states."""
    weight, bias = rows
    out = hidden @ weight.astype(hidden.dtype).T
    return out + bias.astype(out.dtype) if bias is not None else out


def two_rows_match(model, lm, backbone, probe_ids: list[int], no_id: int, yes_id: int, dtype: mx.Dtype) -> bool:
    """Whether the two head rows reproduce the model's own logits on ``probe_ids`` (families may soft-cap or scale
    them)."""
    rows = two_rows(head_module(lm, backbone), no_id, yes_id)
    if backbone is None or rows is None:
        logger.info("two_row_head unavailable for %s; using full logits", type(lm).__module__)
        return False
    probe = mx.array([probe_ids])
    full = model(probe)[:, -1, :]
    full = mx.stack([full[:, no_id], full[:, yes_id]], axis=-1).astype(mx.float32)
    two = project(backbone(probe)[:, -1, :], rows).astype(mx.float32)
    tol = 1e-4 if dtype == mx.float32 else 3e-2
    err = mx.max(mx.abs(full - two)).item()
    if not err <= tol * (1.0 + mx.max(mx.abs(full)).item()):
        logger.warning(
            "two_row_head disabled: %s post-processes its logits (probe diff %.3g)", type(lm).__module__, err
        )
        return False
    return True
