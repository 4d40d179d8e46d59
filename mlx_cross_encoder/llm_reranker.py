"""``Qwen3Reranker``: LLM yes/no rerankers (Qwen3-Reranker and friends) in MLX, scored exactly like the reference.

The reference is the Qwen3-Reranker model card's transformers recipe: the prompt is
``prefix + body + suffix``, where the prefix and suffix are tokenized on their own (no special tokens added) and
the body ``<Instruct>: ...\\n<Query>: ...\\n<Document>: ...`` is tokenized separately and cut at its tail to
``max_length - len(prefix) - len(suffix)`` tokens; the score is ``softmax([logit_no, logit_yes])[yes]`` of the
last position's next-token logits, in float32.

Decoders come from mlx-lm's model classes (Qwen3, Qwen2, Llama, Gemma 3, ...), so pre-quantized MLX
checkpoints and mlx-lm LoRA adapters load as they do in mlx-lm. GGUF files load through :mod:`.gguf`.

The pieces: :mod:`.llm_template` (the prompt), :mod:`.llm_loading` (model, adapter, answer tokens, token budget),
:mod:`.llm_head` (the [no, yes] head and P(yes)), :mod:`.llm_batching` (prefix groups, length batches, padding).
Three optimizations, each exact (same scores as the plain path up to float rounding) and each with a switch so
that its gain can be measured on its own: ``two_row_head`` (see :mod:`.llm_head`), ``prefix_cache`` and
``length_batching`` (see :mod:`.llm_batching`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import mlx.core as mx
import numpy as np
from tqdm.auto import tqdm

from . import _blas
from . import llm_head as head
from .base import RerankerBase, read_back_behind, validate_pairs
from .errors import ModelLoadError, UnsupportedArchitectureError
from .hub import load_config, load_tokenizer, resolve_model_dir, weight_files
from .llm_batching import plan_batches, prefix_cache_supported, right_padded, shared_prefix_caches
from .llm_loading import (
    check_causal_lm,
    dequantize_exactly,
    import_mlx_lm,
    load_adapter,
    load_mlx_lm,
    pad_token_id,
    resolve_max_length,
    single_token_id,
)
from .llm_template import DEFAULT_INSTRUCTION, QWEN3_TEMPLATE, RerankTemplate
from .tokenizing import encode_in_threads

logger = logging.getLogger("mlx_cross_encoder")


class Qwen3Reranker(RerankerBase):
    """An LLM yes/no reranker (Qwen3-Reranker by default) running in MLX.

    Args:
        model_name_or_path: a ``*ForCausalLM`` checkpoint directory (safetensors, MLX-quantized or not) or
            Hugging Face id, or a ``.gguf`` file.
        instruction: the default ``{instruction}`` of the prompt (default: the template's, for Qwen3-Reranker
            "Given a web search query, retrieve relevant passages that answer the query").
        max_length: tokens per pair, prompt included; the document (then the query) is cut, never the prefix or
            the suffix.
        dtype: "float32" (default), "tf32", "float16" or "bfloat16" for the float parameters (quantized weights stay
            quantized unless ``dequantize``).
        adapter_path: an mlx-lm LoRA/DoRA adapter directory (``adapter_config.json`` + ``adapters.safetensors``).
        template: a :class:`RerankTemplate` (default: the official Qwen3-Reranker prompt).
        prefix_cache, two_row_head, length_batching: the exact speed-ups (see the module docstring); each may be
            switched off, also later by setting the attribute of the same name.
        max_batch_tokens: default cap on the padded tokens of one batch (rows x its longest sequence, prompt
            included); ``predict(max_batch_tokens=...)`` overrides it; None = rows only (``batch_size``). A single
            longer sequence runs alone. Both limits apply.
        batch_overhead_tokens: what one more batch costs, in padded tokens, when ``length_batching`` splits a
            length-sorted group to save padding (default None: ``llm_batching.batch_overhead_tokens()``, 256 on
            MLX's CPU, 2048 on a GPU; 0 = split wherever padding is saved); changes no score.
        cpu_streams: on MLX's CPU, split each batch over this many streams (default: one per core, at most 8;
            1 = off); see ``_streams``.
        check_adapter_base: refuse an adapter whose ``adapter_config.json`` names another base model.
        dequantize: replace quantized layers by float layers holding the very same weight values (dequantized
            with float32 scales, so exact; then cast to ``dtype``). Default: on MLX's CPU device only, where
            quantized matmuls are tens of times slower than float32 GEMM; on a GPU the weights stay quantized.
        revision: Hub revision.
    """

    def __init__(
        self,
        model_name_or_path: str | os.PathLike,
        *,
        instruction: str | None = None,
        max_length: int = 8192,
        dtype=None,
        adapter_path: str | os.PathLike | None = None,
        template: RerankTemplate | None = None,
        prefix_cache: bool = True,
        two_row_head: bool = True,
        length_batching: bool = True,
        max_batch_tokens: int | None = None,
        batch_overhead_tokens: int | None = None,
        cpu_streams: int | None = None,
        check_adapter_base: bool = True,
        dequantize: bool | None = None,
        revision: str | None = None,
    ):
        from .precision import resolve_dtype

        self.template = template if template is not None else QWEN3_TEMPLATE
        if not isinstance(self.template, RerankTemplate):
            raise TypeError(f"template must be a RerankTemplate, got {type(self.template).__name__}")
        if instruction is not None and not isinstance(instruction, str):
            raise TypeError(f"instruction must be a string, got {type(instruction).__name__}")
        self.instruction = instruction
        self.dtype = resolve_dtype(dtype)
        self._load(model_name_or_path, revision)
        if adapter_path is not None:
            load_adapter(self.model, self.model_dir, adapter_path, model_name_or_path, check_adapter_base)
        self.adapter_path = adapter_path
        if dequantize is None:  # MLX's CPU quantized matmul is far slower than its float32 GEMM
            dequantize = mx.default_device().type == mx.cpu
        self.dequantized = bool(dequantize) and dequantize_exactly(self.model)
        self.model.set_dtype(self.dtype)
        self.model.eval()
        mx.eval(self.model.parameters())

        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.yes_id = single_token_id(self.tokenizer, self.template.yes, self.model_dir)
        self.no_id = single_token_id(self.tokenizer, self.template.no, self.model_dir)
        self.prefix_ids = self.tokenizer.encode(self.template.prefix, add_special_tokens=False).ids
        self.suffix_ids = self.tokenizer.encode(self.template.suffix, add_special_tokens=False).ids
        self.max_length = resolve_max_length(max_length, len(self.prefix_ids) + len(self.suffix_ids), self.config)
        self.pad_token_id = pad_token_id(self.config, self.tokenizer)

        lm = getattr(self.model, "language_model", self.model)  # multimodal wrappers (Gemma 3) keep the LM inside
        self._backbone = getattr(lm, "model", None)
        self._lm = lm
        vocab = head.vocab_rows(head.head_module(lm, self._backbone))
        for token, tid in ((self.template.yes, self.yes_id), (self.template.no, self.no_id)):
            if vocab is not None and tid >= vocab:
                raise ModelLoadError(f"token {token!r} has id {tid}, outside the model's {vocab} vocabulary rows")
        probe = (self.prefix_ids + self.suffix_ids)[-64:] or [self.no_id, self.yes_id]
        self._two_row_ok = head.two_rows_match(
            self.model, lm, self._backbone, probe, self.no_id, self.yes_id, self.dtype
        )
        self._cache_ok = prefix_cache_supported(self.model, self._backbone, self._make_prompt_cache, self._KVCache)
        self.two_row_head = two_row_head
        self.prefix_cache = prefix_cache
        self.length_batching = length_batching
        self.max_batch_tokens = max_batch_tokens
        self.batch_overhead_tokens = batch_overhead_tokens
        self.cpu_streams = cpu_streams
        self._stream_pool: list = []

    @classmethod
    def from_pretrained(cls, model_name_or_path: str | os.PathLike, **options) -> Qwen3Reranker:
        return cls(model_name_or_path, **options)

    def _load(self, model_name_or_path, revision: str | None) -> None:
        """Set ``model_dir``, ``model``, ``config``, ``tokenizer`` from a checkpoint directory, Hub id or GGUF."""
        load_model, self._KVCache, self._make_prompt_cache = import_mlx_lm()
        source = Path(model_name_or_path).expanduser() if isinstance(model_name_or_path, (str, os.PathLike)) else None
        if source is not None and source.suffix.lower() == ".gguf":
            from .gguf import load_gguf

            self.model_dir = source
            self.model, self.config, self.tokenizer = load_gguf(source)
            return
        self.model_dir = resolve_model_dir(model_name_or_path, revision=revision)
        self.config = load_config(self.model_dir)
        check_causal_lm(self.config, self.model_dir)
        weight_files(self.model_dir)  # clear errors for pickles / no weights
        self.model = load_mlx_lm(load_model, self.model_dir, self.config)
        self.tokenizer = load_tokenizer(self.model_dir)

    # -- tokenization ------------------------------------------------------------------------------------
    def tokenize(self, pairs, instruction: str | None = None) -> list[list[int]]:
        """Token ids fed for each (query, document) pair: prefix + truncated body + suffix, as the reference."""
        pairs, _ = validate_pairs(pairs)
        return self._encode(pairs, instruction)

    def token_counts(self, pairs, instruction: str | None = None) -> np.ndarray:
        """Input tokens per pair after truncation (template included)."""
        return np.array([len(ids) for ids in self.tokenize(pairs, instruction)], dtype=np.int64)

    def _encode(self, pairs: list[tuple[str, str]], instruction: str | None) -> list[list[int]]:
        instruction = instruction if instruction is not None else self.instruction
        bodies = [self.template.format_body(q, d, instruction) for q, d in pairs]
        budget = self.max_length - len(self.prefix_ids) - len(self.suffix_ids)
        encodings = encode_in_threads(self.tokenizer, bodies, add_special_tokens=False)
        return [self.prefix_ids + enc.ids[:budget] + self.suffix_ids for enc in encodings]

    # -- inference ---------------------------------------------------------------------------------------
    def _head_module(self):
        """The output projection (``lm_head`` or the tied embedding)."""
        return head.head_module(self._lm, self._backbone)

    def _two_rows(self) -> head.HeadRows | None:
        """The [no, yes] rows of the output projection, read from the current weights (training changes them)."""
        return head.two_rows(self._head_module(), self.no_id, self.yes_id)

    def _last_logits(self, ids: list[list[int]], cache=None) -> mx.array:
        """``(batch, 2)`` [no, yes] logits at each row's last real token; rows right-padded."""
        inputs, last = right_padded(ids, self.pad_token_id)
        rows = mx.arange(len(ids))
        head_rows = self._two_rows() if self.two_row_head and self._two_row_ok else None
        if head_rows is not None:
            hidden = self._backbone(inputs, cache=cache)[rows, last]
            return head.project(hidden, head_rows)
        logits = self.model(inputs, cache=cache)[rows, last]  # full vocabulary at every position: the plain path
        return mx.stack([logits[:, self.no_id], logits[:, self.yes_id]], axis=-1)

    def _plan(
        self, pairs, seqs: list[list[int]], batch_size: int, max_batch_tokens: int | None = None
    ) -> list[tuple[int, list[int]]]:
        """``(prefix_len, indices)`` per batch: its rows share a cached prefix of prefix_len tokens (one query's, or
        the prompt up to the query for the pooled pairs of queries with few documents in this call)."""
        return plan_batches(
            [q for q, _ in pairs],
            seqs,
            batch_size,
            prefix_cache=self.prefix_cache and self._cache_ok,
            length_batching=self.length_batching,
            max_batch_tokens=max_batch_tokens,
            overhead_tokens=self.batch_overhead_tokens,
        )

    def _streams(self) -> list:
        """CPU streams to split each batch over (one per core): MLX runs elementwise kernels (softmax, RMSNorm,
        SiLU, RoPE, the CPU attention) on one thread per stream, only its BLAS is multi-threaded; the BLAS is set
        to one thread meanwhile. Rows are independent, so splitting changes no score. ``cpu_streams`` (or
        ``MLX_CROSS_ENCODER_CPU_STREAMS``) sets the count, 1 = one stream. Not used on a GPU.

        Single-threaded BLAS also sidesteps a clash seen on Linux: mlx-lm imports transformers, which imports
        torch (when installed) and its GNU OpenMP; MKL's first call then picks the GNU threading layer, under
        which MLX's many small attention matmuls run 20-130x slower with 2 MKL threads."""
        if mx.default_device().type != mx.cpu:
            return [None]
        n = _blas.cpu_stream_count(self.cpu_streams)
        if len(self._stream_pool) != n:
            self._stream_pool = [mx.new_stream(mx.cpu) for _ in range(n)] if n > 1 else [None]
        return self._stream_pool

    def _prefix_kv(self, key: tuple[int, ...]) -> list:
        """The one-row KV cache of a shared prefix."""
        cache = self._make_prompt_cache(self.model)
        self._backbone(mx.array([list(key)]), cache=cache)
        mx.eval([(c.keys, c.values) for c in cache])
        return cache

    def _score(
        self, pairs, seqs: list[list[int]], batch_size: int, progress: bool, max_batch_tokens: int | None
    ) -> np.ndarray:
        """``(n, 2)`` [no, yes] logits (:meth:`_run_plan`); then MLX's buffer cache is emptied, so the buffers of
        the last (largest) batches are returned to the system between calls instead of kept by MLX."""
        try:
            return self._run_plan(pairs, seqs, batch_size, progress, max_batch_tokens)
        finally:
            mx.clear_cache()

    def _run_plan(
        self, pairs, seqs: list[list[int]], batch_size: int, progress: bool, max_batch_tokens: int | None
    ) -> np.ndarray:
        """``(n, 2)`` [no, yes] logits; each batch's rows are dealt over the streams, and the next batch's graph is
        built while the previous one runs."""
        out = np.empty((len(seqs), 2), dtype=np.float32)
        streams = self._streams()

        def groups(plan):
            prefix_key, prefix_kv = None, None
            for shared, idx in tqdm(plan, desc="Scoring", disable=not progress):
                if shared and tuple(seqs[idx[0]][:shared]) != prefix_key:
                    prefix_key = tuple(seqs[idx[0]][:shared])
                    prefix_kv = self._prefix_kv(prefix_key)
                submitted = []
                # rows dealt round-robin: a length-sorted batch gives each stream the same mix of lengths
                n_chunks = min(len(streams), len(idx))
                chunks = [np.array(idx[k::n_chunks]) for k in range(n_chunks)]
                for chunk, stream in zip(chunks, streams):
                    with mx.stream(stream) if stream is not None else nullcontext():
                        if shared:
                            cache = shared_prefix_caches(prefix_kv)
                            logits = self._last_logits([seqs[i][shared:] for i in chunk], cache)
                        else:
                            logits = self._last_logits([seqs[i] for i in chunk])
                        submitted.append((chunk, logits.astype(mx.float32)))
                yield submitted

        with _blas.single_threaded_while(len(streams) > 1):
            read_back_behind(groups(self._plan(pairs, seqs, batch_size, max_batch_tokens)), out)
        return out

    def predict_logits(
        self, pairs, batch_size: int = 32, instruction: str | None = None, max_batch_tokens: int | None = None
    ) -> np.ndarray:
        """``(n, 2)`` float32 [logit_no, logit_yes] of the last position, in input order."""
        pairs, _ = validate_pairs(pairs)
        budget = max_batch_tokens if max_batch_tokens is not None else self.max_batch_tokens
        return self._score(pairs, self._encode(pairs, instruction), batch_size, False, budget)

    def predict(
        self,
        pairs,
        batch_size: int = 32,
        instruction: str | None = None,
        activation_fn=None,
        show_progress_bar: bool | None = None,
        max_batch_tokens: int | None = None,
    ) -> np.ndarray:
        """P(yes) per (query, document) pair in input order (``activation_fn="identity"``: logit_yes - logit_no).

        One pair gives a numpy scalar, a list an ``(n,)`` float32 array. ``max_batch_tokens``: this call's cap on
        padded tokens per batch (default: the constructor's); ``batch_size`` still caps the rows.
        """
        pairs, single = validate_pairs(pairs)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        act = head.resolve_activation(activation_fn)
        if show_progress_bar is None:
            show_progress_bar = logger.getEffectiveLevel() in (logging.INFO, logging.DEBUG)
        budget = max_batch_tokens if max_batch_tokens is not None else self.max_batch_tokens
        logits = self._score(pairs, self._encode(pairs, instruction), batch_size, show_progress_bar, budget)
        scores = np.asarray(act(mx.array(logits)), dtype=np.float32)
        return scores[0] if single else scores

    def __repr__(self) -> str:
        return (
            f"Qwen3Reranker({str(self.model_dir)!r}, model_type={self.config.get('model_type')}, "
            f"max_length={self.max_length}, dtype={self.dtype})"
        )


