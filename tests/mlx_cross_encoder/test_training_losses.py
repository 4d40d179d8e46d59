"""The MLX ranking losses against torch's reference implementations and hand-computed values."""

import math

from mlx_cross_encoder.training import losses  # first: loads the optimized BLAS before mlx.core  # isort: skip
import mlx.core as mx
import numpy as np
import pytest
import torch
import torch.nn.functional as F

RNG = np.random.default_rng(0)


def test_bce_hand_value():
    # x = 0: log sigmoid = log(1/2); one positive weighted 3, one negative: (3*log2 + log2) / 2
    got = losses.binary_cross_entropy(mx.array([0.0, 0.0]), mx.array([1.0, 0.0]), pos_weight=3.0)
    assert got.item() == pytest.approx(2 * math.log(2), rel=1e-6)


@pytest.mark.parametrize("pos_weight", [None, 0.5, 4.0])
def test_bce_matches_torch_bce_with_logits(pos_weight):
    x = RNG.normal(0, 3, 32).astype(np.float32)
    y = RNG.uniform(0, 1, 32).astype(np.float32)  # soft labels too
    y[:10] = (y[:10] > 0.5).astype(np.float32)
    want = F.binary_cross_entropy_with_logits(
        torch.tensor(x), torch.tensor(y), pos_weight=None if pos_weight is None else torch.tensor(pos_weight)
    )
    got = losses.binary_cross_entropy(mx.array(x), mx.array(y), pos_weight)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)


def test_bce_is_stable_for_large_logits():
    got = losses.binary_cross_entropy(mx.array([80.0, -80.0]), mx.array([0.0, 1.0]))
    assert got.item() == pytest.approx(80.0, rel=1e-5)


def test_listwise_matches_torch_cross_entropy_with_positive_first():
    s = RNG.normal(0, 2, (5, 4)).astype(np.float32)
    want = F.cross_entropy(torch.tensor(s), torch.zeros(5, dtype=torch.long))
    got = losses.listwise_cross_entropy(mx.array(s.reshape(-1)), group_size=4)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    # temperature divides the scores
    want_t = F.cross_entropy(torch.tensor(s) / 0.5, torch.zeros(5, dtype=torch.long))
    assert losses.listwise_cross_entropy(mx.array(s.reshape(-1)), 4, temperature=0.5).item() == pytest.approx(
        want_t.item(), rel=1e-5
    )


def test_listwise_equals_sentence_transformers_listnet_with_one_hot_labels():
    # ListNetLoss = CrossEntropyLoss(logits, softmax(labels)); one-hot targets reduce it to -log softmax[0]
    s = torch.tensor(RNG.normal(0, 2, (3, 5)).astype(np.float32))
    one_hot = torch.zeros(3, 5)
    one_hot[:, 0] = 1
    want = torch.nn.CrossEntropyLoss()(s, one_hot)
    got = losses.listwise_cross_entropy(mx.array(s.numpy().reshape(-1)), 5)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)


@pytest.mark.parametrize("temperature, teacher_temperature", [(1.0, 1.0), (0.5, 0.05)])
def test_listwise_kl_matches_torch_kl_div_value_and_gradient(temperature, teacher_temperature):
    s = RNG.normal(0, 2, (6, 5)).astype(np.float32)
    t = RNG.uniform(-1, 1, (6, 5)).astype(np.float32)  # cosines, as a bi-encoder teacher gives
    x = torch.tensor(s, requires_grad=True)
    want = F.kl_div(
        F.log_softmax(x / temperature, dim=1),
        F.log_softmax(torch.tensor(t) / teacher_temperature, dim=1),
        log_target=True,
        reduction="batchmean",
    )
    want.backward()

    def f(z):
        return losses.listwise_kl(z, mx.array(t.reshape(-1)), 5, temperature, teacher_temperature)

    got, grad = mx.value_and_grad(f)(mx.array(s.reshape(-1)))
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    np.testing.assert_allclose(np.array(grad).reshape(6, 5), x.grad.numpy(), rtol=1e-4, atol=1e-7)


def test_listwise_kl_is_zero_when_the_student_matches_the_teacher():
    t = RNG.normal(0, 1, 8).astype(np.float32)
    assert losses.listwise_kl(mx.array(t * 2 + 3.0), mx.array(t), 4, 1.0, 0.5).item() == pytest.approx(0.0, abs=1e-6)


def test_margin_mse_matches_torch():
    s = RNG.normal(0, 2, (6, 3)).astype(np.float32)
    t = RNG.normal(0, 2, (6, 3)).astype(np.float32)
    st, tt = torch.tensor(s), torch.tensor(t)
    want = F.mse_loss(st[:, :1] - st[:, 1:], tt[:, :1] - tt[:, 1:])
    got = losses.margin_mse(mx.array(s.reshape(-1)), mx.array(t.reshape(-1)), group_size=3)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)


def test_margin_mse_hand_value():
    # student margin 1 - (-1) = 2, teacher margin 3 - 0 = 3: (2 - 3)^2 = 1
    assert losses.margin_mse(mx.array([1.0, -1.0]), mx.array([3.0, 0.0]), 2).item() == pytest.approx(1.0)


def test_mse_matches_torch():
    s = RNG.normal(0, 2, 17).astype(np.float32)
    t = RNG.normal(0, 2, 17).astype(np.float32)
    want = F.mse_loss(torch.tensor(s), torch.tensor(t))
    assert losses.mse(mx.array(s), mx.array(t)).item() == pytest.approx(want.item(), rel=1e-5)


def test_unknown_loss_is_rejected():
    with pytest.raises(ValueError, match="unknown loss"):
        losses.compute_loss("hinge", mx.array([0.0]), mx.array([1.0]), None, None)
