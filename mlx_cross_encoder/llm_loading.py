"""Loading an LLM yes/no reranker: the mlx-lm model, an mlx-lm adapter, exact dequantization, the answer tokens and
the token budget. Each step raises :class:`ModelLoadError` / :class:`UnsupportedArchitectureError` naming the file."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from .errors import ModelLoadError, UnsupportedArchitectureError
from .hub import load_json

logger = logging.getLogger("mlx_cross_encoder")


def import_mlx_lm():
    """mlx-lm, imported only when an LLM reranker is built (its package imports transformers)."""
    try:
        from mlx_lm.models.cache import KVCache, make_prompt_cache
        from mlx_lm.utils import load_model
    except ImportError as exc:  # pragma: no cover - mlx-lm is a dependency
        raise ModelLoadError(f"LLM rerankers need mlx-lm (pip install mlx-lm): {exc}") from exc
    return load_model, KVCache, make_prompt_cache


def check_causal_lm(config: dict, model_dir: Path) -> None:
    archs = config.get("architectures") or []
    if any(a.endswith("ForSequenceClassification") for a in archs):
        raise UnsupportedArchitectureError(
            f"{model_dir} is a sequence-classification model ({', '.join(archs)}); "
            "load it with MLXCrossEncoder (or mlx_cross_encoder.load_reranker)"
        )
    if "model_type" not in config:
        raise ModelLoadError(f"{model_dir}/config.json has no model_type")


def rope_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with transformers >= 5's nested ``rope_parameters`` (``{"rope_type", "rope_theta", ...}``, what
    ``save_pretrained`` writes now instead of top-level ``rope_theta`` / ``rope_scaling``) also given at the top
    level, as mlx-lm's older model files (Llama: SmolLM2) read them; without it they fall back to rope_theta 10,000
    and compute with the wrong rotary frequencies."""
    rope = config.get("rope_parameters")
    if not isinstance(rope, dict) or "rope_theta" not in rope:
        return config
    config = dict(config)
    if config.get("rope_theta") is None:
        config["rope_theta"] = rope["rope_theta"]
    if config.get("rope_scaling") is None and rope.get("rope_type", "default") != "default":
        config["rope_scaling"] = rope
    return config


def load_mlx_lm(load_model, model_dir: Path, config: dict) -> nn.Module:
    """The mlx-lm model of a checkpoint directory (lazy weights), its rotary settings read as ``rope_config`` does."""
    try:
        model, _ = load_model(model_dir, lazy=True, model_config=rope_config(config))
    except ValueError as exc:
        if "not supported" in str(exc):
            raise UnsupportedArchitectureError(
                f"{model_dir}: model_type {config.get('model_type')!r} is not an mlx-lm model ({exc})"
            ) from exc
        raise ModelLoadError(f"weights in {model_dir} do not fit its config: {exc}") from exc
    except Exception as exc:
        raise ModelLoadError(f"cannot load {model_dir} with mlx-lm ({type(exc).__name__}: {exc})") from exc
    return model


def model_identities(name_or_path, model_dir: Path) -> set[str]:
    """Names a base model may go by: as given, its directory (resolved), its folder name, a Hub id."""
    names = {str(name_or_path), str(model_dir), str(model_dir.resolve()), model_dir.name}
    for part in model_dir.resolve().parts:  # Hub cache: .../models--Org--Name/snapshots/<hash>
        if part.startswith("models--"):
            names.add(part[len("models--") :].replace("--", "/"))
    names |= {n.rsplit("/", 1)[-1] for n in list(names) if "/" in n and not n.startswith(("/", "."))}
    return names


def load_adapter(model: nn.Module, model_dir: Path, adapter_path, model_name_or_path, check_base: bool) -> None:
    """Apply an mlx-lm LoRA/DoRA adapter directory to ``model`` in place; with ``check_base``, refuse an adapter
    whose ``adapter_config.json`` names another base model."""
    from mlx_lm.tuner.utils import load_adapters

    path = Path(adapter_path).expanduser()
    if not path.is_dir():
        raise ModelLoadError(f"adapter directory not found: {adapter_path}")
    if (path / "adapter.npz").is_file() and not (path / "adapters.safetensors").is_file():
        import tempfile  # a TriBridRAG mlx_qwen3 adapter folder: convert it (mlx_cross_encoder.tribrid.adapters)

        from .tribrid.adapters import convert_tribrid_adapter

        with tempfile.TemporaryDirectory(prefix="tribrid-adapter-") as tmp:
            converted = convert_tribrid_adapter(path, Path(tmp) / "adapter")
            load_adapter(model, model_dir, converted, model_name_or_path, check_base)
            mx.eval(model.parameters())
        return
    for name in ("adapter_config.json", "adapters.safetensors"):
        if not (path / name).is_file():
            raise ModelLoadError(f"{path} is not an mlx-lm adapter: {name} is missing")
    base = load_json(path, "adapter_config.json").get("model")
    if check_base and base:
        base_path = Path(str(base)).expanduser()
        same_dir = base_path.exists() and base_path.resolve() == model_dir.resolve()
        if str(base) not in model_identities(model_name_or_path, model_dir) and not same_dir:
            raise ModelLoadError(
                f"adapter {path} was trained on base model {base!r}, but this reranker loads "
                f"{str(model_name_or_path)!r}; load the adapter's base model, or pass check_adapter_base=False "
                "if it is the same model under another name"
            )
    try:
        load_adapters(model, str(path))
    except (ValueError, KeyError) as exc:
        raise ModelLoadError(f"adapter {path} does not fit {model_dir}: {exc}") from exc


def dequantize_exactly(model: nn.Module) -> bool:
    """Replace quantized layers by float layers holding the very same weight values; False if none were quantized."""
    quantized = (nn.QuantizedLinear, nn.QuantizedEmbedding)
    if not any(isinstance(m, quantized) for _, m in model.named_modules()):
        return False
    from mlx_lm.utils import dequantize_model

    model.set_dtype(mx.float32)  # float16 scales/biases -> float32: dequantization is then exact
    dequantize_model(model)
    return True


def single_token_id(tokenizer, token: str, model_dir: Path) -> int:
    tid = tokenizer.token_to_id(token)
    if tid is None:
        pieces = tokenizer.encode(token, add_special_tokens=False).tokens
        raise ModelLoadError(
            f"the tokenizer of {model_dir} has no single token {token!r} (it splits it into {pieces}); "
            "an LLM yes/no reranker needs single answer tokens: set RerankTemplate(yes=..., no=...)"
        )
    return tid


def resolve_max_length(max_length: int, template_tokens: int, config: dict) -> int:
    """``max_length`` checked against the template's fixed tokens and capped at the model's positions."""
    if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length <= template_tokens:
        raise ValueError(
            f"max_length must be an integer larger than the template's {template_tokens} prefix+suffix tokens, "
            f"got {max_length!r}"
        )
    limit = config.get("max_position_embeddings")
    if isinstance(limit, int) and max_length > limit:
        logger.warning("max_length %d exceeds the model's %d positions; using %d", max_length, limit, limit)
        max_length = limit
    return max_length


def pad_token_id(config: dict, tokenizer) -> int:
    pad = config.get("pad_token_id")
    if isinstance(pad, int):
        return pad
    for token in ("<|endoftext|>", "<pad>", "<|pad|>"):
        if (tid := tokenizer.token_to_id(token)) is not None:
            return tid
    return 0  # right padding: pad ids are never attended to by real tokens
