"""``Qwen3RerankerTrainer``: LoRA (or full) fine-tuning of LLM yes/no rerankers on mlx-lm models.

The model is scored exactly as :class:`~mlx_cross_encoder.llm_reranker.Qwen3Reranker` scores it: the official
prompt (prefix + truncated body + suffix, the reranker's own tokenization), right padding under the causal
mask, and the next-token logits of each row's last real position. The training score is
``logit("yes") - logit("no")``, so the ranking losses apply unchanged (BCE on it is the two-way softmax
cross-entropy over {no, yes}).

LoRA layers are mlx-lm's (``linear_to_lora_layers``) and adapters are written in mlx-lm's format, so
``Qwen3Reranker(base, adapter_path=...)`` and ``mlx_lm.load(base, adapter_path=...)`` both reload them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from ..base import padded_width
from ..cross_encoder import GPU_LENGTH_MULTIPLE
from .config import Qwen3RerankerConfig
from .gpu_memory import on_gpu
from .lora import fuse_lora
from .trainer import RerankerTrainerBase

logger = logging.getLogger("mlx_cross_encoder.training")

#: mlx-lm's usual LoRA targets inside a decoder block (attention and MLP projections)
DEFAULT_LLM_TARGETS = (
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
)


def quantize_blocks(model: nn.Module, bits: int, group_size: int = 64) -> int:
    """Quantize the Linear layers of the decoder blocks (embeddings and the LM head stay): QLoRA's base."""
    if bits not in (4, 8):
        raise ValueError(f"quantize must be 4 or 8 (bits), got {bits!r}")
    count = 0

    def predicate(path: str, module: nn.Module) -> bool:
        nonlocal count
        ok = isinstance(module, nn.Linear) and ".layers." in f".{path}" and module.weight.shape[-1] % group_size == 0
        count += ok
        return ok

    nn.quantize(model, group_size=group_size, bits=bits, class_predicate=predicate)
    return count


