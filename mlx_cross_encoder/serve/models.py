"""What the server needs of a reranker, whatever its kind: loading by checkpoint, scores (activated or raw), the
tokenizer that cuts documents (``max_tokens_per_doc``) and which pairs the model would truncate (TEI
``truncate: false``).

Kinds: ``cross-encoder`` (:class:`MLXCrossEncoder`), ``llm`` (:class:`Qwen3Reranker`) and ``bi-encoder``
(:class:`MLXBiEncoderReranker`: cosine of embeddings; no raw scores, there is no logit). Any other object with
``predict(pairs, batch_size=...)`` is served as kind ``other`` (tests wrap real models this way). No MLX is
imported here at module level: loading happens on the server's MLX thread.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

KINDS = ("cross-encoder", "llm", "bi-encoder", "other")


class NotApplicable(ValueError):
    """A request option this model cannot honour (answered 400)."""


def load_model(
    path: str | os.PathLike, adapter_path: str | None = None, max_length: int | None = None, dtype: str | None = None
):
    """The reranker a checkpoint calls for: ``*ForSequenceClassification`` -> MLXCrossEncoder, ``*ForCausalLM`` /
    ``.gguf`` -> Qwen3Reranker (``mlx_cross_encoder.load_reranker``), an encoder without a head (a
    sentence-transformers embedding folder, ``BertModel`` & co.) -> MLXBiEncoderReranker."""
    from ..embedder import ENCODER_MODULES, MLXBiEncoderReranker
    from ..hub import load_config, resolve_model_dir
    from ..llm_reranker import load_reranker

    options = {"max_length": max_length} if max_length is not None else {}
    if dtype is not None:
        options["dtype"] = dtype
    if not str(path).lower().endswith(".gguf"):
        config = load_config(resolve_model_dir(path))
        archs = config.get("architectures") or []
        heads = ("ForSequenceClassification", "ForCausalLM", "ForConditionalGeneration")
        if not any(a.endswith(heads) for a in archs) and config.get("model_type") in ENCODER_MODULES:
            if adapter_path is not None:
                raise ValueError(f"{path} is an embedding model (bi-encoder): adapters are not supported for it")
            return MLXBiEncoderReranker(Path(path), **options)
    if adapter_path is not None:
        options["adapter_path"] = adapter_path
    return load_reranker(path, **options)


def model_kind(model) -> str:
    from ..cross_encoder import MLXCrossEncoder
    from ..embedder import MLXBiEncoderReranker
    from ..llm_reranker import Qwen3Reranker

    for cls, kind in ((MLXCrossEncoder, "cross-encoder"), (Qwen3Reranker, "llm"), (MLXBiEncoderReranker, "bi-encoder")):
        if isinstance(model, cls):
            return kind
    return "other"


class ServedModel:
    """One served reranker. ``scores`` and ``overlong`` run on the MLX thread; ``cut_documents`` anywhere (the
    ``tokenizers`` tokenizer is only read)."""

    def __init__(self, model):
        self.model = model
        self.kind = model_kind(model)

    @property
    def class_name(self) -> str:
        return type(self.model).__name__

    @property
    def tokenizer(self):
        """The ``tokenizers.Tokenizer`` that reads documents (None for kind ``other``)."""
        if self.kind == "bi-encoder":
            return self.model.embedder.tokenizer
        return getattr(self.model, "tokenizer", None) if self.kind != "other" else None

    @property
    def max_length(self) -> int | None:
        owner = self.model.embedder if self.kind == "bi-encoder" else self.model
        return getattr(owner, "max_length", None)

    def check_raw(self) -> None:
        if self.kind in ("bi-encoder", "other"):
            raise NotApplicable(f"raw_scores: a {self.kind} model ({self.class_name}) has no logits to return")

    def scores(self, pairs: list[tuple[str, str]], batch_size: int, raw: bool = False) -> np.ndarray:
        """One score per pair: the model's activated score (as ``predict`` / ``rank`` in process), or with ``raw``
        the logit before the activation (cross-encoder: the head's output; LLM: logit_yes - logit_no)."""
        if raw:
            self.check_raw()
            return self.model.predict(pairs, batch_size=batch_size, activation_fn="identity")
        return self.model.predict(pairs, batch_size=batch_size)

    def cut_documents(self, texts: list[str], max_tokens: int) -> list[str]:
        """Each text cut after its first ``max_tokens`` tokens (special tokens not counted), at the character
        where the model's tokenizer ends that token; shorter texts unchanged (Cohere's ``max_tokens_per_doc``)."""
        tokenizer = self.tokenizer
        if tokenizer is None:
            raise NotApplicable(f"max_tokens_per_doc: no tokenizer known for {self.class_name}")
        out = []
        for text, enc in zip(texts, tokenizer.encode_batch(texts, add_special_tokens=False)):
            out.append(text[: enc.offsets[max_tokens - 1][1]] if len(enc.ids) > max_tokens else text)
        return out

    def overlong(self, pairs: list[tuple[str, str]]) -> list[int]:
        """Indices of the pairs the model would truncate (more tokens than its ``max_length``)."""
        if self.kind == "cross-encoder":
            return [i for i, e in enumerate(self.model.tokenize(pairs)) if e.overflowing]
        if self.kind == "llm":
            m = self.model
            budget = m.max_length - len(m.prefix_ids) - len(m.suffix_ids)
            bodies = [m.template.format_body(q, d, m.instruction) for q, d in pairs]
            encodings = m.tokenizer.encode_batch(bodies, add_special_tokens=False)
            return [i for i, e in enumerate(encodings) if len(e.ids) > budget]
        if self.kind == "bi-encoder":
            texts = list(dict.fromkeys(t for pair in pairs for t in pair))
            cut = {t for t, e in zip(texts, self.tokenizer.encode_batch(texts)) if e.overflowing}
            return [i for i, (q, d) in enumerate(pairs) if q in cut or d in cut]
        raise NotApplicable(f"truncate=false: cannot tell which inputs {self.class_name} would truncate")
