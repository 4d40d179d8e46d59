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


#: inference forwards use one fused query/key/value projection where :func:`fuse_projections` prepared it (read at
#: every call: benchmarks switch it to compare)
FUSE_QKV = True


class _FusedQKV:
    """One ``(3 * hidden, hidden)`` weight and its bias holding query, key and value end to end; the three Linear
    layers' parameters are views of it (no second copy). ``parts`` are those six views: the fused path runs only
    while the layers still hold exactly them (a training update or a reload replaces the arrays)."""

    def __init__(self, weight: mx.array, bias: mx.array, parts: tuple):
        self.weight, self.bias, self.parts = weight, bias, parts


class SelfAttention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.num_heads = args.num_attention_heads
        self.head_dim = args.hidden_size // args.num_attention_heads
        self.query = nn.Linear(args.hidden_size, args.hidden_size)
        self.key = nn.Linear(args.hidden_size, args.hidden_size)
        self.value = nn.Linear(args.hidden_size, args.hidden_size)
        self._fused: _FusedQKV | None = None

    def _projections(self) -> tuple:
        return tuple(getattr(getattr(self, n), a, None) for a in ("weight", "bias") for n in ("query", "key", "value"))

    def fuse_qkv(self) -> bool:
        """Make query/key/value one projection for inference (see :class:`_FusedQKV`); False (nothing changed) when
        they are not three plain ``nn.Linear`` with biases (LoRA, quantized)."""
        if not all(
            type(getattr(self, n)) is nn.Linear and "bias" in getattr(self, n) for n in ("query", "key", "value")
        ):
            return False
        weight = mx.concatenate([self.query.weight, self.key.weight, self.value.weight])
        bias = mx.concatenate([self.query.bias, self.key.bias, self.value.bias])
        mx.eval(weight, bias)
        h = self.query.weight.shape[0]
        for i, name in enumerate(("query", "key", "value")):
            layer = getattr(self, name)
            layer.weight, layer.bias = weight[i * h : (i + 1) * h], bias[i * h : (i + 1) * h]
        mx.eval(self._projections())
        self._fused = _FusedQKV(weight, bias, self._projections())
        return True

    def __call__(self, x, mask):
        B, L, _ = x.shape
        fused = self._fused
        if (
            FUSE_QKV
            and fused is not None
            and not self.training
            and all(a is b for a, b in zip(self._projections(), fused.parts))
        ):
            # one (B, L, 3, heads, head_dim) projection; q/k/v are strided views of it (the attention kernels take
            # a last-dimension stride of 1: no copies)
            qkv = mx.addmm(fused.bias, x, fused.weight.T).reshape(B, L, 3, self.num_heads, self.head_dim)
            q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
        else:

            def heads(t):
                return t.reshape(B, L, self.num_heads, self.head_dim).transpose(0, 2, 1, 3)

            q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        out = mx.fast.scaled_dot_product_attention(q, k, v, scale=self.head_dim**-0.5, mask=mask)
        return out.transpose(0, 2, 1, 3).reshape(B, L, -1)


def fuse_projections(model: nn.Module) -> int:
    """:meth:`SelfAttention.fuse_qkv` on every BERT-style attention of ``model`` (BERT, XLM-RoBERTa); returns how
    many were fused.

    Why: on MLX's CUDA backend a MiniLM forward is bound by the host's kernel launches (issue 12, session 6
    profile: ~88 kernels per chunk, ~40 us of host each); one projection instead of three saves two matmul launches
    per layer. The parameters keep their names, shapes and values (views of the fused arrays): loading, LoRA,
    export and training see the same model; training (``model.train()``) and any replaced weight take the plain
    path."""
    return sum(m.fuse_qkv() for m in model.modules() if isinstance(m, SelfAttention))


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
