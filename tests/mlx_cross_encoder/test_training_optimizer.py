"""The MLX trainers' optimizer against PyTorch: AdamW with no-decay groups, the learning rate it uses, clipping.

The reference is ``torch.optim.AdamW`` (two parameter groups: decay, and no decay for biases and norm weights)
and ``torch.nn.utils.clip_grad_norm_``, fed the same parameters and gradients over several steps.
"""

from __future__ import annotations

import mlx_cross_encoder  # noqa: F401  # isort: skip
import mlx.core as mx
import mlx.optimizers as optim
import numpy as np
import pytest
import torch
from mlx.utils import tree_flatten, tree_unflatten

from mlx_cross_encoder.training.schedule import make_optimizer, make_schedule, no_decay

SHAPES = {
    "encoder.dense.weight": (6, 5),
    "encoder.dense.bias": (6,),
    "encoder.LayerNorm.weight": (6,),
    "head.weight": (1, 6),
    "model.norm.weight": (6,),
    "layers.0.lora_a": (5, 2),
}
NO_DECAY = ("encoder.dense.bias", "encoder.LayerNorm.weight", "model.norm.weight")  # as transformers' Trainer
BASE_LR, TOTAL, WARMUP = 0.05, 6, 2
# the schedule written out: warmup (step + 1) / 2, then linear decay over the remaining 4 updates
EXPECTED_LRS = [BASE_LR * f for f in (0.5, 1.0, 1.0, 0.75, 0.5, 0.25)]


def test_no_decay_names_the_biases_and_norm_weights():
    assert sorted(n for n in SHAPES if no_decay(n)) == sorted(NO_DECAY)


def test_adamw_with_no_decay_groups_equals_torch_over_several_steps():
    rng = np.random.default_rng(0)
    start = {n: rng.normal(0, 1, s).astype(np.float32) for n, s in SHAPES.items()}
    grads = [{n: rng.normal(0, 1, s).astype(np.float32) for n, s in SHAPES.items()} for _ in range(TOTAL)]
    betas, eps, wd = (0.8, 0.95), 1e-6, 0.3  # not the defaults, so that each one is checked

    opt = make_optimizer(make_schedule(BASE_LR, TOTAL, WARMUP, "linear"), wd, betas, eps)
    params = tree_unflatten([(n, mx.array(v)) for n, v in start.items()])
    opt.init(params)
    tparams = {n: torch.nn.Parameter(torch.tensor(v)) for n, v in start.items()}
    topt = torch.optim.AdamW(
        [
            {"params": [p for n, p in tparams.items() if n not in NO_DECAY], "weight_decay": wd},
            {"params": [p for n, p in tparams.items() if n in NO_DECAY], "weight_decay": 0.0},
        ],
        lr=BASE_LR,
        betas=betas,
        eps=eps,
    )
    used = []
    for step, g in enumerate(grads):
        params = opt.apply_gradients(tree_unflatten([(n, mx.array(v)) for n, v in g.items()]), params)
        mx.eval(params, opt.state)
        used.append(opt.learning_rate.item())
        for group in topt.param_groups:
            group["lr"] = EXPECTED_LRS[step]
        for n, p in tparams.items():
            p.grad = torch.tensor(g[n])
        topt.step()
        flat = dict(tree_flatten(params))
        for n, p in tparams.items():
            np.testing.assert_allclose(
                np.array(flat[n]), p.detach().numpy(), rtol=1e-5, atol=1e-6, err_msg=f"{n}@{step}"
            )
    assert used == pytest.approx(EXPECTED_LRS, rel=1e-6)  # the learning rate the optimizer itself used
    states = {}
    for state in opt.state["states"]:
        states |= {k: v for k, v in tree_flatten(state) if k.endswith((".m", ".v"))}
    for n, p in tparams.items():
        torch_state = topt.state[p]
        np.testing.assert_allclose(np.array(states[f"{n}.m"]), torch_state["exp_avg"].numpy(), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(np.array(states[f"{n}.v"]), torch_state["exp_avg_sq"].numpy(), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clipping_equals_torch_clip_grad_norm(max_norm):
    rng = np.random.default_rng(1)
    grads = {n: rng.normal(0, 1, s).astype(np.float32) for n, s in SHAPES.items()}
    clipped, norm = optim.clip_grad_norm(tree_unflatten([(n, mx.array(v)) for n, v in grads.items()]), max_norm)
    tgrads = {n: torch.nn.Parameter(torch.zeros(s)) for n, s in SHAPES.items()}
    for n, p in tgrads.items():
        p.grad = torch.tensor(grads[n])
    tnorm = torch.nn.utils.clip_grad_norm_(list(tgrads.values()), max_norm)
    assert norm.item() == pytest.approx(float(tnorm), rel=1e-6)  # the norm before clipping
    flat = dict(tree_flatten(clipped))
    for n, p in tgrads.items():
        np.testing.assert_allclose(np.array(flat[n]), p.grad.numpy(), rtol=1e-6, atol=1e-7)
