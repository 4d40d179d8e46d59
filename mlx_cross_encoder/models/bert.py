"""BERT for sequence classification (MiniLM, TinyBERT, ms-marco cross-encoders), as in transformers' BertModel."""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn

from . import args_from_dict, num_labels_of
from .layers import ACT2FN, attention_mask_4d


@dataclass
class ModelArgs:
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    hidden_act: str = "gelu"
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    num_labels: int = 1

    @classmethod
    def from_dict(cls, params):
        return args_from_dict(cls, {**params, "num_labels": num_labels_of(params)})


class SelfAttention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.num_heads = args.num_attention_heads
        self.head_dim = args.hidden_size // args.num_attention_heads
        self.query = nn.Linear(args.hidden_size, args.hidden_size)
        self.key = nn.Linear(args.hidden_size, args.hidden_size)
        self.value = nn.Linear(args.hidden_size, args.hidden_size)

    def __call__(self, x, mask):
        B, L, _ = x.shape

        def heads(t):
            return t.reshape(B, L, self.num_heads, self.head_dim).transpose(0, 2, 1, 3)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        out = mx.fast.scaled_dot_product_attention(q, k, v, scale=self.head_dim**-0.5, mask=mask)
        return out.transpose(0, 2, 1, 3).reshape(B, L, -1)


class DenseNorm(nn.Module):
    """Linear projection, residual add, LayerNorm (BertSelfOutput / BertOutput)."""

    def __init__(self, in_dim: int, args: ModelArgs):
        super().__init__()
        self.dense = nn.Linear(in_dim, args.hidden_size)
        self.LayerNorm = nn.LayerNorm(args.hidden_size, eps=args.layer_norm_eps)

    def __call__(self, x, residual):
        return self.LayerNorm(self.dense(x) + residual)


class Attention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.self_attn = SelfAttention(args)
        self.output = DenseNorm(args.hidden_size, args)

    def __call__(self, x, mask):
        return self.output(self.self_attn(x, mask), x)


class Intermediate(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.dense = nn.Linear(args.hidden_size, args.intermediate_size)
        self.act = ACT2FN[args.hidden_act]

    def __call__(self, x):
        return self.act(self.dense(x))


class Layer(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.attention = Attention(args)
        self.intermediate = Intermediate(args)
        self.output = DenseNorm(args.intermediate_size, args)

    def __call__(self, x, mask):
        x = self.attention(x, mask)
        return self.output(self.intermediate(x), x)


class Embeddings(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.word_embeddings = nn.Embedding(args.vocab_size, args.hidden_size)
        self.position_embeddings = nn.Embedding(args.max_position_embeddings, args.hidden_size)
        self.token_type_embeddings = nn.Embedding(args.type_vocab_size, args.hidden_size)
        self.LayerNorm = nn.LayerNorm(args.hidden_size, eps=args.layer_norm_eps)

    def __call__(self, input_ids, token_type_ids, position_ids):
        x = self.word_embeddings(input_ids) + self.position_embeddings(position_ids)
        return self.LayerNorm(x + self.token_type_embeddings(token_type_ids))


class Encoder(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.layer = [Layer(args) for _ in range(args.num_hidden_layers)]

    def __call__(self, x, mask):
        for layer in self.layer:
            x = layer(x, mask)
        return x


class Pooler(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.dense = nn.Linear(args.hidden_size, args.hidden_size)

    def __call__(self, hidden):
        return mx.tanh(self.dense(hidden[:, 0]))


class BertModel(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.embeddings = Embeddings(args)
        self.encoder = Encoder(args)
        self.pooler = Pooler(args)


class Model(nn.Module):
    """``BertForSequenceClassification``: CLS -> pooler (dense + tanh) -> classifier."""

    uses_token_type_ids = True
    #: trained in full next to LoRA layers (and kept float when the rest is quantized)
    head_prefixes = ("classifier",)
    #: PEFT's usual LoRA targets: every Linear of the encoder blocks (and the pooler)
    lora_targets = ("query", "key", "value", "dense")

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.bert = BertModel(args)
        self.classifier = nn.Linear(args.hidden_size, args.num_labels)

    @property
    def max_positions(self) -> int:
        """Tokens the learned position table can address (the longest ``max_length``)."""
        return self.args.max_position_embeddings

    def encode(self, input_ids, attention_mask, token_type_ids=None):
        """Last hidden states ``(batch, length, hidden)``."""
        if token_type_ids is None:
            token_type_ids = mx.zeros_like(input_ids)
        position_ids = mx.arange(input_ids.shape[1])[None]
        x = self.bert.embeddings(input_ids, token_type_ids, position_ids)
        return self.bert.encoder(x, attention_mask_4d(attention_mask, x.dtype))

    def __call__(self, input_ids, attention_mask, token_type_ids=None):
        hidden = self.encode(input_ids, attention_mask, token_type_ids)
        return self.classifier(self.bert.pooler(hidden))

    def sanitize(self, weights: dict) -> dict:
        out = {}
        for key, value in weights.items():
            if key.endswith("position_ids") or key.startswith("cls."):
                continue  # buffers and pre-training heads
            key = key.replace(".attention.self.", ".attention.self_attn.")
            key = key.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
            if not key.startswith(("bert.", "classifier.")):
                key = "bert." + key  # a bare BertModel checkpoint: classification head stays as initialised
            out[key] = value
        return out

    def hf_weights(self, weights: dict) -> dict:
        """The inverse of :meth:`sanitize`: MLX parameter names -> transformers' tensor names (for export)."""
        return {to_hf_name(k): v for k, v in weights.items()}


def to_hf_name(name: str) -> str:
    """MLX name -> transformers' name for BERT-style encoders (also used by ``xlm_roberta``)."""
    return name.replace(".attention.self_attn.", ".attention.self.")
