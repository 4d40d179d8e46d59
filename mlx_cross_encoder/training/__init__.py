"""Fine-tuning MLX rerankers: data formats, ranking losses, LoRA/QLoRA/full training, checkpoints and export.

Pure MLX + mlx-lm: nothing here imports torch or the harness. One concern per module:
``settings`` (the one training-settings model, no MLX), ``config`` (the trainers' configs, no MLX), ``data``
(records, batching), ``losses``, ``lora`` (LoRA layers, adapter files), ``schedule`` (lr, AdamW),
``checkpoint``, ``metrics`` (fallback dev metric), ``trainer`` (the loop), ``evaluation`` (its dev scoring and
best checkpoint), ``gpu_memory`` (MLX's cache bound on a GPU while training), ``encoder`` (cross-encoders),
``llm`` (yes/no LLM rerankers), ``export`` (Hugging Face directories).

Names are imported on first use (PEP 562), so ``from mlx_cross_encoder.training import TrainingSettings``
loads no MLX.
"""

from __future__ import annotations

from .._lazy import lazy_exports

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


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
