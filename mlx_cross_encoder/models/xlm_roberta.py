"""XLM-RoBERTa for sequence classification (bge-reranker-base/large, bge-reranker-v2-m3), as in transformers.

The encoder is BERT's (post-norm layers, learned absolute positions), so its modules come from ``bert``; what
differs is here: position ids that skip padding (fairseq style), a single token type in practice, and a
classification head on the first token (dense -> tanh -> out_proj) instead of BERT's pooler.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn

from . import bert
from .layers import attention_mask_4d


@dataclass
class ModelArgs(bert.ModelArgs):
    # transformers' XLMRobertaConfig defaults; real checkpoints set type_vocab_size=1, max_position_embeddings=514
    pad_token_id: int = 1


def position_ids_from_input_ids(input_ids: mx.array, padding_idx: int) -> mx.array:
    """Positions count non-pad tokens from ``padding_idx + 1``; pad tokens get ``padding_idx``."""
    not_pad = (input_ids != padding_idx).astype(mx.int32)
    return mx.cumsum(not_pad, axis=1) * not_pad + padding_idx


class ClassificationHead(nn.Module):
    """``XLMRobertaClassificationHead``: first token (<s>) -> dense -> tanh -> out_proj."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.dense = nn.Linear(args.hidden_size, args.hidden_size)
        self.out_proj = nn.Linear(args.hidden_size, args.num_labels)

    def __call__(self, hidden):
        return self.out_proj(mx.tanh(self.dense(hidden[:, 0])))


class RobertaModel(nn.Module):
    """``XLMRobertaModel(add_pooling_layer=False)``: BERT embeddings and encoder, no pooler."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.embeddings = bert.Embeddings(args)
        self.encoder = bert.Encoder(args)


class Model(nn.Module):
    """``XLMRobertaForSequenceClassification``."""

    #: trained in full next to LoRA layers (and kept float when the rest is quantized)
    head_prefixes = ("classifier",)
    #: PEFT's usual LoRA targets: every Linear of the encoder blocks (the head's dense is under ``classifier``)
    lora_targets = ("query", "key", "value", "dense")

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.roberta = RobertaModel(args)
        self.classifier = ClassificationHead(args)

    @property
    def uses_token_type_ids(self) -> bool:
        # XLM-R tokenizers return no token_type_ids, so transformers embeds type 0 everywhere; real checkpoints
        # have a single type (type_vocab_size=1). Only a checkpoint with several types gets the tokenizer's ids.
        return self.args.type_vocab_size > 1

    @property
    def max_positions(self) -> int:
        # positions start at pad_token_id + 1, so the first pad_token_id + 1 rows are never a real token's
        return self.args.max_position_embeddings - self.args.pad_token_id - 1

    def encode(self, input_ids, attention_mask, token_type_ids=None):
        """Last hidden states ``(batch, length, hidden)``."""
        if token_type_ids is None:
            token_type_ids = mx.zeros_like(input_ids)
        position_ids = position_ids_from_input_ids(input_ids, self.args.pad_token_id)
        x = self.roberta.embeddings(input_ids, token_type_ids, position_ids)
        return self.roberta.encoder(x, attention_mask_4d(attention_mask, x.dtype))

    def __call__(self, input_ids, attention_mask, token_type_ids=None):
        return self.classifier(self.encode(input_ids, attention_mask, token_type_ids))

    def sanitize(self, weights: dict) -> dict:
        out = {}
        for key, value in weights.items():
            if key.endswith(("position_ids", "token_type_ids")) or key.startswith("lm_head."):
                continue  # buffers and the masked-LM head
            if ".pooler." in key or key.startswith("pooler."):
                continue  # XLMRobertaForSequenceClassification builds no pooler; some exports still carry one
            key = key.replace(".attention.self.", ".attention.self_attn.")
            key = key.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
            if not key.startswith(("roberta.", "classifier.")):
                key = "roberta." + key  # a bare XLMRobertaModel checkpoint: the head stays as initialised
            out[key] = value
        return out

    def hf_weights(self, weights: dict) -> dict:
        """The inverse of :meth:`sanitize`: MLX parameter names -> transformers' tensor names (for export)."""
        return {bert.to_hf_name(k): v for k, v in weights.items()}
