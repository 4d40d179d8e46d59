"""Load a GGUF checkpoint (llama.cpp's format) into an mlx-lm decoder, with its tokenizer, without transformers.

* Weights: ``mx.load(path, return_metadata=True)`` reads GGUF; Q4_0, Q4_1 and Q8_0 tensors arrive as MLX affine
  quantized triplets (packed ``weight``, ``scales``, ``biases``, group size 32), which dequantize bit-exactly to
  llama.cpp's values once the float16 scales/biases are widened to float32 (what ``dtype="float32"`` does).
  Those layers become ``QuantizedLinear`` / ``QuantizedEmbedding``: MLX computes with the 4/8-bit weights as
  stored. Other GGUF types come out of ``mx.load`` as float arrays.
* Names: GGUF tensor names are mapped to Hugging Face / mlx-lm names (``blk.N.attn_q`` ->
  ``model.layers.N.self_attn.q_proj``, ...). For ``llama`` files, llama.cpp's converter permuted the rows of
  ``attn_q`` / ``attn_k`` (rotate-half -> interleaved RoPE); the permutation is undone (a row permutation of the
  packed weights, scales and biases, so exact), and mlx-lm's default (rotate-half) RoPE is used.
* Config: from the ``{arch}.*`` metadata. Supported architectures: llama (incl. SmolLM, Mistral-style), qwen2,
  qwen3.
* Tokenizer: a ``tokenizers`` byte-level BPE built from ``tokenizer.ggml.tokens`` / ``merges`` with the
  pre-tokenizer that ``tokenizer.ggml.pre`` names (llama.cpp's regexes); control tokens become special tokens,
  user-defined ones (``<think>``) added tokens. SentencePiece GGUF vocabularies (``tokenizer.ggml.model ==
  "llama"``) are not supported here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from .errors import ModelLoadError, UnsupportedArchitectureError

#: GGUF ``general.architecture`` -> (mlx-lm model_type, transformers architecture)
ARCHITECTURES = {
    "llama": ("llama", "LlamaForCausalLM"),
    "qwen2": ("qwen2", "Qwen2ForCausalLM"),
    "qwen3": ("qwen3", "Qwen3ForCausalLM"),
}
#: architectures whose Q/K rows llama.cpp's converter permutes
_PERMUTED_QK = {"llama"}

_TOP_LEVEL = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
_IN_BLOCK = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_SUFFIXES = ("weight", "scales", "biases", "bias")

# llama.cpp's pre-tokenizer regexes (src/llama-vocab.cpp), by ``tokenizer.ggml.pre``
_GPT2_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
_QWEN2_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)
_PRE_TOKENIZERS = {
    # "\p{N}" split first, then GPT-2's regex
    **dict.fromkeys(["smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"], "digits+gpt2"),
    **dict.fromkeys(["gpt-2", "gpt2", "default", None], "gpt2"),
    **dict.fromkeys(["qwen2", "deepseek-r1-qwen"], "qwen2"),
    **dict.fromkeys(["llama3", "llama-v3", "llama-bpe", "smaug-bpe", "dbrx", "falcon3"], "llama3"),
}


def _value(v: Any) -> Any:
    if isinstance(v, mx.array):
        return v.item() if v.ndim == 0 else v.tolist()
    return v


def read_gguf(path: str | os.PathLike) -> tuple[dict[str, mx.array], dict[str, Any]]:
    """``(tensors, metadata)`` of a GGUF file; metadata values as Python scalars / strings / lists."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"GGUF file not found: {path}")
    try:
        tensors, metadata = mx.load(str(path), return_metadata=True)
    except Exception as exc:  # mlx raises RuntimeError/ValueError for foreign or truncated files
        raise ModelLoadError(f"cannot read {path} as GGUF: {exc}") from exc
    return tensors, {k: _value(v) for k, v in metadata.items()}


