"""Fine-tuning MLX rerankers: data formats, ranking losses, LoRA/QLoRA/full training, checkpoints and export.

Pure MLX + mlx-lm: nothing here imports torch or the harness. One concern per module:
``data`` (records, batching), ``losses``, ``lora`` (LoRA layers, adapter files), ``schedule`` (lr, AdamW),
``checkpoint``, ``metrics`` (fallback dev metric), ``trainer`` (the loop), ``encoder`` (cross-encoders),
``llm`` (yes/no LLM rerankers), ``export`` (Hugging Face directories).
"""

from .config import MLXCrossEncoderConfig, Qwen3RerankerConfig, TrainingConfig
from .data import DataFormatError, load_groups
from .encoder import MLXCrossEncoderTrainer
from .export import export_hf
from .llm import Qwen3RerankerTrainer
from .lora import fuse_lora, load_adapter, save_adapter

__all__ = [
    "DataFormatError",
    "MLXCrossEncoderConfig",
    "MLXCrossEncoderTrainer",
    "Qwen3RerankerConfig",
    "Qwen3RerankerTrainer",
    "TrainingConfig",
    "export_hf",
    "fuse_lora",
    "load_adapter",
    "load_groups",
    "save_adapter",
]