class Qwen3RerankerTrainer(RerankerTrainerBase):
    """Train an LLM yes/no reranker (Qwen3-Reranker by default) with LoRA in MLX.

    Args:
        config: the recipe (:class:`Qwen3RerankerConfig`); ``config.model_name`` is a Hub id or local directory
            (an MLX-quantized checkpoint gives QLoRA; ``config.quantize`` quantizes the blocks in memory).
        reranker: an already loaded :class:`~mlx_cross_encoder.llm_reranker.Qwen3Reranker` to train in place
            (default: built from the config by :meth:`prepare_model`).
    """

    def __init__(self, config: Qwen3RerankerConfig | None = None, reranker=None):
        super().__init__(config or Qwen3RerankerConfig())
        self.reranker = reranker

    @property
    def model(self) -> nn.Module:
        if self.reranker is None:
            raise RuntimeError("call prepare_model() first")
        return self.reranker.model

    def _prepare(self) -> None:
        from mlx_lm.tuner.utils import linear_to_lora_layers

        from ..llm_reranker import Qwen3Reranker

        cfg = self.config
        if self.reranker is None:
            options: dict[str, Any] = {"instruction": cfg.instruction, "dtype": cfg.dtype}
            if cfg.max_length is not None:
                options["max_length"] = cfg.max_length
            self.reranker = Qwen3Reranker(cfg.model_name, **options)
        model = self.reranker.model
        blocks = self._blocks()
        if cfg.lora_num_layers > len(blocks):
            raise ValueError(f"lora_num_layers={cfg.lora_num_layers} but the model has {len(blocks)} layers")
        if cfg.fine_tune() == "full":
            model.freeze()
            chosen = blocks if cfg.lora_num_layers < 0 else blocks[len(blocks) - cfg.lora_num_layers :]
            for block in chosen:
                block.unfreeze()
            # the answer rows are read from the (now trainable) weights: score through the full head
            self.reranker.two_row_head = False
            self.adapter_config = {"fine_tune_type": "full", "num_layers": cfg.lora_num_layers, "lora_parameters": None}
        else:
            if cfg.quantize:
                quantize_blocks(model, cfg.quantize)
            lora_parameters = {
                "rank": cfg.lora_rank,
                "scale": cfg.lora_alpha / cfg.lora_rank,
                "dropout": cfg.lora_dropout,
                "keys": list(cfg.lora_target_modules or DEFAULT_LLM_TARGETS),
            }
            model.freeze()
            num_layers = len(blocks) if cfg.lora_num_layers < 0 else cfg.lora_num_layers
            # mlx-lm walks `model.layers`; multimodal wrappers keep the language model one level down
            target = getattr(model, "language_model", model)
            linear_to_lora_layers(target, num_layers, lora_parameters)
            n_lora = sum(1 for _, m in model.named_modules() if hasattr(m, "lora_a"))
            if n_lora == 0:
                raise ValueError(f"lora_target_modules {lora_parameters['keys']} match no layer of {cfg.model_name}")
            self.adapter_config = {
                "fine_tune_type": "lora",
                "num_layers": num_layers,
                "lora_parameters": lora_parameters,
            }
        mx.eval(model.parameters())

    def _blocks(self) -> list:
        lm = getattr(self.reranker.model, "language_model", self.reranker.model)
        return list(lm.layers)

    def _adapter_extra(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "model": str(cfg.model_name),
            "base_model": str(self.reranker.model_dir),
            "quantize": cfg.quantize,
            "max_length": self.reranker.max_length,
            "instruction": self.reranker.instruction,
            "loss": cfg.loss,
        }

    # -- scoring -------------------------------------------------------------------------------------------
    def _encode(self, pairs):
        ids = self.reranker.tokenize(pairs)
        lengths = [len(x) for x in ids]
        # on a GPU, widths in multiples of 32 (as inference pads): few shapes, so few kernel builds and compiled
        # traces (training/compiled_step.py); the right padding is behind every row's last token (causal mask)
        width = padded_width(max(lengths), GPU_LENGTH_MULTIPLE if on_gpu() else 1)
        batch = np.full((len(ids), width), self.reranker.pad_token_id, dtype=np.int32)
        for row, x in enumerate(ids):
            batch[row, : len(x)] = x
        return (mx.array(batch), mx.array(np.array(lengths, dtype=np.int32) - 1)), sum(lengths)

    def _scores(self, inputs) -> mx.array:
        """``logit(yes) - logit(no)`` at each row's last real token (right padding, causal mask)."""
        tokens, last = inputs
        lm = getattr(self.reranker.model, "language_model", self.reranker.model)
        hidden = lm.model(tokens)[mx.arange(tokens.shape[0]), last]
        logits = lm.lm_head(hidden) if "lm_head" in lm else lm.model.embed_tokens.as_linear(hidden)
        return (logits[:, self.reranker.yes_id] - logits[:, self.reranker.no_id]).astype(mx.float32)

    def score_pair(self, query: str, document: str) -> float:
        """P(yes) of one pair (the reranker's default score)."""
        raw = float(self.predict_scores([(query, document)])[0])
        return float(1.0 / (1.0 + np.exp(-raw)))

    def predict(self, pairs, batch_size: int = 32, **kwargs) -> np.ndarray:
        """The trained reranker's ``Qwen3Reranker.predict`` (P(yes) by default)."""
        self.prepare_model()
        self.reranker.model.eval()
        return self.reranker.predict(pairs, batch_size=batch_size, **kwargs)

    def fuse(self, dequantize: bool = False) -> int:
        """Merge the LoRA layers into the base weights (mlx-lm's ``fuse``); returns how many were fused."""
        return fuse_lora(self.reranker.model, dequantize=dequantize)

    def save_adapter(self, path=None) -> Path:
        """``adapters.safetensors`` + ``adapter_config.json`` (mlx-lm's format; default ``<output_dir>/adapter``)."""
        return super().save_adapter(path)