def load_reranker(name_or_path: str | os.PathLike, **options) -> RerankerBase:
    """The reranker class a checkpoint calls for: ``*ForSequenceClassification`` -> :class:`MLXCrossEncoder`,
    ``*ForCausalLM`` (or a ``.gguf`` file) -> :class:`Qwen3Reranker`. ``options`` go to that class."""
    from .cross_encoder import MLXCrossEncoder

    if isinstance(name_or_path, (str, os.PathLike)) and str(name_or_path).lower().endswith(".gguf"):
        return Qwen3Reranker(name_or_path, **options)
    model_dir = resolve_model_dir(name_or_path, revision=options.get("revision"))
    config = load_config(model_dir)
    archs: Sequence[str] = config.get("architectures") or []
    if any(a.endswith("ForSequenceClassification") for a in archs):
        return MLXCrossEncoder(name_or_path, **options)
    if any(a.endswith(("ForCausalLM", "ForConditionalGeneration")) for a in archs):
        return Qwen3Reranker(name_or_path, **options)
    shown = ", ".join(archs) if archs else f"none (model_type={config.get('model_type')!r})"
    raise UnsupportedArchitectureError(
        f"cannot tell which reranker {name_or_path} is: architectures {shown}; expected *ForSequenceClassification "
        "(cross-encoder) or *ForCausalLM (LLM yes/no reranker)"
    )


__all__ = ["DEFAULT_INSTRUCTION", "QWEN3_TEMPLATE", "Qwen3Reranker", "RerankTemplate", "load_reranker"]
