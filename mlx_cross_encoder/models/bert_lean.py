"""BERT's inference forward with fewer GPU kernels (issue 12: on MLX's CUDA backend a MiniLM chunk is bound by the
host's kernel launches, ~31 us each on the H200's host, ~70 kernels per chunk; session 7 profile). Same parameters,
same function; :func:`prepare` (called by ``MLXCrossEncoder`` where attention is fused) computes a few derived
arrays once, and ``bert.Model.encode`` takes this path at inference while they are current:

* inputs (``LEAN_INPUTS``): positions are the first L rows of the position table (a view: no arange, no gather),
  the word + position + token-type sum is ONE compiled elementwise kernel (with 2 token types the type embedding is
  a select between its two rows: exact, no gather), and the additive attention mask is one compiled kernel
  (``astype`` + ``where`` fused). 7 + 2 kernels -> 3 + 1.
* residual adds (``FOLD_BIAS``): BERT's ``LayerNorm(x @ W.T + b + residual)`` is one ``addmm`` with the residual
  as its C matrix (cuBLAS adds it in the epilogue, MLX 0.32's AddMM) if the residual already holds ``b``. So each
  LayerNorm writes its output SHIFTED by the bias of the dense layer that adds it back (its beta + that bias), and
  the projections that read the shifted stream get ``bias - shift @ W.T`` (float32, once). The last layer's output
  is unshifted (the pooler reads it). Saves the 2 residual adds per layer (12 of MiniLM's kernels). Equal to the
  plain forward up to rounding (a shifted stream is rounded where the plain one is: tests compare both ways).

Training (``model.train()``) and any replaced parameter (an update, a reload, LoRA, quantization) take the plain
path: the derived arrays are only used while every parameter they came from is the same array object.
"""

from __future__ import annotations

import operator
from functools import partial

import mlx.core as mx
import mlx.nn as nn

from .layers import attention_mask_4d

#: read at every call (benchmarks switch them to compare); both need :func:`prepare` to have run
LEAN_INPUTS = True
FOLD_BIAS = True


@mx.compile
def _embedding_sum(words, positions, types, type0, type1):
    """``(words + positions) + type_table[types]`` for a 2-row type table: the plain path's adds in its order."""
    return (words + positions) + mx.where(types[..., None] != 0, type1, type0)


@mx.compile
def _embedding_sum_gathered(words, positions, type_rows):
    return (words + positions) + type_rows


_MASKS: dict = {}


def additive_mask(attention_mask: mx.array, dtype) -> mx.array:
    """:func:`layers.attention_mask_4d` as one compiled kernel per dtype."""
    fn = _MASKS.get(dtype) or _MASKS.setdefault(dtype, mx.compile(partial(attention_mask_4d, dtype=dtype)))
    return fn(attention_mask)


class Prepared:
    """The derived arrays of one BERT model and what they came from: ``containers[i][keys[i]] is values[i]`` for
    every module on the way to their source parameters and every such parameter (:func:`_references`)."""

    def __init__(self, references: list[tuple], emb_beta: mx.array, layers: list[tuple]):
        self.containers, self.keys = (tuple(r[i] for r in references) for i in range(2))
        self.values = tuple(map(operator.getitem, self.containers, self.keys))
        self.emb_beta, self.layers = emb_beta, layers

    def is_current(self) -> bool:
        """Every module and parameter still the same object (one C-level pass: a few microseconds)."""
        return all(map(operator.is_, map(operator.getitem, self.containers, self.keys), self.values))


def _modules(model) -> list:
    """The modules whose parameters the lean path reads: the embeddings' LayerNorm, then per layer query/key/value,
    the attention's output dense + LayerNorm, the intermediate dense, the output dense + LayerNorm."""
    out = [model.bert.embeddings.LayerNorm]
    for layer in model.bert.encoder.layer:
        att = layer.attention.self_attn
        out += [att.query, att.key, att.value, layer.attention.output.dense, layer.attention.output.LayerNorm]
        out += [layer.intermediate.dense, layer.output.dense, layer.output.LayerNorm]
    return out


def _references(model) -> list[tuple]:
    """``(container, key)`` of each module from ``model`` down to the parameters the derived arrays come from (the
    biases, the dense weights, held transposed, and the fused q/k/v) and of those parameters: a replaced module (LoRA), weight
    or bias (an update, a reload) shows as ``container[key]`` being another object. Modules are dicts in MLX."""

    def path(parent, *keys):
        refs = []
        for key in keys:
            refs.append((parent, key))
            parent = parent[key]
        return refs, parent

    refs, encoder = path(model, "bert", "encoder")
    more, emb_norm = path(model["bert"], "embeddings", "LayerNorm")
    refs += more + [(emb_norm, "bias"), (encoder, "layer")]
    for i, layer in enumerate(encoder["layer"]):
        refs.append((encoder["layer"], i))
        for keys, params in (
            (("attention", "self_attn", "query"), ("weight", "bias")),
            (("attention", "self_attn", "key"), ("weight", "bias")),
            (("attention", "self_attn", "value"), ("weight", "bias")),
            (("attention", "output", "dense"), ("weight", "bias")),
            (("attention", "output", "LayerNorm"), ("bias",)),
            (("intermediate", "dense"), ("weight", "bias")),
            (("output", "dense"), ("weight", "bias")),
            (("output", "LayerNorm"), ("bias",)),
        ):
            more, module = path(layer, *keys)
            refs += more + [(module, name) for name in params]
        refs.append((vars(layer["attention"]["self_attn"]), "_fused"))  # a plain attribute, not a dict entry
    return refs


