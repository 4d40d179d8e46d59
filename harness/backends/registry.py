"""The backends, declared once: validation (suite), ``harness list``, loading (worker) and training read this.

A backend is a module with ``load(spec, max_length, model_dir) -> harness.backends.Backend``; its declaration
names that module, says what it runs, lists the suite ``options:`` it accepts, and the trainer of each model kind
(``"module:function"`` run by the training worker) and, in ``kinds``, the module that loads a model kind of its
own (embedding folders: ``harness.backends.bi_encoder.model_kind``). This module imports nothing heavy, so the
measuring parent and the suite validator can read it without loading MLX or torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class BackendInfo:
    name: str
    module: str  # implements load(spec, max_length, model_dir) -> Backend
    description: str
    options: frozenset[str] = frozenset()  # keys accepted in a reranker's ``options:``
    trainers: dict[str, str] = field(default_factory=dict)  # model kind -> "module:function"
    kinds: dict[str, str] = field(default_factory=dict)  # model kind -> module loading it instead of ``module``


BACKENDS: dict[str, BackendInfo] = {
    "mlx": BackendInfo(
        name="mlx",
        module="harness.backends.mlx_backend",
        description="mlx_cross_encoder.MLXCrossEncoder / Qwen3Reranker (Metal GPU on macOS, CPU or CUDA on Linux)",
        options=frozenset({"quantize", "activation_fn", "max_batch_tokens", "tokenize_processes"}),
        trainers={
            "cross_encoder": "harness.train.worker:train_mlx_cross_encoder",
            "llm": "harness.train.worker:train_mlx_llm",
            "bi_encoder": "harness.train.bi_encoder_worker:train_mlx_bi_encoder",  # InfoNCE
        },
        kinds={"bi_encoder": "harness.backends.bi_encoder_mlx"},  # MLXBiEncoderReranker
    ),
    "torch": BackendInfo(
        name="torch",
        module="harness.backends.torch_backend",
        description="sentence_transformers.CrossEncoder / the transformers causal-LM recipe (device auto: mps, "
        "then cuda, then cpu)",
        options=frozenset({"activation_fn", "attn_implementation", "max_batch_tokens"}),
        trainers={
            "cross_encoder": "harness.train.worker:train_torch_cross_encoder",
            "llm": "harness.train.worker:train_torch_llm",
            "bi_encoder": "harness.train.bi_encoder_worker:train_torch_bi_encoder",  # MNRL twin
        },
        kinds={"bi_encoder": "harness.backends.bi_encoder_torch"},  # SentenceTransformer, cosine
    ),
    "http": BackendInfo(
        name="http",
        module="harness.backends.http_backend",
        description="any Cohere-, Jina- or TEI-shaped rerank endpoint over HTTP (our server, TEI, a hosted API); "
        "the remote truncates by its own rule",
        options=frozenset({"url", "shape", "remote_model", "api_key_env", "timeout_s"}),
    ),
}


def backend_names() -> tuple[str, ...]:
    return tuple(BACKENDS)


def trainable_backends() -> tuple[str, ...]:
    """Backends that can train (a train section's default ``backends``); ``http`` cannot."""
    return tuple(name for name, info in BACKENDS.items() if info.trainers)