def gguf_config(metadata: dict[str, Any], tensors: dict[str, mx.array]) -> dict[str, Any]:
    """A Hugging Face style config.json dict for an mlx-lm model, from the GGUF metadata."""
    arch = metadata.get("general.architecture")
    if arch not in ARCHITECTURES:
        raise UnsupportedArchitectureError(
            f"GGUF architecture {arch!r} is not supported; supported: {', '.join(sorted(ARCHITECTURES))}"
        )

    def get(key: str, default: Any = ModelLoadError) -> Any:
        value = metadata.get(f"{arch}.{key}", default)
        if value is ModelLoadError:
            raise ModelLoadError(f"GGUF metadata lacks {arch}.{key}")
        return value

    scaling = metadata.get(f"{arch}.rope.scaling.type")
    if scaling not in (None, "none"):
        raise ModelLoadError(f"GGUF rope scaling {scaling!r} is not supported")
    heads = int(get("attention.head_count"))
    kv_heads = get("attention.head_count_kv", heads)
    if isinstance(kv_heads, list):
        raise ModelLoadError("GGUF with per-layer key/value head counts is not supported")
    hidden = int(get("embedding_length"))
    model_type, hf_arch = ARCHITECTURES[arch]
    tokens = metadata.get("tokenizer.ggml.tokens") or []
    config = {
        "architectures": [hf_arch],
        "model_type": model_type,
        "hidden_size": hidden,
        "num_hidden_layers": int(get("block_count")),
        "intermediate_size": int(get("feed_forward_length")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(kv_heads),
        "head_dim": int(get("attention.key_length", hidden // heads)),
        "rms_norm_eps": float(get("attention.layer_norm_rms_epsilon")),
        "rope_theta": float(get("rope.freq_base", 10000.0)),
        "max_position_embeddings": int(get("context_length")),
        "vocab_size": int(get("vocab_size", len(tokens))),
        "tie_word_embeddings": "output.weight" not in tensors,
    }
    for key, name in (("bos_token_id", "bos"), ("eos_token_id", "eos"), ("pad_token_id", "padding")):
        if f"tokenizer.ggml.{name}_token_id" in metadata:
            config[key] = int(metadata[f"tokenizer.ggml.{name}_token_id"])
    return config


def _unpermute(w: mx.array, n_head: int) -> mx.array:
    """Undo llama.cpp's ``permute`` (rows: per head, interleaved pairs -> rotate-half halves)."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_to_hf_names(tensors: dict[str, mx.array], config: dict[str, Any]) -> dict[str, mx.array]:
    """GGUF tensors renamed to mlx-lm / Hugging Face parameter names (Q/K rows un-permuted for llama)."""
    permuted = config["model_type"] in _PERMUTED_QK
    out: dict[str, mx.array] = {}
    for name, w in tensors.items():
        stem, _, suffix = name.rpartition(".")
        if suffix not in _SUFFIXES:
            raise ModelLoadError(f"unexpected GGUF tensor {name}")
        if stem in _TOP_LEVEL:
            out[f"{_TOP_LEVEL[stem]}.{suffix}"] = w
            continue
        parts = stem.split(".")
        if len(parts) != 3 or parts[0] != "blk" or parts[2] not in _IN_BLOCK:
            if stem == "rope_freqs":
                raise ModelLoadError("GGUF with rope_freqs (Llama-3.1 rope scaling) is not supported")
            raise ModelLoadError(f"unexpected GGUF tensor {name}")
        if permuted and parts[2] in ("attn_q", "attn_k"):
            n_head = config["num_attention_heads"] if parts[2] == "attn_q" else config["num_key_value_heads"]
            w = _unpermute(w, n_head)
        out[f"model.layers.{parts[1]}.{_IN_BLOCK[parts[2]]}.{suffix}"] = w
    return out


def gguf_tokenizer(metadata: dict[str, Any]):
    """A ``tokenizers.Tokenizer`` equivalent to llama.cpp's for a byte-level BPE ("gpt2") GGUF vocabulary."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

    kind = metadata.get("tokenizer.ggml.model")
    if kind != "gpt2":
        raise ModelLoadError(
            f"GGUF tokenizer model {kind!r} is not supported (only byte-level BPE, 'gpt2'); convert the checkpoint "
            "to a Hugging Face folder with a tokenizer.json instead"
        )
    pre = metadata.get("tokenizer.ggml.pre")
    if pre not in _PRE_TOKENIZERS:
        raise ModelLoadError(f"GGUF pre-tokenizer {pre!r} is not supported; known: {sorted(map(str, _PRE_TOKENIZERS))}")
    tokens = metadata.get("tokenizer.ggml.tokens")
    merges = metadata.get("tokenizer.ggml.merges")
    if not tokens or not merges:
        raise ModelLoadError("GGUF metadata lacks tokenizer.ggml.tokens / tokenizer.ggml.merges")
    style = _PRE_TOKENIZERS[pre]
    vocab = {token: i for i, token in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab, [tuple(m.split(" ", 1)) for m in merges], ignore_merges=style == "llama3"))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=style in ("gpt2", "digits+gpt2"))
    if style == "digits+gpt2":
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    elif style == "gpt2":
        tok.pre_tokenizer = byte_level
    else:
        regex = _QWEN2_REGEX if style == "qwen2" else _LLAMA3_REGEX
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(regex), behavior="isolated"), byte_level]
        )
    tok.decoder = decoders.ByteLevel()
    types = metadata.get("tokenizer.ggml.token_type") or []
    control = [AddedToken(t, special=True, normalized=False) for t, k in zip(tokens, types) if k == 3]
    user = [AddedToken(t, special=False, normalized=False) for t, k in zip(tokens, types) if k == 4]
    if control:
        tok.add_special_tokens(control)
    if user:
        tok.add_tokens(user)
    return tok


def load_gguf(path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any], Any]:
    """``(model, config, tokenizer)``: an mlx-lm model with the GGUF's weights (quantized layers stay quantized)."""
    from mlx_lm.utils import _get_classes, infer_quant_config

    tensors, metadata = read_gguf(path)
    config = gguf_config(metadata, tensors)
    weights = gguf_to_hf_names(tensors, config)
    model_class, args_class = _get_classes(config)
    model = model_class(args_class.from_dict(config))
    weights = model.sanitize(weights)

    def quantized(p: str, m: nn.Module):
        if not hasattr(m, "to_quantized") or f"{p}.scales" not in weights:
            return False
        return infer_quant_config(p, m, weights)

    nn.quantize(model, class_predicate=quantized)
    try:
        model.load_weights(list(weights.items()), strict=True)
    except ValueError as exc:
        raise ModelLoadError(f"GGUF tensors of {path} do not fit the {config['model_type']} model: {exc}") from exc
    return model, config, gguf_tokenizer(metadata)
