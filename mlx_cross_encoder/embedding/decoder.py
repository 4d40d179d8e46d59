"""Decoder (causal-LM) backbones for embedders, through mlx-lm: Qwen3 / Gemma-3 text / Llama (SmolLM2) folders.

The backbone is the mlx-lm model's inner ``model`` (embeddings, blocks, final norm; no LM head): its output is
what ``transformers.AutoModel`` returns as ``last_hidden_state``, the token embeddings that sentence-transformers
pools. Batches are right-padded; causal attention never lets a real token see the padding after it, so mean
pooling over the mask and the last real token are exact. Two weight layouts load: a causal-LM checkpoint
(``model.*`` + ``lm_head``) and a bare backbone as ``SentenceTransformer.save`` writes it (no ``model.`` prefix).
mlx-lm is imported here only (its package imports transformers, never torch from this package).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from ..errors import ModelLoadError, UnsupportedArchitectureError
from ..hub import load_weights
from ..llm_loading import rope_config

PREFIX = "model."


def decoder_classes(config: dict[str, Any], model_dir: Path):
    """mlx-lm's ``(Model, ModelArgs)`` for the folder's ``model_type``; an error naming it when mlx-lm has none."""
    try:
        from mlx_lm.utils import _get_classes
    except ImportError as exc:  # pragma: no cover - mlx-lm is a dependency
        raise ModelLoadError(f"decoder embedders need mlx-lm (pip install mlx-lm): {exc}") from exc
    try:
        return _get_classes(config)
    except ValueError as exc:
        raise UnsupportedArchitectureError(
            f"{model_dir}/config.json: model_type {config.get('model_type')!r} is neither a BERT-family encoder nor "
            f"an mlx-lm decoder ({exc})"
        ) from exc


class DecoderBackbone:
    """Token embeddings ``(batch, length, hidden)`` of a decoder folder, weights in ``dtype``."""

    def __init__(self, model_dir: Path, config: dict[str, Any], dtype):
        config = rope_config(config)
        model_cls, args_cls = decoder_classes(config, model_dir)
        model = model_cls(args_cls.from_dict(config))
        weights = load_weights(model_dir)
        if not any(k.startswith(PREFIX) for k in weights):  # a bare backbone (SentenceTransformer.save)
            weights = {PREFIX + k: v for k, v in weights.items()}
        if hasattr(model, "sanitize"):
            weights = model.sanitize(weights)
        self.model = model.model
        expected = {k for k, _ in nn.utils.tree_flatten(self.model.parameters())}
        backbone = {k[len(PREFIX) :]: v for k, v in weights.items() if k.startswith(PREFIX)}
        missing, unexpected = sorted(expected - backbone.keys()), sorted(backbone.keys() - expected)
        if missing or unexpected:
            raise ModelLoadError(
                f"weights in {model_dir} do not fit a {config.get('model_type')} decoder: missing {missing[:4]}, "
                f"unexpected {unexpected[:4]}"
            )
        self.model.load_weights([(k, v.astype(dtype)) for k, v in backbone.items()])
        mx.eval(self.model.parameters())
        self.model.eval()
        positions = config.get("max_position_embeddings")
        self.max_positions = int(positions) if isinstance(positions, int) and positions > 0 else 1 << 31

    def __call__(self, ids: mx.array, mask: mx.array) -> mx.array:
        """Right-padded ``ids``; ``mask`` is unused (causal attention keeps real tokens off the padding after them)."""
        return self.model(ids)
