"""ModernBERT for sequence classification (gte-reranker-modernbert-base, Ettin rerankers), as in transformers.

Pre-norm layers without positions in the embeddings: RoPE inside attention, with one base for global layers and
another for local (sliding-window) ones; a GLU MLP; a final norm; a head (dense -> act -> norm) on the first token
or on the mean of the non-pad tokens, then the classifier. Padded batches are run as is (no unpadding): pads are
masked out as keys and, for "mean" pooling, left out of the mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from . import args_from_dict, num_labels_of
from .layers import ACT2FN

GLOBAL, LOCAL = "full_attention", "sliding_attention"


@dataclass
class ModelArgs:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    hidden_activation: str = "gelu"
    max_position_embeddings: int = 8192
    norm_eps: float = 1e-5
    norm_bias: bool = False
    pad_token_id: int = 50283
    attention_bias: bool = False
    mlp_bias: bool = False
    local_attention: int = 128  # the whole window: a local layer sees local_attention // 2 tokens each side
    # transformers < 5 config keys ...
    global_attn_every_n_layers: int = 3
    global_rope_theta: float = 160_000.0
    local_rope_theta: float | None = 10_000.0
    # ... and their transformers >= 5 replacements, which win when present
    layer_types: list[str] | None = None
    rope_parameters: dict[str, Any] | None = None
    classifier_pooling: str = "cls"
    classifier_bias: bool = False
    classifier_activation: str = "gelu"
    num_labels: int = 1

    @classmethod
    def from_dict(cls, params):
        return args_from_dict(cls, {**params, "num_labels": num_labels_of(params)})

    def __post_init__(self):
        if self.layer_types is None:
            every = self.global_attn_every_n_layers
            self.layer_types = [GLOBAL if i % every == 0 else LOCAL for i in range(self.num_hidden_layers)]
        if len(self.layer_types) != self.num_hidden_layers or set(self.layer_types) - {GLOBAL, LOCAL}:
            raise ValueError(f"layer_types must list {GLOBAL!r}/{LOCAL!r} per layer, got {self.layer_types}")
        if self.classifier_pooling not in ("cls", "mean"):
            raise ValueError(f"classifier_pooling must be 'cls' or 'mean', got {self.classifier_pooling!r}")
        for name in (self.hidden_activation, self.classifier_activation):
            if name not in ACT2FN:
                raise ValueError(f"unsupported activation {name!r}; supported: {sorted(ACT2FN)}")

    def rope_theta(self, layer_type: str) -> float:
        params = (self.rope_parameters or {}).get(layer_type) or {}
        if params.get("rope_type", "default") != "default":
            raise ValueError(f"only default RoPE is supported, got rope_type={params['rope_type']!r} ({layer_type})")
        if params.get("rope_theta") is not None:
            return float(params["rope_theta"])
        if layer_type == LOCAL and self.local_rope_theta is not None:
            return float(self.local_rope_theta)
        return float(self.global_rope_theta)  # transformers < 5 used it for local layers too when local is null


class Attention(nn.Module):
    def __init__(self, args: ModelArgs, rope_theta: float):
        super().__init__()
        self.num_heads = args.num_attention_heads
        self.head_dim = args.hidden_size // args.num_attention_heads
        self.rope_theta = rope_theta
        self.Wqkv = nn.Linear(args.hidden_size, 3 * args.hidden_size, bias=args.attention_bias)
        self.Wo = nn.Linear(args.hidden_size, args.hidden_size, bias=args.attention_bias)

    def __call__(self, x, mask):
        B, L, _ = x.shape
        # Wqkv's output is [q | k | v], each (heads, head_dim)
        qkv = self.Wqkv(x).reshape(B, L, 3, self.num_heads, self.head_dim).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        # rotate_half RoPE (halves, not interleaved pairs) over the whole head, positions 0..L-1
        q = mx.fast.rope(q, self.head_dim, traditional=False, base=self.rope_theta, scale=1.0, offset=0)
        k = mx.fast.rope(k, self.head_dim, traditional=False, base=self.rope_theta, scale=1.0, offset=0)
        out = mx.fast.scaled_dot_product_attention(q, k, v, scale=self.head_dim**-0.5, mask=mask)
        return self.Wo(out.transpose(0, 2, 1, 3).reshape(B, L, -1))


class MLP(nn.Module):
    """GLU: Wi -> (input, gate) -> act(input) * gate -> Wo."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.Wi = nn.Linear(args.hidden_size, 2 * args.intermediate_size, bias=args.mlp_bias)
        self.act = ACT2FN[args.hidden_activation]
        self.Wo = nn.Linear(args.intermediate_size, args.hidden_size, bias=args.mlp_bias)

    def __call__(self, x):
        inp, gate = mx.split(self.Wi(x), 2, axis=-1)
        return self.Wo(self.act(inp) * gate)


