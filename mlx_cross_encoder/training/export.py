"""Export a (fine-tuned) MLX cross-encoder as a Hugging Face directory.

The directory holds ``config.json``, ``model.safetensors`` with transformers' tensor names (the model file's
``hf_weights``, the inverse of its ``sanitize``), and the tokenizer files, so ``transformers`` and sentence-transformers'
``CrossEncoder`` load it and give the same scores. LoRA layers are merged and quantized layers dequantized
into float32 tensors on the way out; the model being exported is not modified.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from .lora import is_lora_linear, write_dir_atomically

#: the tokenizer's files (and an LLM's generation_config.json) copied next to exported weights when the source has
#: them: the cross-encoder export here and the harness's merged LLM folders (harness.train.worker)
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "sentencepiece.bpe.model",
    "spiece.model",
    "tokenizer.model",
    "added_tokens.json",
    "generation_config.json",
)

# sentence-transformers records the activation as a torch class path in config.json
ST_ACTIVATIONS = {
    "sigmoid": "torch.nn.modules.activation.Sigmoid",
    "identity": "torch.nn.modules.linear.Identity",
    "tanh": "torch.nn.modules.activation.Tanh",
    "softmax": "torch.nn.modules.activation.Softmax",
}


def merged_parameters(model: nn.Module) -> dict[str, mx.array]:
    """Plain (un-adapted, float) parameters of ``model``: LoRA merged into its base, quantized weights expanded."""
    modules = dict(model.named_modules())
    lora = [p for p, m in modules.items() if is_lora_linear(m)]
    quant = [
        p
        for p, m in modules.items()
        if isinstance(m, nn.QuantizedLinear) and not any(p.startswith(done + ".") for done in lora)
    ]
    replaced: dict[str, nn.Module] = {}
    for path in lora:
        replaced[path] = modules[path].fuse(dequantize=True)  # a new Linear; the LoRA module stays as it is
    for path in quant:
        q = modules[path]
        linear = nn.Linear(1, 1, bias="bias" in q)
        linear.weight = mx.dequantize(q.weight, q.scales, q.biases, q.group_size, q.bits, mode=q.mode)
        if "bias" in q:
            linear.bias = q.bias
        replaced[path] = linear
    out: dict[str, mx.array] = {}
    for name, value in tree_flatten(model.parameters()):
        if any(name.startswith(p + ".") for p in replaced):
            continue
        out[name] = value
    for path, linear in replaced.items():
        for leaf, value in tree_flatten(linear.parameters()):
            out[f"{path}.{leaf}"] = value
    return out


def to_hf_state_dict(model: nn.Module, architecture: str, dtype=mx.float32) -> dict[str, mx.array]:
    """transformers-named tensors of ``model``; checked to map back onto the model through its ``sanitize``."""
    if not hasattr(model, "hf_weights"):
        raise NotImplementedError(f"{architecture}'s model file declares no hf_weights (the inverse of sanitize)")
    params = merged_parameters(model)
    hf = {k: v.astype(dtype) for k, v in model.hf_weights(params).items()}
    back = model.sanitize(dict(hf))
    if set(back) != set(params):
        diff = sorted(set(back) ^ set(params))[:4]
        raise RuntimeError(f"exported names do not round-trip through {architecture}.sanitize: {diff}")
    return hf


def export_hf(encoder, path, dtype=mx.float32) -> Path:
    """Write ``encoder`` (an ``MLXCrossEncoder``, possibly with LoRA/quantized layers) to ``path`` atomically."""
    arch = encoder.config["architectures"][0]
    tensors = to_hf_state_dict(encoder.model, arch, dtype)
    mx.eval(tensors)
    config = {k: v for k, v in encoder.config.items() if k not in ("quantization", "quantization_config")}
    config["architectures"] = [arch]
    config["torch_dtype"] = {mx.float32: "float32", mx.float16: "float16", mx.bfloat16: "bfloat16"}[dtype]
    config.pop("dtype", None)
    activation = encoder.default_activation
    st = dict(config.get("sentence_transformers") or {})
    if isinstance(activation, str) and activation in ST_ACTIVATIONS:
        st["activation_fn"] = ST_ACTIVATIONS[activation]
    config["sentence_transformers"] = st
    source = Path(encoder.model_dir)

    def write(tmp: Path):
        mx.save_safetensors(str(tmp / "model.safetensors"), tensors, metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        for name in TOKENIZER_FILES:
            if (source / name).is_file():
                shutil.copy2(source / name, tmp / name)

    return write_dir_atomically(Path(path), write)
