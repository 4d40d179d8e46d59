"""``MLXCrossEncoder``: BERT-family cross-encoders in MLX with sentence-transformers' ``CrossEncoder`` API."""

from __future__ import annotations

import functools
import itertools
import logging
import os
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from tqdm.auto import tqdm

from . import _blas, gpu_chunks
from .base import (
    CHUNK_TOKENS_ENV_VAR,
    STREAM_FIRST_ROWS,
    STREAM_ROWS,
    RerankerBase,
    default_chunk_tokens,
    env_int,
    even_chunks,
    length_sorted_batches,
    memory_chunk_rows,
    padded_width,
    prepared_ahead,
    read_back_behind,
    stream_bounds,
    validate_pairs,
)
from .errors import ModelLoadError
from .gpu_chunks import device_inputs
from .hub import load_config, load_json, load_tokenizer, load_weights, resolve_model_dir
from .models import get_model_module
from .models.bert import fuse_projections
from .precision import ST_ACTIVATIONS, quantize_linear_layers, resolve_activation, resolve_dtype
from .tokenizing import (
    TokenArrays,
    TypeIdRule,
    bert_pair_sep_id,
    checked_processes,
    encode_arrays,
    encode_in_threads,
    encode_pieces,
)

logger = logging.getLogger("mlx_cross_encoder")

#: ``predict`` empties MLX's buffer cache at its end when the cache holds more than this many bytes (0: after every
#: call, as before session 6). The session-6 DIAG saw +15% without the per-call emptying (10,125 -> 11,640 pairs/s,
#: MiniLM bf16 offline), but the main window's same-process A/B saw none (12,221 keeping 1 GiB vs 12,200 emptying),
#: so the default stays 0.
CACHE_KEEP_BYTES = 0

#: On a GPU, batches are padded to a multiple of this many tokens. MLX's CUDA backend builds a cuDNN attention graph
#: for every new (batch, length) shape in bfloat16/float16: ~60 ms each on an H200 against ~5 ms for a MiniLM-L6
#: forward of 256 x 128 tokens (benchmarks/gpu_probe.py, docs/benchmarks.md), and length-sorted batches meet a new
#: length at nearly every batch. Multiples of 32 leave at most max_length / 32 lengths per batch size, which its
#: graph cache keeps. Padded positions are masked: scores do not change.
GPU_LENGTH_MULTIPLE = 32


