"""The MLX trainers' configs: the shared :class:`~.settings.TrainingSettings` plus what one model family needs.

No MLX import here either: a config can be built and validated (and sent to a worker as JSON) anywhere.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import model_validator

from .settings import TrainingSettings


class MLXCrossEncoderConfig(TrainingSettings):
    """Settings of :class:`~mlx_cross_encoder.MLXCrossEncoderTrainer` (encoder cross-encoders).

    ``pretrained_path`` is loaded when the trainer is given no model. Full fine-tuning is the family's default
    (``fine_tune_type=None``); with ``fine_tune_type="lora"`` the classification head (``trainable_modules``,
    default the model's ``head_prefixes``) is trained in full and saved with the adapter.
    """

    family: ClassVar[str] = "cross_encoder"
    pretrained_path: str | None = None
    trainable_modules: tuple[str, ...] | None = None
    dtype: str = "float32"

    @model_validator(mode="after")
    def _quantized_default_full(self) -> MLXCrossEncoderConfig:
        if self.quantize and self.fine_tune() == "full":
            raise ValueError("full fine-tuning of a quantized model is not supported; use fine_tune_type='lora'")
        return self


class Qwen3RerankerConfig(TrainingSettings):
    """Settings of :class:`~mlx_cross_encoder.Qwen3RerankerTrainer` (LLM yes/no rerankers; LoRA by default).

    ``lora_num_layers``: LoRA on the last N decoder blocks (-1: all), as mlx-lm's ``--num-layers``.
    """

    family: ClassVar[str] = "llm"
    model_name: str = "Qwen/Qwen3-Reranker-0.6B"
    instruction: str | None = None
    lora_num_layers: int = -1
    dtype: str = "float32"
