"""The CPU GELU (a rational erf in one fused kernel) against torch's exact GELU, large activations included."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import torch

import mlx_cross_encoder  # noqa: F401
from mlx_cross_encoder.models.layers import _gelu_rational, erf_rational, gelu

# dense near 0, where erf is curved, and every 1e-3 over the range of real hidden activations
GRID = np.concatenate([np.linspace(-1e3, 1e3, 2_000_001), np.linspace(-8, 8, 1_600_001)]).astype(np.float32)


def exact_gelu(x: np.ndarray) -> np.ndarray:
    return torch.nn.functional.gelu(torch.from_numpy(x).double()).numpy()


def test_cpu_gelu_error_is_bounded_over_plus_minus_1e3():
    with mx.stream(mx.cpu):
        got = np.array(gelu(mx.array(GRID)))
    err = np.abs(got - exact_gelu(GRID))
    assert err.max() <= 2e-6, f"max abs error {err.max():.3g} at x={GRID[err.argmax()]}"
    large = np.abs(GRID) > 6  # erf is +-1 in float32 there: GELU must be x or 0, not drift with |x|
    assert err[large].max() <= 1e-8


def test_extreme_activations_are_exact():
    x = np.array([-3e38, -1e6, -1e3, -50.0, 50.0, 1e3, 1e6, 3e38], dtype=np.float32)
    np.testing.assert_array_equal(np.array(_gelu_rational(mx.array(x))), np.where(x > 0, x, 0.0).astype(np.float32))


def test_rational_erf_within_5e_7():
    z = np.linspace(-6, 6, 1_200_001).astype(np.float32)
    ref = torch.special.erf(torch.from_numpy(z).double()).numpy()
    err = np.abs(np.array(erf_rational(mx.array(z))) - ref)
    assert err.max() <= 5e-7, f"max erf error {err.max():.3g} at z={z[err.argmax()]}"


def test_half_precision_inputs_round_like_the_exact_gelu():
    x = np.linspace(-20, 20, 4001).astype(np.float32)
    for dtype, torch_dtype in ((mx.float16, torch.float16), (mx.bfloat16, torch.bfloat16)):
        got = np.array(_gelu_rational(mx.array(x).astype(dtype)).astype(mx.float32))
        want = torch.nn.functional.gelu(torch.from_numpy(x).to(torch_dtype).double()).to(torch_dtype).float().numpy()
        spacing = np.abs(want) * (2**-10 if dtype == mx.float16 else 2**-7) + 1e-6
        assert (np.abs(got - want) <= spacing).all()
