"""Find a checkpoint (local directory or Hugging Face Hub id) and read its config, weights and tokenizer.

Weights are read from safetensors only. Pickled checkpoints (``pytorch_model.bin``) are never loaded: the
error says how to convert them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import mlx.core as mx

from .errors import ModelLoadError

#: files a reranker needs from a Hub repository (no pickles, no ONNX/OpenVINO exports)
HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja"]

CONVERT_HINT = (
    "convert it once with transformers: "
    "`AutoModelForSequenceClassification.from_pretrained(path).save_pretrained(out_dir, safe_serialization=True)` "
    "(for decoder rerankers use AutoModelForCausalLM), then load out_dir"
)


def resolve_model_dir(name_or_path: str | os.PathLike, revision: str | None = None) -> Path:
    """Return a local directory for ``name_or_path``: the directory itself, or a Hub snapshot.

    Hub downloads go through ``huggingface_hub`` and its cache, so ``HF_HUB_OFFLINE=1`` serves cached
    snapshots without network access.
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"model_name_or_path must be a string or path, got {type(name_or_path).__name__}")
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    text = str(name_or_path)
    if path.exists():
        raise ModelLoadError(f"{text} is a file; expected a model directory or a Hugging Face id")
    looks_local = text.startswith((".", "/", "~")) or text.count("/") > 1 or os.sep + os.sep in text
    if looks_local:
        raise ModelLoadError(f"model directory not found: {text}")
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - huggingface_hub is a dependency
        raise ModelLoadError(f"{text} is not a local directory and huggingface_hub is not installed") from exc
    try:
        return Path(snapshot_download(text, revision=revision, allow_patterns=HUB_PATTERNS))
    except Exception as exc:  # huggingface_hub raises many types (offline, 404, auth)
        raise ModelLoadError(
            f"could not fetch {text!r} from the Hugging Face Hub ({type(exc).__name__}: {exc}); "
            "pass a local directory, or pre-download it (HF_HUB_OFFLINE=1 reads the local cache only)"
        ) from exc


def load_config(model_dir: Path) -> dict[str, Any]:
    file = model_dir / "config.json"
    if not file.is_file():
        raise ModelLoadError(f"{model_dir} has no config.json")
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{file} is not valid JSON: {exc}") from exc


def weight_files(model_dir: Path) -> list[Path]:
    """The safetensors files of a checkpoint, in shard order; a clear error when there are none."""
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError) as exc:
            raise ModelLoadError(f"{index} is not a valid safetensors index: {exc}") from exc
        files = [model_dir / name for name in dict.fromkeys(weight_map.values())]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise ModelLoadError(f"{model_dir}: shards listed in {index.name} are missing: {missing}")
        return files
    single = model_dir / "model.safetensors"
    if single.is_file():
        return [single]
    others = sorted(model_dir.glob("*.safetensors"))
    if others:
        return others
    pickles = [p.name for p in model_dir.glob("*.bin")] + [p.name for p in model_dir.glob("*.pt*")]
    if pickles:
        raise ModelLoadError(
            f"{model_dir} has only pickled weights ({', '.join(sorted(pickles))}); mlx_cross_encoder loads "
            f"safetensors only and never unpickles. To use this model, {CONVERT_HINT}"
        )
    raise ModelLoadError(f"{model_dir} has no model weights (model.safetensors or a sharded index)")


def load_weights(model_dir: Path) -> dict[str, mx.array]:
    weights: dict[str, mx.array] = {}
    for file in weight_files(model_dir):
        try:
            weights.update(mx.load(str(file)))
        except Exception as exc:  # mlx raises RuntimeError/ValueError for truncated or foreign files
            raise ModelLoadError(f"cannot read weights from {file}: corrupt or not safetensors ({exc})") from exc
    return weights


def load_tokenizer(model_dir: Path):
    """The fast tokenizer (``tokenizer.json``) of a checkpoint, as a ``tokenizers.Tokenizer``."""
    from tokenizers import Tokenizer

    file = model_dir / "tokenizer.json"
    if not file.is_file():
        raise ModelLoadError(
            f"{model_dir} has no tokenizer.json; save a fast tokenizer with "
            "`AutoTokenizer.from_pretrained(path).save_pretrained(path)`"
        )
    try:
        return Tokenizer.from_file(str(file))
    except Exception as exc:
        raise ModelLoadError(f"cannot read {file}: {exc}") from exc


def load_json(model_dir: Path, name: str) -> dict[str, Any]:
    """An optional JSON file of the checkpoint ({} when absent)."""
    file = model_dir / name
    if not file.is_file():
        return {}
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{file} is not valid JSON: {exc}") from exc
