"""Shared by the test_tribrid_* files: an mlx-lm LoRA adapter with random non-zero tensors."""

from __future__ import annotations

import json
from pathlib import Path


def write_mlx_lm_adapter(base: Path, out: Path, seed: int = 3, rank: int = 4, scale: float = 2.0) -> Path:
    """An mlx-lm LoRA adapter (q_proj, v_proj of both layers; lora_a and lora_b random, non-zero)."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.tuner.utils import linear_to_lora_layers
    from mlx_lm.utils import load_model

    model, _ = load_model(base)
    model.freeze()
    params = {"rank": rank, "scale": scale, "dropout": 0.0, "keys": ["self_attn.q_proj", "self_attn.v_proj"]}
    linear_to_lora_layers(model, 2, params)
    mx.random.seed(seed)
    tensors = {k: mx.random.normal(v.shape) * 0.3 for k, v in tree_flatten(model.trainable_parameters())}
    assert tensors and all(".lora_" in k for k in tensors)
    out.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(out / "adapters.safetensors"), tensors)
    config = {"model": str(base), "fine_tune_type": "lora", "num_layers": 2, "lora_parameters": params}
    (out / "adapter_config.json").write_text(json.dumps(config))
    return out