class MLXCrossEncoder(RerankerBase):
    """A cross-encoder reranker (``*ForSequenceClassification``) running in MLX.

    Args:
        model_name_or_path: local directory or Hugging Face id (config.json, safetensors weights, tokenizer.json).
        max_length: truncation length in tokens (default: the model's own limit).
        dtype: "float32" (default), "tf32" (float32 with TF32 matmuls; needs MLX_ENABLE_TF32=1), "float16" or
            "bfloat16".
        activation_fn: default activation of ``predict``: "sigmoid", "identity", "tanh", "softmax" or a callable
            on ``mx.array``. Default: what the checkpoint's sentence-transformers config names, else sigmoid when
            ``num_labels == 1`` and identity otherwise.
        quantize: 4 or 8 to quantize the Linear layers' weights (group size 64); the classifier head stays.
        revision: Hub revision (branch, tag or commit).
        adapter_path: a fine-tuned adapter directory (``adapters.safetensors`` + ``adapter_config.json``, as
            ``MLXCrossEncoderTrainer.save_adapter`` writes): its LoRA layers and trained head are applied.
        max_batch_tokens: default cap on the padded tokens of one batch (rows x its longest row, as every backend
            of the harness counts; on a GPU the width is then rounded up to a multiple of 32);
            ``predict(max_batch_tokens=...)`` overrides it; None = rows only (``batch_size``). A single longer
            pair runs alone. Both limits apply.
        chunk_tokens: on a GPU, each batch is computed in contiguous row chunks of at most about this many padded
            tokens (:func:`base.even_chunks`), and the next chunk is tokenized and padded on a host thread while
            the GPU runs the current one. Why: MLX's CUDA backend keeps every op's inputs alive until the GPU has
            run it and queues up to 10 command buffers ahead, so a big batch holds several layers' activations at
            once (and float32 attention has no fused CUDA kernel: its B x H x L x L scores are materialized);
            chunks bound that memory, and the overlap hides the host's tokenizing. A chunk is also bounded by
            activation bytes relative to its whole batch (:func:`base.memory_chunk_rows`), so that MLX's peak stays
            below an eager framework's for the same batch; a streamed call keeps ``base.PREPARE_AHEAD`` pieces in
            preparation (:attr:`chunking` says what ran). The harness's batch is
            still what the caller passed; scores equal the unchunked ones (tests). Default "auto": on a GPU
            ``MLX_CROSS_ENCODER_CHUNK_TOKENS`` if set (0 = off), else :func:`base.default_chunk_tokens`
            (``CHUNK_TOKEN_WORK // hidden_size**2``: MiniLM 43,690, ModernBERT-base 10,922, BERT-large 6,144);
            on the CPU off. None or 0: off (each batch in one piece; on the CPU split over the CPU streams).
        tokenize_processes: a streamed call's tokenizer tasks run in this many worker processes (spawned on first
            use, each with its own GIL: tokenize_procs.py) instead of the tokenizer threads; 0: threads. Default
            None: ``MLX_CROSS_ENCODER_TOKENIZE_PROCESSES``, else 0 (:func:`tokenizing.tokenize_processes`).
    """

    def __init__(
        self,
        model_name_or_path: str | os.PathLike,
        *,
        max_length: int | None = None,
        dtype=None,
        activation_fn=None,
        quantize: int | None = None,
        revision: str | None = None,
        adapter_path: str | os.PathLike | None = None,
        max_batch_tokens: int | None = None,
        chunk_tokens: int | str | None = "auto",
        tokenize_processes: int | None = None,
    ):
        self.model_dir: Path = resolve_model_dir(model_name_or_path, revision=revision)
        self.config: dict[str, Any] = load_config(self.model_dir)
        module = get_model_module(self.config)
        self.args = module.ModelArgs.from_dict(self.config)
        self.model = module.Model(self.args)
        self.dtype = resolve_dtype(dtype)
        self._load_weights()
        if quantize:
            quantize_linear_layers(self.model, quantize, skip=self.model.head_prefixes)
        self.quantize = quantize
        self.adapter_path = Path(adapter_path) if adapter_path is not None else None
        if adapter_path is not None:
            from .training.lora import load_adapter

            load_adapter(self.model, adapter_path)
        self.model.eval()

        self.tokenizer = load_tokenizer(self.model_dir)
        self.max_length = self._resolve_max_length(max_length)
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_length, strategy="longest_first")
        self.pad_token_id = self._pad_token_id()
        #: how TokenArrays.of gets token type ids: None (the model uses none), or derived from the ids with the [SEP]
        #: id of BERT's pair template (tokenizing.bert_pair_sep_id), else the encodings' own
        self._type_rule: TypeIdRule | None = None
        if self.model.uses_token_type_ids:
            self._type_rule = TypeIdRule(sep=bert_pair_sep_id(self.tokenizer))

        self.num_labels = self.args.num_labels
        self.max_batch_tokens = max_batch_tokens
        self._streams: list | None = None
        #: batch widths are rounded up to a multiple of this (GPU_LENGTH_MULTIPLE on a GPU, 1 on the CPU)
        self.length_multiple = GPU_LENGTH_MULTIPLE if mx.default_device() == mx.gpu else 1
        self.chunk_tokens = self._resolve_chunk_tokens(chunk_tokens)
        self.tokenize_processes = checked_processes(tokenize_processes)
        # read once here, not on the host threads that form chunks (see _memory_rows)
        gpu = mx.default_device() == mx.gpu
        self._fused_attention = gpu and not (mx.cuda.is_available() and self.dtype == mx.float32)
        if self._fused_attention:
            # BERT-style attention: one q/k/v projection at inference (same parameters). Not where attention is
            # unfused (float32 on CUDA, the CPU): there one q/k/v buffer would stay alive until the materialized
            # scores are used up (H200 session 7 DIAG, fused everywhere: MiniLM fp32 single_query peak 554 MB against
            # session 6's 497, torch 561)
            fuse_projections(self.model)
        self.default_activation = activation_fn if activation_fn is not None else self._checkpoint_activation()
        resolve_activation(self.default_activation)  # fail early on a bad name

    @classmethod
    def from_pretrained(cls, model_name_or_path: str | os.PathLike, **options) -> MLXCrossEncoder:
        return cls(model_name_or_path, **options)

    # -- loading -----------------------------------------------------------------------------------------
    def _load_weights(self) -> None:
        weights = self.model.sanitize(load_weights(self.model_dir))
        expected = {k for k, _ in nn.utils.tree_flatten(self.model.parameters())}
        missing = sorted(expected - weights.keys())
        unexpected = sorted(weights.keys() - expected)
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"missing {len(missing)} tensors (e.g. {', '.join(missing[:4])})")
            if unexpected:
                parts.append(f"unexpected {len(unexpected)} tensors (e.g. {', '.join(unexpected[:4])})")
            raise ModelLoadError(
                f"weights in {self.model_dir} do not fit {self.config['architectures'][0]}: " + "; ".join(parts)
            )
        try:
            self.model.load_weights([(k, v.astype(self.dtype)) for k, v in weights.items()], strict=True)
        except ValueError as exc:
            raise ModelLoadError(f"weights in {self.model_dir} do not fit the config: {exc}") from exc
        mx.eval(self.model.parameters())

    def _resolve_max_length(self, max_length: int | None) -> int:
        limit = self.model.max_positions
        if max_length is None:
            declared = load_json(self.model_dir, "tokenizer_config.json").get("model_max_length")
            max_length = int(declared) if isinstance(declared, (int, float)) and declared < 1e6 else limit
        if not isinstance(max_length, int) or max_length < 2:
            raise ValueError(f"max_length must be an integer >= 2, got {max_length!r}")
        if max_length > limit:
            logger.warning("max_length %d exceeds the model's %d positions; using %d", max_length, limit, limit)
            max_length = limit
        return max_length

    def _resolve_chunk_tokens(self, chunk_tokens) -> int | None:
        if chunk_tokens == "auto":
            env = env_int(CHUNK_TOKENS_ENV_VAR)  # checked on every device: a bad value is an error, not ignored
            if mx.default_device() != mx.gpu:
                return None
            chunk_tokens = env if env is not None else default_chunk_tokens(self.args.hidden_size)
        if chunk_tokens is None or chunk_tokens == 0:
            return None
        if not isinstance(chunk_tokens, int) or chunk_tokens < 0:
            raise ValueError(f"chunk_tokens must be 'auto', None or an integer >= 0, got {chunk_tokens!r}")
        return chunk_tokens

    def _pad_token_id(self) -> int:
        pad = self.config.get("pad_token_id")
        if pad is not None:
            return int(pad)
        for token in ("[PAD]", "<pad>"):
            if (tid := self.tokenizer.token_to_id(token)) is not None:
                return tid
        return 0

    def _checkpoint_activation(self):
        st = self.config.get("sentence_transformers") or {}
        name = st.get("activation_fn")
        if name in ST_ACTIVATIONS:
            return ST_ACTIVATIONS[name]
        if name:
            logger.warning("activation %s from config.json is not supported; using the default", name)
        return "sigmoid" if self.args.num_labels == 1 else "identity"

    # -- inference ---------------------------------------------------------------------------------------
    def tokenize(self, pairs) -> list:
        """``tokenizers.Encoding`` per (query, document) pair, truncated exactly as ``predict`` does."""
        pairs, _ = validate_pairs(pairs)
        return encode_in_threads(self.tokenizer, pairs)

    def token_counts(self, pairs) -> np.ndarray:
        """Input tokens per pair after truncation (special tokens included)."""
        return np.array([len(e.ids) for e in self.tokenize(pairs)], dtype=np.int64)

    def _width(self, longest: int) -> int:
        """The padded width of a batch whose longest row has ``longest`` tokens (``length_multiple``, capped)."""
        return padded_width(longest, self.length_multiple, self.max_length)

    def _collate(self, encodings) -> tuple[mx.array, mx.array, mx.array | None]:
        """Right-padded ``(ids, mask, token types)`` of a batch of ``tokenizers.Encoding`` (token types only when
        the model uses them): :meth:`TokenArrays.padded` over them, one vectorised step."""
        tokens = TokenArrays.of(encodings, self._type_rule)
        host = tokens.padded(np.arange(len(tokens)), self._width(int(tokens.lengths.max())), self.pad_token_id)
        return self._device_inputs(host)

    @staticmethod
    def _device_inputs(host) -> tuple[mx.array, mx.array, mx.array | None]:
        return device_inputs(host)

    def _cpu_streams(self) -> list:
        """CPU streams to spread each batch over (one per core, each with its own MLX scheduler thread).

        On the CPU, MLX runs elementwise kernels (softmax, GELU, LayerNorm) on one thread per stream; only the
        BLAS is multi-threaded. Splitting a batch over one stream per core uses every core for all of it.
        ``MLX_CROSS_ENCODER_CPU_STREAMS`` overrides the count (1 = a single stream). Not used on the GPU.
        """
        if mx.default_device() != mx.cpu:
            return [None]
        if self._streams is None:
            n = _blas.cpu_stream_count()
            self._streams = [mx.new_stream(mx.cpu) for _ in range(n)] if n > 1 else [None]
        return self._streams

    def predict(
        self,
        pairs,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        activation_fn=None,
        max_batch_tokens: int | None = None,
    ) -> np.ndarray:
        """Scores for (query, document) pairs, in input order.

        One pair gives one score (a numpy scalar); a list gives ``(n,)`` when ``num_labels == 1`` else
        ``(n, num_labels)``. The activation is applied in float32. ``max_batch_tokens``: this call's cap on padded
        tokens per batch (default: the constructor's); ``batch_size`` still caps the rows. At the end MLX's buffer
        cache is emptied if it holds more than ``CACHE_KEEP_BYTES`` (default 0: always). On a GPU each batch is
        computed in row chunks (``chunk_tokens``), prepared (tokenized, padded) on a host thread while the GPU runs
        the previous chunk; see ``chunk_tokens``.
        """
        pairs, single = validate_pairs(pairs)
        act = resolve_activation(activation_fn if activation_fn is not None else self.default_activation)
        budget = max_batch_tokens if max_batch_tokens is not None else self.max_batch_tokens
        if show_progress_bar is None:
            show_progress_bar = logger.getEffectiveLevel() in (logging.INFO, logging.DEBUG)
        try:
            scores = self._run(self._pieces(pairs, batch_size, budget), len(pairs), act, show_progress_bar)
        finally:
            if mx.get_cache_memory() > CACHE_KEEP_BYTES:
                mx.clear_cache()
        result = scores[:, 0] if self.num_labels == 1 else scores
        return result[0] if single else result

    def plan(self, lengths, batch_size: int, max_batch_tokens: int | None = None) -> list[list[int]]:
        """The batches ``predict`` runs for pairs of these token counts: THE planner's, as every backend forms them
        (a budget counts rows x the longest row). On a GPU a batch's width is then rounded up to
        ``length_multiple`` (kernel shapes), so its tensor may hold < 32 more padded positions per row than the
        budget; rounding before planning made MLX's batches differ from torch's at the same budget (issue 12's
        H200 run of test_backend_batch_budget, session 9)."""
        return length_sorted_batches(lengths, batch_size, max_batch_tokens)

    def _pieces(self, pairs, batch_size: int, budget: int | None) -> list[Callable[[], list]]:
        """The call's work as pieces, each a function returning its chunks ``[(rows, host arrays)]``.

        A call that is one batch whatever its lengths (at most ``batch_size`` pairs, no token budget: each call
        of the harness's offline and single-query scenarios) is streamed on a GPU: pieces of ``STREAM_FIRST_ROWS``
        pairs growing to ``STREAM_ROWS`` (:func:`base.stream_bounds`) in input order, each tokenized when it is
        prepared, so tokenizing overlaps the GPU; with ``tokenizing.TOKENIZE_AHEAD`` every piece's tokenizer tasks
        start when the call does (:func:`tokenizing.encode_pieces`). Otherwise every pair is tokenized first (the
        planner needs the lengths) and each planned batch is a piece.
        """
        rule = self._type_rule
        chunked = self.chunk_tokens is not None
        if chunked and len(pairs) <= batch_size and budget is None:
            bounds = stream_bounds(len(pairs), STREAM_FIRST_ROWS, STREAM_ROWS)
            tokenized = encode_pieces(self.tokenizer, pairs, bounds, rule, processes=self.tokenize_processes)

            def streamed(i: int) -> list:
                tokens = tokenized[i]()
                chunks = self._chunks(tokens, np.arange(len(tokens)), len(pairs))
                return [(bounds[i] + rows, host) for rows, host in chunks]

            return [functools.partial(streamed, i) for i in range(len(tokenized))]
        tokens = encode_arrays(self.tokenizer, pairs, rule)
        batches = self.plan(tokens.lengths, batch_size, budget)
        return [functools.partial(self._chunks, tokens, np.asarray(b, dtype=np.int64)) for b in batches]

    def _chunks(self, tokens: TokenArrays, rows: np.ndarray, batch_rows: int | None = None) -> list[tuple]:
        """A batch's row chunks with their padded host arrays: on a GPU, the fewest even contiguous chunks of at
        most ``chunk_tokens`` padded tokens and at most :func:`base.memory_chunk_rows` rows for a batch of
        ``batch_rows`` rows (default: these rows; a streamed piece passes its call's); on the CPU, one chunk per CPU
        stream."""
        if self.chunk_tokens is not None:
            width = self._width(int(tokens.lengths[rows].max()))
            limit = min(max(1, self.chunk_tokens // width), self._memory_rows(width, batch_rows or len(rows)))
            parts = even_chunks(width, len(rows), limit * width)
        else:
            parts = [len(p) for p in np.array_split(rows, min(len(self._cpu_streams()), len(rows)))]
        out = []
        for part in np.split(rows, np.cumsum(parts)[:-1]):
            width = self._width(int(tokens.lengths[part].max()))
            out.append((part, tokens.padded(part, width, self.pad_token_id)))
        return out

    @property
    def chunking(self) -> dict | None:
        """What the GPU row chunks follow now (for results' provenance; :func:`gpu_chunks.chunk_rule`), with this
        model's ``tokenize_processes`` (the constructor's, else :func:`tokenizing.tokenize_processes`); None when
        chunking is off."""
        if self.chunk_tokens is None:
            return None
        return gpu_chunks.chunk_rule(
            self.chunk_tokens,
            stream_rows=[STREAM_FIRST_ROWS, STREAM_ROWS],
            derived_type_ids=self._type_rule is not None and self._type_rule.derives,
            tokenize_processes=self.tokenize_processes,
            cache_keep_bytes=CACHE_KEEP_BYTES,
        )

    def _memory_rows(self, width: int, batch_rows: int) -> int:
        """:func:`base.memory_chunk_rows` for this model; attention counts as fused except float32 on CUDA (MLX
        0.32's CUDA backend has no fused float32 attention) and on the CPU."""
        return memory_chunk_rows(
            width,
            batch_rows,
            hidden=self.args.hidden_size,
            heads=self.args.num_attention_heads,
            dtype_bytes=self.dtype.size,
            fused_attention=self._fused_attention,
        )

    def _run(self, pieces: list[Callable[[], list]], n: int, act, show_progress_bar: bool) -> np.ndarray:
        """``(n, num_labels)`` scores of the pieces' chunks, double-buffered: a group is built and handed to MLX
        (``async_eval``), then the previous group's scores are read. A group is one chunk when chunking (bounded
        memory; the next piece is prepared on a host thread meanwhile), else a piece's chunks, one per CPU
        stream."""
        scores = np.empty((n, self.num_labels), dtype=np.float32)
        streams = self._cpu_streams()
        chunked = self.chunk_tokens is not None

        def groups(prepared):
            for chunks in tqdm(prepared, total=len(pieces), desc="Scoring", disable=not show_progress_bar):
                for group in ([c] for c in chunks) if chunked else [chunks]:
                    submitted = []
                    for (rows, host), stream in zip(group, itertools.cycle(streams)):
                        with mx.stream(stream) if stream is not None else nullcontext():
                            submitted.append((rows, act(self.model(*self._device_inputs(host)).astype(mx.float32))))
                    yield submitted

        with _blas.single_threaded_while(len(streams) > 1), prepared_ahead(pieces, chunked) as prepared:
            read_back_behind(groups(prepared), scores)
        return scores

    def __repr__(self) -> str:
        arch = self.config["architectures"][0]
        return (
            f"MLXCrossEncoder({str(self.model_dir)!r}, arch={arch}, max_length={self.max_length}, dtype={self.dtype})"
        )
