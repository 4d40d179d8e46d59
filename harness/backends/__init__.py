"""Reranker backends behind one small interface, so every system in a comparison is measured the same way.

``load_backend(spec, max_length, model_dir=None) -> Backend`` builds the backend named by ``spec.backend``
(``harness.backends.registry.BACKENDS``: name -> ``BackendInfo`` naming the module with a
``load(spec, max_length, model_dir)`` function, its options and trainers). ``spec`` is a
``harness.suite.RerankerSpec`` or anything with the same attributes (``name, backend, model, dtype,
batch_size, max_length, device, instruction, options``).

Truncation and precision are never left to a backend's defaults: the runner resolves one ``max_length`` per
reranker (:func:`resolve_max_length`) and passes it explicitly; ``dtype`` None means float32 everywhere.
Heavy libraries (mlx, torch) are imported only inside their backend module.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from .bi_encoder import declared_max_seq_length, model_kind
from .registry import BACKENDS, BackendInfo  # noqa: F401  (the one registry of backends)

DEFAULT_DTYPE = "float32"
#: float32 weights and activations, float32 matmuls in TF32 where the hardware has TF32 units (CUDA compute
#: capability >= 8.0; MLX also Apple GPUs with neural accelerators); elsewhere plain float32, recorded as such
#: (``system.float32_matmul``). ``float32`` is full float32 on every backend.
TF32 = "tf32"
_DTYPE_ALIASES = {
    "float32": "float32",
    "fp32": "float32",
    "tf32": TF32,
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}

#: model types whose position ids start at pad_token_id + 1 (RoBERTa family): usable positions are fewer
_OFFSET_POSITIONS = {"roberta", "xlm-roberta", "camembert", "xlm_roberta"}
#: tokenizer ``model_max_length`` at or above this is transformers' "no limit" placeholder (int(1e30))
_INSANE_LENGTH = 1_000_000


def max_batch_tokens(options) -> int | None:
    """The ``max_batch_tokens`` option (padded tokens per batch), checked; None when not set."""
    value = options.get("max_batch_tokens")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise BackendError(f"option max_batch_tokens must be a positive integer, got {value!r}")
    return value


class BackendError(ValueError):
    """A reranker cannot be run as configured (unknown backend, option, dtype, device or architecture)."""


def canonical_dtype(dtype: str | None) -> str:
    """ "float32" | "tf32" | "float16" | "bfloat16" (None -> float32); a clear error for anything else."""
    if dtype is None:
        return DEFAULT_DTYPE
    if isinstance(dtype, str) and dtype.lower() in _DTYPE_ALIASES:
        return _DTYPE_ALIASES[dtype.lower()]
    raise BackendError(f"unsupported dtype {dtype!r}; use float32, tf32, float16 or bfloat16")


def storage_dtype(dtype: str) -> str:
    """The dtype weights and activations are held in: float32 for ``tf32``, the dtype itself otherwise."""
    return "float32" if dtype == TF32 else dtype


def read_json(path: Path) -> dict[str, Any]:
    """A checkpoint's optional JSON file ({} when absent); a clear error when it is not JSON.

    (Like ``mlx_cross_encoder.hub.load_json``, without importing mlx: the parent and torch workers use it.)"""
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BackendError(f"{path} is not valid JSON: {exc}") from exc


def is_causal_lm(config: dict[str, Any]) -> bool:
    """True for LLM rerankers (``*ForCausalLM``), which score with yes/no logits instead of a head."""
    return any(str(a).endswith("ForCausalLM") for a in config.get("architectures") or [])


def resolve_model_dir(ref: str) -> Path:
    """``local:<name>``, a directory or a Hub id -> the local directory every backend then loads.

    Hub ids go through ``mlx_cross_encoder.hub`` (safetensors, configs and tokenizers only, no pickles), so the
    MLX and PyTorch backends read the very same files.
    """
    from mlx_cross_encoder.hub import resolve_model_dir as hub_dir

    from ..localmodels import resolve_model

    return hub_dir(resolve_model(ref)).resolve()


def position_limit(config: dict[str, Any]) -> int | None:
    """How many tokens the model's position embeddings can address (None when the config does not say)."""
    for key in ("max_position_embeddings", "n_positions", "max_seq_len"):
        value = config.get(key)
        if isinstance(value, int) and value > 0:
            if config.get("model_type") in _OFFSET_POSITIONS:
                pad = config.get("pad_token_id")
                value -= (1 if pad is None else int(pad)) + 1
            return value
    return None


#: max_length of LLM rerankers when the suite sets none (the Qwen3-Reranker model card's)
LLM_DEFAULT_MAX_LENGTH = 8192


