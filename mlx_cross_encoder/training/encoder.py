"""``MLXCrossEncoderTrainer``: fine-tune an :class:`~mlx_cross_encoder.MLXCrossEncoder` (full or LoRA/QLoRA)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import mlx.core as mx

from ..cross_encoder import MLXCrossEncoder
from ..precision import quantize_linear_layers, resolve_activation
from .config import MLXCrossEncoderConfig
from .lora import fuse_lora, setup_full, setup_lora
from .trainer import RerankerTrainerBase

logger = logging.getLogger("mlx_cross_encoder.training")


class MLXCrossEncoderTrainer(RerankerTrainerBase):
    """Train a cross-encoder in MLX.

    Args:
        model: an :class:`MLXCrossEncoder` (trained in place), or None to load ``config.pretrained_path``.
        config: the recipe (:class:`MLXCrossEncoderConfig`).

    The model's ``.model`` module is what trains. With LoRA the head is trained in full and saved in the
    adapter; ``MLXCrossEncoder(base, adapter_path=...)`` reloads it. ``export_hf`` writes a Hugging Face
    directory that sentence-transformers' ``CrossEncoder`` loads.
    """

    def __init__(self, model: MLXCrossEncoder | None = None, config: MLXCrossEncoderConfig | None = None):
        config = config or MLXCrossEncoderConfig()
        super().__init__(config)
        if model is None:
            if not config.pretrained_path:
                raise ValueError("pass a model or set config.pretrained_path")
            model = MLXCrossEncoder(config.pretrained_path, dtype=config.dtype, max_length=config.max_length)
        if not isinstance(model, MLXCrossEncoder):
            raise TypeError(f"model must be an MLXCrossEncoder, got {type(model).__name__}")
        if model.num_labels != 1:
            raise ValueError(f"the ranking losses need a model with num_labels == 1, this one has {model.num_labels}")
        self.encoder = model
        if config.max_length is not None and config.max_length != model.max_length:
            model.max_length = min(config.max_length, model.model.max_positions)
            model.tokenizer.enable_truncation(model.max_length, strategy="longest_first")

    @property
    def model(self):
        return self.encoder.model

    def _prepare(self) -> None:
        cfg = self.config
        module = self.encoder.model
        if cfg.fine_tune() == "full":
            self.adapter_config = setup_full(module)
        else:
            if cfg.quantize and not self.encoder.quantize:
                quantize_linear_layers(module, cfg.quantize, skip=module.head_prefixes)
                self.encoder.quantize = cfg.quantize
            self.adapter_config = setup_lora(
                module,
                cfg.lora_rank,
                cfg.lora_alpha,
                cfg.lora_dropout,
                targets=cfg.lora_target_modules or module.lora_targets,
                trainable_modules=cfg.trainable_modules,
            )
        mx.eval(module.parameters())

    def _adapter_extra(self) -> dict[str, Any]:
        return {
            "base_model": str(self.encoder.model_dir),
            "architecture": self.encoder.config["architectures"][0],
            "quantize": self.encoder.quantize,
            "max_length": self.encoder.max_length,
            "loss": self.config.loss,
        }

    def _tokenize(self, pairs):
        return self.encoder.tokenizer.encode_batch(pairs)

    def _encode(self, pairs, tokenized=None):
        encodings = self._tokenize(pairs) if tokenized is None else tokenized
        inputs = self.encoder._collate(encodings)
        return inputs, sum(len(e.ids) for e in encodings)

    def _scores(self, inputs) -> mx.array:
        return self.encoder.model(*inputs)[:, 0]

    # -- convenience ---------------------------------------------------------------------------------------
    def score_pair(self, query: str, document: str, activation_fn=None) -> float:
        """Score of one pair with the model's activation (sigmoid for one-label cross-encoders)."""
        self.prepare_model()
        act = resolve_activation(activation_fn if activation_fn is not None else self.encoder.default_activation)
        raw = self.predict_scores([(query, document)])
        return float(act(mx.array(raw, dtype=mx.float32)).item())

    def predict(self, pairs, batch_size: int = 32, **kwargs):
        """The trained model's ``MLXCrossEncoder.predict``."""
        self.prepare_model()
        self.encoder.model.eval()
        return self.encoder.predict(pairs, batch_size=batch_size, **kwargs)

    def fuse(self, dequantize: bool = False) -> int:
        """Merge the LoRA layers into the base weights (in place); returns how many were fused."""
        return fuse_lora(self.encoder.model, dequantize=dequantize)

    def export_hf(self, path) -> Path:
        """Write a Hugging Face / sentence-transformers directory of the trained model (see ``export``)."""
        from .export import export_hf

        self.prepare_model()
        return export_hf(self.encoder, path)
