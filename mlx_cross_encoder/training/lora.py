"""LoRA for encoder cross-encoders with mlx-lm's ``LoRALinear``, and adapters in mlx-lm's on-disk format.

An adapter directory holds ``adapters.safetensors`` (the trained tensors, named by their path in the MLX model)
and ``adapter_config.json`` (``fine_tune_type``, ``num_layers``, ``lora_parameters`` = ``{rank, scale, dropout,
keys}``, as ``mlx_lm.lora`` writes it). For encoders two things differ from mlx-lm's decoder adapters:

* ``lora_parameters.keys`` are full module paths (encoders have no ``model.layers`` list to be relative to);
* the classification head (``trainable_modules``, default the model's ``head_prefixes``) is trained in full and
  its weights are saved in ``adapters.safetensors`` next to ``lora_a``/``lora_b``, so a reload reproduces the
  trained scores instead of a random head.

``fine_tune_type: "full"`` adapters hold every trained tensor (full fine-tuning).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_unflatten

ADAPTER_WEIGHTS = "adapters.safetensors"
ADAPTER_CONFIG = "adapter_config.json"

#: the BERT-family targets; each model file's ``Model.lora_targets`` is the default (kept for old imports)
DEFAULT_ENCODER_TARGETS = ("query", "key", "value", "dense")


def lora_linear_class():
    """mlx-lm's ``LoRALinear``, imported on first use: importing ``mlx_lm`` loads transformers (and torch, where
    installed), which plain inference with ``mlx_cross_encoder`` should not pay for."""
    from mlx_lm.tuner.lora import LoRALinear

    return LoRALinear


def is_lora_linear(module) -> bool:
    """Whether ``module`` is an mlx-lm ``LoRALinear`` (without importing mlx-lm when nothing could be one)."""
    lora = sys.modules.get("mlx_lm.tuner.lora")
    return lora is not None and isinstance(module, lora.LoRALinear)


def _matches(path: str, targets) -> bool:
    """PEFT's rule: a target matches a module whose path equals it or ends with ``.<target>``."""
    return any(path == t or path.endswith("." + t) for t in targets)


def _under(path: str, prefixes) -> bool:
    return any(path == p or path.startswith(p + ".") for p in prefixes)


def lora_target_paths(model: nn.Module, targets, exclude=()) -> list[str]:
    """Paths of the (Quantized)Linear modules that ``targets`` name, outside the ``exclude`` prefixes."""
    found = [
        path
        for path, module in model.named_modules()
        if isinstance(module, (nn.Linear, nn.QuantizedLinear)) and _matches(path, targets) and not _under(path, exclude)
    ]
    if not found:
        linears = [p for p, m in model.named_modules() if isinstance(m, (nn.Linear, nn.QuantizedLinear))]
        raise ValueError(f"lora target modules {list(targets)} match no Linear layer; the model has: {linears[:12]}")
    return sorted(found)


def apply_lora(model: nn.Module, paths, rank: int, scale: float, dropout: float = 0.0) -> None:
    """Wrap the modules at ``paths`` in mlx-lm ``LoRALinear`` (frozen base, trainable ``lora_a``/``lora_b``)."""
    if rank < 1:
        raise ValueError(f"lora rank must be >= 1, got {rank}")
    modules = dict(model.named_modules())
    missing = [p for p in paths if p not in modules]
    if missing:
        raise ValueError(f"adapter names modules the model does not have: {missing[:4]}")
    LoRALinear = lora_linear_class()
    wrapped = []
    for path in paths:
        base = modules[path]
        base.freeze()
        wrapped.append((path, LoRALinear.from_base(base, r=rank, dropout=dropout, scale=scale)))
    model.update_modules(tree_unflatten(wrapped))


def setup_lora(
    model: nn.Module, rank: int, alpha: float, dropout: float = 0.0, targets=None, trainable_modules=None
) -> dict[str, Any]:
    """Freeze ``model``, add LoRA to ``targets`` (default: the model file's ``lora_targets``) and unfreeze
    ``trainable_modules`` (default: the model's ``head_prefixes``).

    ``scale = alpha / rank`` (PEFT's scaling). Returns the adapter config to save with the weights.
    """
    if not targets:
        targets = getattr(model, "lora_targets", DEFAULT_ENCODER_TARGETS)
    head = tuple(trainable_modules if trainable_modules is not None else getattr(model, "head_prefixes", ()))
    model.freeze()
    paths = lora_target_paths(model, targets, exclude=head)
    apply_lora(model, paths, rank, alpha / rank, dropout)
    modules = dict(model.named_modules())
    for prefix in head:
        if prefix not in modules:
            raise ValueError(f"trainable module {prefix!r} is not in the model")
        modules[prefix].unfreeze()
    return {
        "fine_tune_type": "lora",
        "num_layers": len({m.group(0) for p in paths if (m := re.search(r"layers?\.\d+", p))}),
        "lora_parameters": {"rank": rank, "scale": alpha / rank, "alpha": alpha, "dropout": dropout, "keys": paths},
        "trainable_modules": list(head),
    }


