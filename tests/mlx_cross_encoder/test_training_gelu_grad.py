"""The CPU GELU's closed-form derivative (the training-speed fix of issue 12 item 6) is GELU's exact derivative,
and training with it makes the updates that autodiff through MLX's own exact GELU makes."""

import mlx_cross_encoder  # noqa: F401  # isort: skip  (loads the optimized BLAS before mlx.core)
import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
import torch
from builders import bert_cross_encoder
from mlx.utils import tree_flatten
from training_helpers import toy_pairs

from mlx_cross_encoder import MLXCrossEncoder
from mlx_cross_encoder.models import layers
from mlx_cross_encoder.training import MLXCrossEncoderConfig, MLXCrossEncoderTrainer


def exact_gelu_vjp(x: np.ndarray, cotangent: np.ndarray) -> np.ndarray:
    """torch's exact (erf) GELU differentiated in float64."""
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    torch.nn.functional.gelu(tx).backward(torch.tensor(cotangent, dtype=torch.float64))
    return tx.grad.numpy()


def test_gelu_gradient_is_the_exact_derivative():
    with mx.stream(mx.cpu):
        rng = np.random.default_rng(0)
        x = np.concatenate([np.linspace(-12, 12, 200_001), [-1e3, -50.0, -4.0, 0.0, 4.0, 50.0, 1e3]]).astype(np.float32)
        cot = rng.uniform(-2, 2, x.shape).astype(np.float32)
        (got,) = mx.vjp(layers.gelu, [mx.array(x)], [mx.array(cot)])[1]
        np.testing.assert_allclose(np.array(got), exact_gelu_vjp(x, cot), rtol=0, atol=2e-6)
        # mx.grad hands the custom VJP its primal differently from mx.vjp: check that path too
        summed = np.array(mx.grad(lambda v: (layers.gelu(v) * 3.0).sum())(mx.array(x)))
        np.testing.assert_allclose(summed, exact_gelu_vjp(x, np.full_like(x, 3.0)), rtol=0, atol=3e-6)
        half = mx.grad(lambda v: layers.gelu(v).astype(mx.float32).sum())(mx.array(x[:100]).astype(mx.bfloat16))
        assert half.dtype == mx.bfloat16


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return bert_cross_encoder(tmp_path_factory.mktemp("bert"), seed=0)


def train_params(bert_dir, out, reference_gelu: bool):
    enc = MLXCrossEncoder(bert_dir)
    cfg = MLXCrossEncoderConfig(
        output_dir=str(out),
        learning_rate=5e-3,
        batch_size=8,
        num_epochs=2,
        show_progress_bar=False,
        seed=3,
        logging_steps=1,
    )
    trainer = MLXCrossEncoderTrainer(enc, cfg)
    if reference_gelu:
        for layer in enc.model.bert.encoder.layer:
            assert layer.intermediate.act is layers.gelu
            layer.intermediate.act = nn.gelu  # MLX's exact erf GELU, differentiated by MLX
    trainer.train(toy_pairs(8))
    losses = [r["loss"] for r in trainer.history if r["type"] == "train"]
    return losses, {k: np.array(v) for k, v in tree_flatten(trainer.model.parameters())}


def test_training_with_the_fast_gelu_matches_autodiff_of_the_exact_gelu(bert_dir, tmp_path):
    with mx.stream(mx.cpu):
        fast_losses, fast = train_params(bert_dir, tmp_path / "fast", reference_gelu=False)
        ref_losses, ref = train_params(bert_dir, tmp_path / "ref", reference_gelu=True)
    assert len(fast_losses) == len(ref_losses) == 8
    np.testing.assert_allclose(fast_losses, ref_losses, rtol=0, atol=1e-5)
    assert fast.keys() == ref.keys()
    worst = max(float(np.abs(fast[k] - ref[k]).max()) for k in fast)
    assert worst <= 1e-5, worst