def prepare(model) -> bool:
    """Derive the folded biases of ``model`` (a ``bert.Model`` whose attentions are fused,
    :func:`bert.fuse_projections`); False (nothing derived) otherwise."""
    layers = model.bert.encoder.layer
    if not layers or any(layer.attention.self_attn._fused is None for layer in layers):
        return False
    plain = {nn.Linear: "bias", nn.LayerNorm: "bias"}
    if not all(plain.get(type(m)) in m for m in _modules(model)):  # LoRA, quantized, bias-free layers: not here
        return False

    def f32(a):
        return a.astype(mx.float32)

    dtype = layers[0].attention.output.dense.bias.dtype
    shifts = [layer.attention.output.dense.bias for layer in layers]  # what each layer's input stream holds
    derived = []
    for i, layer in enumerate(layers):
        fused = layer.attention.self_attn._fused
        shift_in, shift_mid = shifts[i], layer.output.dense.bias
        shift_out = shifts[i + 1] if i + 1 < len(layers) else None
        qkv_bias = f32(fused.bias) - f32(shift_in) @ f32(fused.weight).T
        inter = layer.intermediate.dense
        inter_bias = f32(inter.bias) - f32(shift_mid) @ f32(inter.weight).T
        beta1 = f32(layer.attention.output.LayerNorm.bias) + f32(shift_mid)
        beta2 = f32(layer.output.LayerNorm.bias) + (f32(shift_out) if shift_out is not None else 0)
        biases = tuple(a.astype(dtype) for a in (qkv_bias, beta1, inter_bias, beta2))
        # the four weights transposed once (views of the same memory): no transpose op built per forward
        weights = (fused.weight, layer.attention.output.dense.weight, inter.weight, layer.output.dense.weight)
        derived.append(biases + tuple(w.T for w in weights))
    emb_beta = (f32(model.bert.embeddings.LayerNorm.bias) + f32(shifts[0])).astype(dtype)
    mx.eval(emb_beta, derived)
    model._lean = Prepared(_references(model), emb_beta, derived)
    return True


def current(model) -> Prepared | None:
    """The model's derived arrays when they may be used now (inference, every source parameter unchanged)."""
    lean = getattr(model, "_lean", None)
    if lean is None or model.training or not lean.is_current():
        return None
    return lean


def describe(model) -> dict | None:
    """The lean path's two switches as the next forward of ``model`` takes them, or None when it takes the plain
    forward (nothing prepared: float32 on CUDA, the CPU, other architectures; or stale, or training)."""
    if current(model) is None:
        return None
    from .bert import FUSE_QKV  # here: bert imports this module

    return {"lean_inputs": LEAN_INPUTS, "fold_bias": FOLD_BIAS and FUSE_QKV}


def embed(model, input_ids, token_type_ids, lean: Prepared | None):
    """Word + position + token-type embeddings summed (before the LayerNorm), in 1-2 kernels + the word gather."""
    emb = model.bert.embeddings
    words = emb.word_embeddings(input_ids)
    positions = emb.position_embeddings.weight[: input_ids.shape[1]]
    table = emb.token_type_embeddings.weight
    if table.shape[0] == 2:
        return _embedding_sum(words, positions, token_type_ids, table[0:1], table[1:2])  # slices: views, not gathers
    return _embedding_sum_gathered(words, positions, emb.token_type_embeddings(token_type_ids))


def folded_encoder(model, x, mask, lean: Prepared):
    """The encoder from the embeddings' sum ``x`` (before their LayerNorm) with the biases folded (module doc)."""
    emb_ln = model.bert.embeddings.LayerNorm
    s = mx.fast.layer_norm(x, emb_ln.weight, lean.emb_beta, emb_ln.eps)
    B, L, _ = x.shape
    for layer, (qkv_bias, beta1, inter_bias, beta2, qkv_t, attn_t, inter_t, out_t) in zip(
        model.bert.encoder.layer, lean.layers
    ):
        att = layer.attention.self_attn
        qkv = mx.addmm(qkv_bias, s, qkv_t).reshape(B, L, 3, att.num_heads, att.head_dim)
        q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
        a = mx.fast.scaled_dot_product_attention(q, k, v, scale=att.head_dim**-0.5, mask=mask)
        a = a.transpose(0, 2, 1, 3).reshape(B, L, -1)
        out = layer.attention.output
        s = mx.fast.layer_norm(mx.addmm(s, a, attn_t), out.LayerNorm.weight, beta1, out.LayerNorm.eps)
        i = layer.intermediate.act(mx.addmm(inter_bias, s, inter_t))
        out = layer.output
        s = mx.fast.layer_norm(mx.addmm(s, i, out_t), out.LayerNorm.weight, beta2, out.LayerNorm.eps)
    return s