def setup_full(model: nn.Module) -> dict[str, Any]:
    """Every parameter trainable (full fine-tuning)."""
    model.unfreeze()
    return {"fine_tune_type": "full", "num_layers": -1, "lora_parameters": None, "trainable_modules": []}


def trainable_weights(model: nn.Module) -> dict[str, mx.array]:
    return dict(tree_flatten(model.trainable_parameters()))


def write_dir_atomically(target: Path, write) -> Path:
    """Create ``target`` by filling a temporary sibling with ``write(tmp)`` and renaming it into place.

    An existing ``target`` is replaced only once the new one is complete: readers see the old or the new
    directory, never a half-written one.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        write(tmp)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.rename(target, old / "x")
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def save_adapter(model: nn.Module, path, adapter_config: dict[str, Any], extra: dict[str, Any] | None = None) -> Path:
    """Write the trainable tensors and ``adapter_config.json`` (mlx-lm's layout) atomically to ``path``."""
    weights = trainable_weights(model)
    config = {**adapter_config, **(extra or {})}

    def write(tmp: Path):
        mx.save_safetensors(str(tmp / ADAPTER_WEIGHTS), weights)
        (tmp / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2, default=str))

    return write_dir_atomically(Path(path), write)


def read_adapter_config(path) -> dict[str, Any]:
    path = Path(path)
    file = path / ADAPTER_CONFIG
    if not path.is_dir() or not file.is_file() or not (path / ADAPTER_WEIGHTS).is_file():
        raise FileNotFoundError(f"{path} is not an adapter directory ({ADAPTER_CONFIG} + {ADAPTER_WEIGHTS})")
    return json.loads(file.read_text())


def load_adapter(model: nn.Module, path) -> dict[str, Any]:
    """Apply a saved adapter to ``model``: add its LoRA layers, then load every tensor (LoRA and head).

    Each tensor must name a parameter of the (LoRA-wrapped) model with the same shape; tensors take the dtype
    of the parameter they replace. Returns the adapter config.
    """
    config = read_adapter_config(path)
    kind = config.get("fine_tune_type", "lora")
    if kind == "lora":
        lp = config["lora_parameters"]
        apply_lora(model, lp["keys"], lp["rank"], lp["scale"], lp.get("dropout", 0.0))
    elif kind != "full":
        raise ValueError(f"{path}: unsupported fine_tune_type {kind!r} (supported: lora, full)")
    weights = mx.load(str(Path(path) / ADAPTER_WEIGHTS))
    params = dict(tree_flatten(model.parameters()))
    errors = []
    for name, w in weights.items():
        if name not in params:
            errors.append(f"{name}: not a parameter of the model")
        elif w.shape != params[name].shape:
            errors.append(f"{name}: shape {tuple(w.shape)} != model's {tuple(params[name].shape)}")
    if errors:
        raise ValueError(f"adapter {path} does not fit the model:\n  " + "\n  ".join(errors[:10]))
    model.load_weights([(k, v.astype(params[k].dtype)) for k, v in weights.items()], strict=False)
    mx.eval(model.parameters())
    return config


def fuse_lora(model: nn.Module, dequantize: bool = False) -> int:
    """Merge every LoRA layer into its base Linear (mlx-lm's ``fuse``); returns how many were fused."""
    fused = [
        (name, module.fuse(dequantize=dequantize)) for name, module in model.named_modules() if hasattr(module, "fuse")
    ]
    if fused:
        model.update_modules(tree_unflatten(fused))
    return len(fused)


def dequantize_linears(model: nn.Module) -> int:
    """Replace QuantizedLinear layers by float Linear layers holding the dequantized weights."""
    layers = []
    for name, module in model.named_modules():
        if isinstance(module, nn.QuantizedLinear):
            weight = mx.dequantize(
                module.weight, module.scales, module.biases, module.group_size, module.bits, mode=module.mode
            )
            out_dims, in_dims = weight.shape
            linear = nn.Linear(in_dims, out_dims, bias="bias" in module)
            linear.weight = weight
            if "bias" in module:
                linear.bias = module.bias
            layers.append((name, linear))
    if layers:
        model.update_modules(tree_unflatten(layers))
    return len(layers)