def resolve_max_length(model_dir: Path, requested: int | None) -> tuple[int, str]:
    """One truncation length for a reranker: ``(max_length, source)``.

    ``requested`` (the suite's value) wins; it may not exceed the position limit, since backends would then
    disagree (one clamps, another fails). Unset: the smaller of the tokenizer's ``model_max_length`` (when it is
    a real limit, not transformers' 1e30 placeholder) and the position limit. ``source`` says which applied:
    "suite", "tokenizer" or "positions" ("llm-default": causal LMs are capped at 8192 unless the suite says;
    "sentence-transformers": an embedding folder's ``sentence_bert_config.json`` max_seq_length, capped at the
    positions, as ``SentenceTransformer`` truncates).
    """
    model_dir = Path(model_dir)
    config = read_json(model_dir / "config.json")
    if not config:
        raise BackendError(f"{model_dir} has no config.json")
    positions = position_limit(config)
    if requested is None and (declared := declared_max_seq_length(model_dir)) is not None:
        return (declared if positions is None else min(declared, positions)), "sentence-transformers"
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 2:
            raise BackendError(f"max_length must be an integer >= 2, got {requested!r}")
        if positions is not None and requested > positions:
            raise BackendError(
                f"max_length {requested} exceeds the {positions} positions of {model_dir.name}; "
                f"use max_length <= {positions}"
            )
        return requested, "suite"
    declared = read_json(model_dir / "tokenizer_config.json").get("model_max_length")
    tokenizer_limit = (
        int(declared)
        if isinstance(declared, (int, float)) and not isinstance(declared, bool) and 2 <= declared < _INSANE_LENGTH
        else None
    )
    if tokenizer_limit is None and positions is None:
        raise BackendError(
            f"cannot tell the maximum input length of {model_dir.name} (no max_position_embeddings in config.json, "
            "no model_max_length in tokenizer_config.json); set max_length in the suite"
        )
    if positions is None or (tokenizer_limit is not None and tokenizer_limit <= positions):
        length, source = tokenizer_limit, "tokenizer"
    else:
        length, source = positions, "positions"
    if is_causal_lm(config) and length > LLM_DEFAULT_MAX_LENGTH:  # Qwen3Reranker's (and the model card's) 8192
        return LLM_DEFAULT_MAX_LENGTH, "llm-default"
    return length, source


# -- weights fingerprint ---------------------------------------------------------------------------------
def _fingerprint_cache_file() -> Path:
    from ..localmodels import cache_dir

    return cache_dir() / "weights-sha256.json"


def _file_sha256(path: Path, cache: dict[str, Any]) -> str:
    stat = path.stat()
    key = str(path.resolve())
    entry = cache.get(key)
    if entry and entry.get("mtime_ns") == stat.st_mtime_ns and entry.get("size") == stat.st_size:
        return entry["sha256"]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    cache[key] = {"mtime_ns": stat.st_mtime_ns, "size": stat.st_size, "sha256": h.hexdigest()}
    return cache[key]["sha256"]


def weights_fingerprint(model_dir: Path) -> str | None:
    """sha256 of the checkpoint's safetensors weights (None when it has none).

    One file: that file's sha256 (compare with ``shasum -a 256 model.safetensors``). Several shards: sha256 of
    the lines ``"<file name> <sha256>\\n"`` in name order. Hashes are cached on disk by path, mtime and size.
    """
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        return None
    cache_file = _fingerprint_cache_file()
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, json.JSONDecodeError):
        cache = {}
    before = json.dumps(cache, sort_keys=True)
    digests = [(f.name, _file_sha256(f, cache)) for f in files]
    if json.dumps(cache, sort_keys=True) != before:
        try:  # atomic: concurrent workers at worst recompute a hash
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".weights-sha256-", dir=cache_file.parent)
            with os.fdopen(fd, "w") as f:
                json.dump(cache, f, indent=1, sort_keys=True)
            os.replace(tmp, cache_file)
        except OSError:
            pass
    if len(digests) == 1:
        return digests[0][1]
    return hashlib.sha256("".join(f"{name} {sha}\n" for name, sha in digests).encode()).hexdigest()