def layer_norm(args: ModelArgs) -> nn.LayerNorm:
    return nn.LayerNorm(args.hidden_size, eps=args.norm_eps, bias=args.norm_bias)


class Layer(nn.Module):
    def __init__(self, args: ModelArgs, layer_id: int):
        super().__init__()
        self.attention_type = args.layer_types[layer_id]
        # layer 0 reads the embeddings, already normed: transformers has an Identity (no weights) there
        self.attn_norm = nn.Identity() if layer_id == 0 else layer_norm(args)
        self.attn = Attention(args, args.rope_theta(self.attention_type))
        self.mlp_norm = layer_norm(args)
        self.mlp = MLP(args)

    def __call__(self, x, mask):
        x = x + self.attn(self.attn_norm(x), mask)
        return x + self.mlp(self.mlp_norm(x))


class Embeddings(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.tok_embeddings = nn.Embedding(args.vocab_size, args.hidden_size)
        self.norm = layer_norm(args)

    def __call__(self, input_ids):
        return self.norm(self.tok_embeddings(input_ids))


class ModernBertModel(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.embeddings = Embeddings(args)
        self.layers = [Layer(args, i) for i in range(args.num_hidden_layers)]
        self.final_norm = layer_norm(args)


class PredictionHead(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.dense = nn.Linear(args.hidden_size, args.hidden_size, bias=args.classifier_bias)
        self.act = ACT2FN[args.classifier_activation]
        self.norm = layer_norm(args)

    def __call__(self, x):
        return self.norm(self.act(self.dense(x)))


def attention_masks(attention_mask: mx.array, half_window: int, dtype) -> dict[str, mx.array]:
    """Additive masks per layer type: global ``(B, 1, 1, L)`` hides pad keys; local ``(B, 1, L, L)`` also hides
    keys more than ``half_window`` positions away. Each is built from one boolean, so a query with no visible
    key (a pad far from any token) gets a uniform, finite softmax instead of NaN."""
    low, zero = mx.array(mx.finfo(dtype).min, dtype=dtype), mx.array(0.0, dtype=dtype)
    keep = attention_mask[:, None, None, :].astype(mx.bool_)
    masks = {GLOBAL: mx.where(keep, zero, low)}
    L = attention_mask.shape[1]
    if L - 1 <= half_window:
        masks[LOCAL] = masks[GLOBAL]  # every key is within the window
    else:
        pos = mx.arange(L)
        near = mx.abs(pos[:, None] - pos[None, :]) <= half_window
        masks[LOCAL] = mx.where(keep & near[None, None], zero, low)
    return masks


class Model(nn.Module):
    """``ModernBertForSequenceClassification``."""

    uses_token_type_ids = False
    #: trained in full next to LoRA layers (and kept float when the rest is quantized)
    head_prefixes = ("head", "classifier")
    #: every Linear of the encoder layers: attention (Wqkv, Wo) and GLU MLP (Wi, Wo)
    lora_targets = ("Wqkv", "Wo", "Wi")

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.model = ModernBertModel(args)
        self.head = PredictionHead(args)
        self.classifier = nn.Linear(args.hidden_size, args.num_labels)

    @property
    def max_positions(self) -> int:
        """RoPE has no table; transformers' ``max_position_embeddings`` is the trained context (the longest
        ``max_length``)."""
        return self.args.max_position_embeddings

    def encode(self, input_ids, attention_mask, token_type_ids=None):
        """Last hidden states ``(batch, length, hidden)``, after the final norm."""
        x = self.model.embeddings(input_ids)
        masks = attention_masks(attention_mask, self.args.local_attention // 2, x.dtype)
        for layer in self.model.layers:
            x = layer(x, masks[layer.attention_type])
        return self.model.final_norm(x)

    def __call__(self, input_ids, attention_mask, token_type_ids=None):
        hidden = self.encode(input_ids, attention_mask)
        if self.args.classifier_pooling == "cls":
            pooled = hidden[:, 0]
        else:
            keep = attention_mask.astype(hidden.dtype)[..., None]
            pooled = (hidden * keep).sum(axis=1) / keep.sum(axis=1)
        return self.classifier(self.head(pooled))

    def sanitize(self, weights: dict) -> dict:
        out = {}
        for key, value in weights.items():
            if key.endswith("inv_freq") or key.startswith("decoder."):
                continue  # rotary buffers, the masked-LM decoder
            if not key.startswith(("model.", "head.", "classifier.")):
                key = "model." + key  # a bare ModernBertModel checkpoint: the head stays as initialised
            out[key] = value
        return out

    def hf_weights(self, weights: dict) -> dict:
        """The inverse of :meth:`sanitize`: MLX parameter names are transformers' (layer 0 has no attn_norm in
        either), so export keeps them."""
        return dict(weights)
