"""Fine-tuning MLX rerankers: data formats, ranking losses, LoRA/QLoRA/full training, checkpoints and export.

Pure MLX + mlx-lm: nothing here imports torch or the harness. One concern per module:
``settings`` (the one training-settings model, no MLX), ``config`` (the trainers' configs, no MLX), ``data``
(records, batching), ``losses``, ``lora`` (LoRA layers, adapter files), ``schedule`` (lr, AdamW),
``checkpoint``, ``metrics`` (fallback dev metric), ``trainer`` (the loop), ``encoder`` (cross-encoders),
``llm`` (yes/no LLM rerankers), ``export`` (Hugging Face directories).

Names are imported on first use (PEP 562), so ``from mlx_cross_encoder.training import TrainingSettings``
loads no MLX.
"""

from __future__ import annotations

import importlib

#: public name -> the module that defines it
_EXPORTS = {
    "TrainingSettings": "settings",
    "MLXCrossEncoderConfig": "config",
    "Qwen3RerankerConfig": "config",
    "DataFormatError": "data",
    "load_groups": "data",
    "MLXCrossEncoderTrainer": "encoder",
    "Qwen3RerankerTrainer": "llm",
    "export_hf": "export",
    "fuse_lora": "lora",
    "load_adapter": "lora",
    "save_adapter": "lora",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
