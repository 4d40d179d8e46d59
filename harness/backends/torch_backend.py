"""The ``torch`` backend: ``sentence_transformers.CrossEncoder``, the reference most users would run; for causal-LM
checkpoints the official Qwen3-Reranker transformers recipe (``harness.qwen3_recipe``).

``device``: "auto" (mps, then cuda, then cpu), "mps", "cuda", "cuda:N" or "cpu". Options: ``activation_fn``
("sigmoid" or "identity"), ``attn_implementation`` (transformers' "sdpa", "eager", ...), ``max_batch_tokens``
(padded tokens per batch: the batches of the MLX backend's planner, ``mlx_cross_encoder.base.length_sorted_batches``,
which imports no MLX: the same batches as MLX's, which on a GPU then round each batch's width up to 32).
torch is imported only here, so a harness run without torch rerankers never loads it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np

from . import TF32, Backend, BackendError, as_scores, is_causal_lm, max_batch_tokens, storage_dtype
from .registry import BACKENDS

OPTIONS = BACKENDS["torch"].options  # declared once, in harness.backends.registry
TOKEN_COUNT_CHUNK = 256


def resolve_device(requested: str | None) -> str:
    import torch

    device = (requested or "auto").lower()
    if device == "auto":
        if torch.backends.mps.is_available():
            return "mps"
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "mps" and not torch.backends.mps.is_available():
        raise BackendError("device mps requested but torch.backends.mps is not available")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendError(f"device {device} requested but torch.cuda is not available")
    if device not in ("cpu", "mps") and not device.startswith("cuda"):
        raise BackendError(f"device {requested!r} is not a torch device; use auto, mps, cuda, cuda:N or cpu")
    return device


@contextlib.contextmanager
def tf32_matmuls(torch, allow: bool):
    """The block with ``torch.backends.cuda.matmul.allow_tf32`` and ``torch.backends.cudnn.allow_tf32`` set to
    ``allow`` (dtype tf32: True; every other dtype: False, so float32 is full float32 even where a library turned
    TF32 on), restored afterwards. Both are process-wide switches: set per call, two backends in one process each
    get their own. They only change CUDA kernels (compute capability >= 8.0)."""
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    before = matmul.allow_tf32, cudnn.allow_tf32
    matmul.allow_tf32 = cudnn.allow_tf32 = allow
    try:
        yield
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = before


def tf32_units(torch, device: str) -> bool:
    """Whether ``device`` has TF32 units: a CUDA GPU of compute capability >= 8.0 (Ampere and later)."""
    return device.startswith("cuda") and torch.cuda.get_device_capability(device) >= (8, 0)


def torch_dtype(torch, dtype: str):
    """The torch dtype weights are loaded in (float32 for tf32)."""
    return getattr(torch, storage_dtype(dtype))


class TorchBackend(Backend):
    name = "torch"
    version_packages = ("torch", "transformers", "sentence-transformers", "tokenizers")

    def __init__(self, spec, max_length: int, model_dir: Path):
        super().__init__(spec, max_length, model_dir)
        self.check_options(OPTIONS)
        import torch
        from sentence_transformers import CrossEncoder

        self._torch = torch
        self.device = resolve_device(getattr(spec, "device", None))
        self._mps_peak = 0
        if is_causal_lm(self.config):
            self._load_llm_recipe()
            return
        if self.instruction:
            raise BackendError(
                "instruction is only used by LLM (causal-LM) rerankers; this is a cross-encoder; "
                "remove it from the suite"
            )
        model_kwargs: dict[str, Any] = {"torch_dtype": torch_dtype(torch, self.dtype)}
        if "attn_implementation" in self.options:
            model_kwargs["attn_implementation"] = self.options["attn_implementation"]
        activation = self.options.get("activation_fn")
        activations = {"sigmoid": torch.nn.Sigmoid, "identity": torch.nn.Identity}
        if activation is not None and activation not in activations:
            raise BackendError(
                f"activation_fn {activation!r} is not supported by the torch backend; use sigmoid or identity"
            )
        self.model = CrossEncoder(
            str(self.model_dir),
            device=self.device,
            max_length=max_length,
            local_files_only=True,
            model_kwargs=model_kwargs,
            activation_fn=activations[activation]() if activation else None,
        )
        effective = getattr(self.model, "max_seq_length", None) or self.model.max_length
        if effective != max_length:
            raise BackendError(f"sentence-transformers truncates at {effective} tokens, not the requested {max_length}")

    def _load_llm_recipe(self) -> None:
        """Causal-LM rerankers: the official Qwen3-Reranker transformers recipe (``harness.qwen3_recipe``: left
        padding, ``AutoModelForCausalLM``, last-position logits, log_softmax over [no, yes])."""
        if set(self.options) - {"max_batch_tokens"}:
            raise BackendError("options apply to cross-encoders; LLM rerankers take instruction and max_length")
        from ..qwen3_recipe import Qwen3RerankerTorch

        self.model = Qwen3RerankerTorch(
            self.model_dir,
            instruction=self.instruction,
            max_length=self.max_length,
            device=self.device,
            dtype=storage_dtype(self.dtype),
        )

    @property
    def memory_measure(self) -> str:  # type: ignore[override]
        if self.device.startswith("cuda"):
            return (
                "torch.cuda.max_memory_allocated(): peak bytes held by tensors in PyTorch's caching allocator since "
                "the reset before the timed passes (weights included; allocator cache and CUDA context excluded)"
            )
        if self.device == "mps":
            return (
                "torch.mps.driver_allocated_memory(): bytes the Metal driver holds for the process (MPS allocator "
                "cache included), a current value: the maximum of samples taken after every predict call"
            )
        return "none: PyTorch keeps no peak for CPU tensors (see peak_rss_mb)"

    def predict(self, pairs, batch_size: int) -> np.ndarray:
        budget = max_batch_tokens(self.options)
        if budget is None:
            return self._predict(pairs, batch_size)
        from mlx_cross_encoder.base import length_sorted_batches  # plain numpy: no MLX import

        scores = np.empty(len(pairs), dtype=np.float32)
        for batch in length_sorted_batches(self.token_counts(pairs), batch_size, budget):
            scores[batch] = self._predict([pairs[i] for i in batch], len(batch))
        return scores

    def _predict(self, pairs, batch_size: int) -> np.ndarray:
        with tf32_matmuls(self._torch, self.dtype == TF32):
            return self._predict_call(pairs, batch_size)

    def _predict_call(self, pairs, batch_size: int) -> np.ndarray:
        if self.is_llm:
            raw = self.model.predict(pairs, batch_size=batch_size)
        else:
            raw = self.model.predict(pairs, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True)
        if self.device == "mps":  # a current value, not a peak: sample it after each call
            self._mps_peak = max(self._mps_peak, self._torch.mps.driver_allocated_memory())
        return as_scores(raw, len(pairs))

    @property
    def is_llm(self) -> bool:
        return is_causal_lm(self.config)

    def token_counts(self, pairs) -> np.ndarray:
        if self.is_llm:
            return np.asarray(self.model.token_counts(pairs), dtype=np.int64)
        counts = []
        for i in range(0, len(pairs), TOKEN_COUNT_CHUNK):
            features = self.model.preprocess([tuple(p) for p in pairs[i : i + TOKEN_COUNT_CHUNK]])
            counts.append(features["attention_mask"].sum(dim=1).cpu().numpy())
        return np.concatenate(counts).astype(np.int64)

    def reset_peak_memory(self) -> None:
        if self.device.startswith("cuda"):
            self._torch.cuda.reset_peak_memory_stats(self.device)
        elif self.device == "mps":
            self._torch.mps.empty_cache()
            self._mps_peak = self._torch.mps.driver_allocated_memory()

    def peak_memory_mb(self) -> float | None:
        if self.device.startswith("cuda"):
            return self._torch.cuda.max_memory_allocated(self.device) / 2**20
        if self.device == "mps":
            return self._mps_peak / 2**20
        return None

    def describe(self) -> dict[str, Any]:
        torch = self._torch
        if self.device.startswith("cuda"):
            device_name = torch.cuda.get_device_name(self.device)
        else:
            device_name = self.device
        tf32 = self.dtype == TF32  # tf32_matmuls: the switches each predict call ran with
        return {
            **super().describe(),
            "device_name": device_name,
            "torch_threads": torch.get_num_threads(),
            "float32_matmul": "tf32" if tf32 and tf32_units(torch, self.device) else "float32",
            "torch_allow_tf32": tf32,  # torch.backends.cuda.matmul.allow_tf32 and cudnn.allow_tf32 during predict
        }


def load(spec, max_length: int, model_dir: Path) -> TorchBackend:
    return TorchBackend(spec, max_length, model_dir)