# -- the interface ---------------------------------------------------------------------------------------
class Backend(ABC):
    """A loaded reranker. Subclasses set ``name``, ``device``, ``max_length``, ``dtype``, ``model_dir``."""

    name: str
    device: str
    max_length: int
    dtype: str
    model_dir: Path

    def __init__(self, spec, max_length: int, model_dir: Path):
        self.spec = spec
        self.model_ref = spec.model
        self.batch_size = int(getattr(spec, "batch_size", 32) or 32)
        self.options = dict(getattr(spec, "options", None) or {})
        self.instruction = getattr(spec, "instruction", None)
        self.model_dir = Path(model_dir)
        self.config = read_json(self.model_dir / "config.json")
        self.dtype = canonical_dtype(getattr(spec, "dtype", None))
        self.max_length = max_length

    def check_options(self, known: set[str]) -> None:
        max_batch_tokens(self.options)  # a clear error for a bad budget, at load
        unknown = sorted(set(self.options) - known)
        if unknown:
            raise BackendError(
                f"unknown option(s) {', '.join(unknown)} for the {self.name} backend; "
                f"known: {', '.join(sorted(known)) or 'none'}"
            )

    @abstractmethod
    def predict(self, pairs: list[tuple[str, str]], batch_size: int) -> np.ndarray:
        """One float32 score per (query, document) pair, in input order."""

    @abstractmethod
    def token_counts(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        """Input tokens per pair after truncation (special tokens included), by the model's own tokenizer."""

    @abstractmethod
    def reset_peak_memory(self) -> None: ...

    @abstractmethod
    def peak_memory_mb(self) -> float | None:
        """Peak accelerator / framework memory since ``reset_peak_memory`` (None where not measurable)."""

    #: what ``peak_memory_mb`` measures, in words (stored with the figure)
    memory_measure: str = ""

    def versions(self) -> dict[str, str | None]:
        from ..environment import package_versions

        return package_versions(self.version_packages)

    version_packages: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        """Provenance of every figure this backend produces (stored in results as the run's ``system``)."""
        return {
            "backend": self.name,
            "model": self.model_ref,
            "model_path": str(self.model_dir),
            "architecture": (self.config.get("architectures") or [None])[0],
            "weights_fingerprint": weights_fingerprint(self.model_dir),
            "dtype": self.dtype,
            "max_length": self.max_length,
            "batch_size": self.batch_size,
            "device": self.device,
            "instruction": self.instruction,
            "options": self.options,
            "memory_measure": self.memory_measure,
            "versions": self.versions(),
        }


def as_scores(raw, n: int) -> np.ndarray:
    """A backend's raw output -> float32 vector of ``n`` scores; a clear error for multi-label heads."""
    scores = np.asarray(raw, dtype=np.float32)
    if scores.ndim == 2 and scores.shape[1] == 1:
        scores = scores[:, 0]
    if scores.ndim != 1:
        raise BackendError(
            f"the model returns scores of shape {scores.shape} (num_labels > 1); reranking needs one score per pair"
        )
    if scores.shape[0] != n:
        raise BackendError(f"the model returned {scores.shape[0]} scores for {n} pairs")
    return scores


def require_safetensors(model_dir: Path) -> None:
    """One rule for every backend: weights are read from safetensors only, never unpickled. A folder with only
    pickled weights (``pytorch_model.bin``, ``*.pt``) is refused before any library could load it."""
    model_dir = Path(model_dir)
    if any(model_dir.glob("*.safetensors")) or not model_dir.is_dir():
        return
    pickles = sorted(p.name for pattern in ("*.bin", "*.pt", "*.pth", "*.ckpt") for p in model_dir.glob(pattern))
    if pickles:
        raise BackendError(
            f"{model_dir} has only pickled weights ({', '.join(pickles)}); the harness reads safetensors only and "
            "never unpickles. Convert it (e.g. transformers: from_pretrained(...).save_pretrained(dir, "
            "safe_serialization=True)) in a trusted environment"
        )


def backend_module(name: str) -> str:
    """The module implementing backend ``name``; BackendError naming the known ones otherwise."""
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; known: {', '.join(sorted(BACKENDS))}")
    return BACKENDS[name].module


def load_backend(spec, max_length: int, model_dir: str | Path | None = None, module: str | None = None) -> Backend:
    """Load ``spec``'s model in its backend with truncation at ``max_length`` tokens.

    ``model_dir`` is the already resolved checkpoint directory (the runner resolves it once, in the parent, so
    that all backends load the same files); None resolves ``spec.model`` here. ``module`` is the backend's
    module as the parent resolved it (a worker uses it); None looks ``spec.backend`` up in the registry.
    """
    model_dir = Path(model_dir) if model_dir is not None else resolve_model_dir(spec.model)
    require_safetensors(model_dir)
    module = module or backend_module(spec.backend)
    info, kind = BACKENDS.get(spec.backend), model_kind(model_dir)  # an embedding folder: the kind's own module
    if info is not None and module == info.module and kind in info.kinds:
        module = info.kinds[kind]
    module = importlib.import_module(module)
    return module.load(spec, max_length, model_dir)
