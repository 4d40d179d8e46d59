"""Ranking losses on raw scores (logits), as sentence-transformers' cross-encoder losses define them.

All losses return the mean over examples (pairs for pointwise losses, groups for grouped ones), computed in
float32. ``scores`` are the model's raw outputs: the classifier logit for encoders, ``logit(yes) - logit(no)``
for LLM rerankers.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn


def binary_cross_entropy(scores: mx.array, labels: mx.array, pos_weight: float | None = None) -> mx.array:
    """``BCEWithLogitsLoss(pos_weight)``: ``-(w*y*log s(x) + (1-y)*log(1-s(x)))``, mean over pairs.

    Labels may be soft (floats in [0, 1]). ``pos_weight`` scales the positive term (e.g. #neg/#pos).
    """
    x, y = scores.astype(mx.float32).reshape(-1), labels.astype(mx.float32).reshape(-1)
    log_p, log_not_p = -nn.softplus(-x), -nn.softplus(x)  # log sigmoid(x), log(1 - sigmoid(x)), stable
    w = 1.0 if pos_weight is None else float(pos_weight)
    return -(w * y * log_p + (1.0 - y) * log_not_p).mean()


def listwise_cross_entropy(scores: mx.array, group_size: int, temperature: float = 1.0) -> mx.array:
    """Softmax cross-entropy over each group with the positive first (FlagEmbedding's reranker loss).

    ``scores`` holds ``n_groups * group_size`` values, group by group; the loss is
    ``mean_g(-log softmax(scores_g / temperature)[0])``. Equals sentence-transformers' ``ListNetLoss`` with
    one-hot labels and ``CrossEntropyLoss`` on the group's scores with target 0.
    """
    s = scores.astype(mx.float32).reshape(-1, group_size) / temperature
    return (mx.logsumexp(s, axis=1) - s[:, 0]).mean()


def margin_mse(scores: mx.array, teacher: mx.array, group_size: int) -> mx.array:
    """MarginMSE: ``mean((s_pos - s_neg_j) - (t_pos - t_neg_j))^2`` over groups and their negatives.

    ``scores``/``teacher`` hold ``n_groups * group_size`` values, positive first in each group (as
    sentence-transformers' ``MarginMSELoss`` with ``num_negatives = group_size - 1``).
    """
    s = scores.astype(mx.float32).reshape(-1, group_size)
    t = teacher.astype(mx.float32).reshape(-1, group_size)
    student_margin = s[:, :1] - s[:, 1:]
    teacher_margin = t[:, :1] - t[:, 1:]
    return mx.square(student_margin - teacher_margin).mean()


def listwise_kl(
    scores: mx.array, teacher: mx.array, group_size: int, temperature: float = 1.0, teacher_temperature: float = 1.0
) -> mx.array:
    """Listwise distillation: ``mean_g KL(softmax(t_g / teacher_temperature) || softmax(s_g / temperature))``.

    ``scores``/``teacher`` hold ``n_groups * group_size`` values, group by group (a group is documents of one
    query; their order does not matter). Equals ``torch.nn.functional.kl_div(log_softmax(s), log_softmax(t),
    log_target=True, reduction="batchmean")``: the teacher's entropy is included, so a student that matches the
    teacher's distribution has loss 0.
    """
    s = scores.astype(mx.float32).reshape(-1, group_size) / temperature
    t = teacher.astype(mx.float32).reshape(-1, group_size) / teacher_temperature
    log_q = s - mx.logsumexp(s, axis=1, keepdims=True)
    log_p = t - mx.logsumexp(t, axis=1, keepdims=True)
    return (mx.exp(log_p) * (log_p - log_q)).sum(axis=1).mean()


def mse(scores: mx.array, targets: mx.array) -> mx.array:
    """Pointwise distillation: ``mean((s - t)^2)`` (sentence-transformers' ``MSELoss``)."""
    return mx.square(scores.astype(mx.float32).reshape(-1) - targets.astype(mx.float32).reshape(-1)).mean()


from .settings import LOSSES  # noqa: E402


def compute_loss(
    name: str,
    scores: mx.array,
    labels: mx.array,
    teacher: mx.array | None,
    group_size: int | None,
    pos_weight: float | None = None,
    temperature: float = 1.0,
    teacher_temperature: float = 1.0,
) -> mx.array:
    """The named loss on one batch (see :class:`~mlx_cross_encoder.training.data.Batch`)."""
    if name == "bce":
        return binary_cross_entropy(scores, labels, pos_weight)
    if name == "mse":
        return mse(scores, teacher)
    if name == "listwise":
        return listwise_cross_entropy(scores, group_size, temperature)
    if name == "margin_mse":
        return margin_mse(scores, teacher, group_size)
    if name == "listwise_kl":
        return listwise_kl(scores, teacher, group_size, temperature, teacher_temperature)
    raise ValueError(f"unknown loss {name!r}; use one of {LOSSES}")
