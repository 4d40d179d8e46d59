"""``Qwen3Reranker``: LLM yes/no rerankers (Qwen3-Reranker and friends) in MLX, scored exactly like the reference.

The reference is the Qwen3-Reranker model card's transformers recipe: the prompt is
``prefix + body + suffix``, where the prefix and suffix are tokenized on their own (no special tokens added) and
the body ``<Instruct>: ...\\n<Query>: ...\\n<Document>: ...`` is tokenized separately and cut at its tail to
``max_length - len(prefix) - len(suffix)`` tokens; the score is ``softmax([logit_no, logit_yes])[yes]`` of the
last position's next-token logits, in float32.

Decoders come from mlx-lm's model classes (Qwen3, Qwen2, Llama, Gemma 3, ...), so pre-quantized MLX
checkpoints and mlx-lm LoRA adapters load as they do in mlx-lm. GGUF files load through :mod:`.gguf`.

Three optimizations, each exact (same scores as the plain path up to float rounding) and each with a switch so
that its gain can be measured on its own:

``two_row_head``
    Run the backbone only and project each row's last hidden state onto the two LM-head rows of "no"/"yes"
    (dequantizing just those two rows of a quantized head), instead of computing full-vocabulary logits for
    every position.
``prefix_cache``
    The token ids that all documents of one query share (system prompt + instruction + query) are run once;
    their KV cache (mlx-lm ``KVCache``) is broadcast over a batch of that query's documents, whose tails are
    right-padded. Under the causal mask a real token never attends to a later (pad) position, and every row's
    positions continue at the prefix length, so padding changes no real token; each row's own last real
    position is gathered.
``length_batching``
    Batches hold sequences of similar length (longest first), so that little padding is computed.
"""

from __future__ import annotations

import logging
import os
import string
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from tqdm.auto import tqdm

from . import _blas
from .base import RerankerBase, length_sorted_batches, validate_pairs
from .errors import ModelLoadError, UnsupportedArchitectureError
from .hub import load_config, load_json, load_tokenizer, resolve_model_dir, weight_files

logger = logging.getLogger("mlx_cross_encoder")

DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
QWEN3_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
    'provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
QWEN3_BODY = "<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {doc}"
QWEN3_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"

_BODY_FIELDS = {"instruction", "query", "doc"}


@dataclass(frozen=True)
class RerankTemplate:
    """The prompt of an LLM yes/no reranker: ``prefix + body.format(instruction, query, doc) + suffix``.

    ``body`` must contain ``{query}`` and ``{doc}`` and may contain ``{instruction}`` (filled with
    ``default_instruction`` unless one is passed). ``yes`` / ``no`` name the two answer tokens, each of which must
    be a single token of the tokenizer.
    """

    prefix: str
    body: str
    suffix: str
    yes: str = "yes"
    no: str = "no"
    default_instruction: str | None = DEFAULT_INSTRUCTION

    def __post_init__(self):
        for name in ("prefix", "body", "suffix", "yes", "no"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"RerankTemplate.{name} must be a string, got {type(getattr(self, name)).__name__}")
        if not self.yes or not self.no or self.yes == self.no:
            raise ValueError(f"RerankTemplate needs two different answer tokens, got yes={self.yes!r} no={self.no!r}")
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(self.body) if f is not None]
        except ValueError as exc:
            raise ValueError(f"RerankTemplate.body is not a valid format string: {exc}") from exc
        unknown = sorted(set(fields) - _BODY_FIELDS)
        if unknown:
            raise ValueError(
                f"RerankTemplate.body has unknown fields {unknown}; use only {{instruction}}, {{query}} and {{doc}}"
            )
        missing = [f"{{{f}}}" for f in ("query", "doc") if f not in fields]
        if missing:
            raise ValueError(
                f"RerankTemplate.body must contain {{query}} and {{doc}}; missing {', '.join(missing)} "
                f"in {self.body!r}"
            )

    @property
    def uses_instruction(self) -> bool:
        return any(f == "instruction" for _, f, _, _ in string.Formatter().parse(self.body))

    def format_body(self, query: str, doc: str, instruction: str | None = None) -> str:
        if self.uses_instruction:
            instruction = instruction if instruction is not None else self.default_instruction
            if instruction is None:
                raise ValueError("this template's body has {instruction} but no instruction was given")
        return self.body.format(instruction=instruction, query=query, doc=doc)


#: the official Qwen3-Reranker prompt (model card), byte for byte
QWEN3_TEMPLATE = RerankTemplate(QWEN3_PREFIX, QWEN3_BODY, QWEN3_SUFFIX)


def _p_yes(logits: mx.array) -> mx.array:
    """``exp(log_softmax([no, yes])[yes])`` in float32, as the reference computes it."""
    logits = logits.astype(mx.float32)
    return mx.exp(logits[:, 1] - mx.logsumexp(logits, axis=-1))


ACTIVATIONS: dict[str, Callable[[mx.array], mx.array]] = {
    "softmax": _p_yes,
    "sigmoid": _p_yes,  # sigmoid(yes - no) is softmax([no, yes])[yes]
    "identity": lambda logits: (logits[:, 1] - logits[:, 0]).astype(mx.float32),
}


def resolve_activation(activation_fn) -> Callable[[mx.array], mx.array]:
    if activation_fn is None:
        return _p_yes
    if callable(activation_fn):
        return lambda logits: activation_fn((logits[:, 1] - logits[:, 0]).astype(mx.float32))
    if isinstance(activation_fn, str) and activation_fn.lower() in ACTIVATIONS:
        return ACTIVATIONS[activation_fn.lower()]
    raise ValueError(
        f"unknown activation_fn {activation_fn!r}; use None (P(yes)), a callable on logit_yes - logit_no, "
        f"or one of {sorted(ACTIVATIONS)}"
    )


def _import_mlx_lm():
    """mlx-lm, imported only when an LLM reranker is built (its package imports transformers)."""
    try:
        from mlx_lm.models.cache import KVCache, make_prompt_cache
        from mlx_lm.utils import load_model
    except ImportError as exc:  # pragma: no cover - mlx-lm is a dependency
        raise ModelLoadError(f"LLM rerankers need mlx-lm (pip install mlx-lm): {exc}") from exc
    return load_model, KVCache, make_prompt_cache


def _model_identities(name_or_path, model_dir: Path) -> set[str]:
    """Names a base model may go by: as given, its directory (resolved), its folder name, a Hub id."""
    names = {str(name_or_path), str(model_dir), str(model_dir.resolve()), model_dir.name}
    for part in model_dir.resolve().parts:  # Hub cache: .../models--Org--Name/snapshots/<hash>
        if part.startswith("models--"):
            names.add(part[len("models--") :].replace("--", "/"))
    names |= {n.rsplit("/", 1)[-1] for n in list(names) if "/" in n and not n.startswith(("/", "."))}
    return names


class Qwen3Reranker(RerankerBase):
    """An LLM yes/no reranker (Qwen3-Reranker by default) running in MLX.

    Args:
        model_name_or_path: a ``*ForCausalLM`` checkpoint directory (safetensors, MLX-quantized or not) or
            Hugging Face id, or a ``.gguf`` file.
        instruction: the default ``{instruction}`` of the prompt (default: the template's, for Qwen3-Reranker
            "Given a web search query, retrieve relevant passages that answer the query").
        max_length: tokens per pair, prompt included; the document (then the query) is cut, never the prefix or
            the suffix.
        dtype: "float32" (default), "float16" or "bfloat16" for the float parameters (quantized weights stay
            quantized unless ``dequantize``).
        adapter_path: an mlx-lm LoRA/DoRA adapter directory (``adapter_config.json`` + ``adapters.safetensors``).
        template: a :class:`RerankTemplate` (default: the official Qwen3-Reranker prompt).
        prefix_cache, two_row_head, length_batching: the exact speed-ups (see the module docstring); each may be
            switched off, also later by setting the attribute of the same name.
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
        cpu_streams: int | None = None,
        check_adapter_base: bool = True,
        dequantize: bool | None = None,
        revision: str | None = None,
    ):
        from .cross_encoder import resolve_dtype

        self.template = template if template is not None else QWEN3_TEMPLATE
        if not isinstance(self.template, RerankTemplate):
            raise TypeError(f"template must be a RerankTemplate, got {type(self.template).__name__}")
        if instruction is not None and not isinstance(instruction, str):
            raise TypeError(f"instruction must be a string, got {type(instruction).__name__}")
        self.instruction = instruction
        self.dtype = resolve_dtype(dtype)
        load_model, self._KVCache, self._make_prompt_cache = _import_mlx_lm()

        source = Path(model_name_or_path).expanduser() if isinstance(model_name_or_path, (str, os.PathLike)) else None
        if source is not None and source.suffix.lower() == ".gguf":
            from .gguf import load_gguf

            self.model_dir = source
            self.model, self.config, self.tokenizer = load_gguf(source)
        else:
            self.model_dir = resolve_model_dir(model_name_or_path, revision=revision)
            self.config = load_config(self.model_dir)
            self._check_causal_lm()
            weight_files(self.model_dir)  # clear errors for pickles / no weights
            self.model = self._load_mlx_lm(load_model)
            self.tokenizer = load_tokenizer(self.model_dir)
        if adapter_path is not None:
            self._load_adapter(adapter_path, model_name_or_path, check_adapter_base)
        self.adapter_path = adapter_path
        if dequantize is None:  # MLX's CPU quantized matmul is far slower than its float32 GEMM
            dequantize = mx.default_device().type == mx.cpu
        self.dequantized = bool(dequantize) and self._dequantize()
        self.model.set_dtype(self.dtype)
        self.model.eval()
        mx.eval(self.model.parameters())

        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.yes_id = self._single_token(self.template.yes)
        self.no_id = self._single_token(self.template.no)
        self.prefix_ids = self.tokenizer.encode(self.template.prefix, add_special_tokens=False).ids
        self.suffix_ids = self.tokenizer.encode(self.template.suffix, add_special_tokens=False).ids
        self.max_length = self._resolve_max_length(max_length)
        self.pad_token_id = self._pad_token_id()

        lm = getattr(self.model, "language_model", self.model)  # multimodal wrappers (Gemma 3) keep the LM inside
        self._backbone = getattr(lm, "model", None)
        self._lm = lm
        vocab = self._vocab_rows()
        for token, tid in ((self.template.yes, self.yes_id), (self.template.no, self.no_id)):
            if vocab is not None and tid >= vocab:
                raise ModelLoadError(f"token {token!r} has id {tid}, outside the model's {vocab} vocabulary rows")
        self._two_row_ok = self._check_two_rows()
        self._cache_ok = self._prefix_cache_supported()
        self.two_row_head = two_row_head
        self.prefix_cache = prefix_cache
        self.length_batching = length_batching
        self.cpu_streams = cpu_streams
        self._stream_pool: list = []

    @classmethod
    def from_pretrained(cls, model_name_or_path: str | os.PathLike, **options) -> Qwen3Reranker:
        return cls(model_name_or_path, **options)

    # -- loading -----------------------------------------------------------------------------------------
    def _check_causal_lm(self) -> None:
        archs = self.config.get("architectures") or []
        if any(a.endswith("ForSequenceClassification") for a in archs):
            raise UnsupportedArchitectureError(
                f"{self.model_dir} is a sequence-classification model ({', '.join(archs)}); "
                "load it with MLXCrossEncoder (or mlx_cross_encoder.load_reranker)"
            )
        if "model_type" not in self.config:
            raise ModelLoadError(f"{self.model_dir}/config.json has no model_type")

    def _load_mlx_lm(self, load_model) -> nn.Module:
        try:
            model, _ = load_model(self.model_dir, lazy=True)
        except ValueError as exc:
            if "not supported" in str(exc):
                raise UnsupportedArchitectureError(
                    f"{self.model_dir}: model_type {self.config.get('model_type')!r} is not an mlx-lm model ({exc})"
                ) from exc
            raise ModelLoadError(f"weights in {self.model_dir} do not fit its config: {exc}") from exc
        except Exception as exc:
            raise ModelLoadError(f"cannot load {self.model_dir} with mlx-lm ({type(exc).__name__}: {exc})") from exc
        return model

    def _load_adapter(self, adapter_path, model_name_or_path, check_base: bool) -> None:
        from mlx_lm.tuner.utils import load_adapters

        path = Path(adapter_path).expanduser()
        if not path.is_dir():
            raise ModelLoadError(f"adapter directory not found: {adapter_path}")
        for name in ("adapter_config.json", "adapters.safetensors"):
            if not (path / name).is_file():
                raise ModelLoadError(f"{path} is not an mlx-lm adapter: {name} is missing")
        adapter_config = load_json(path, "adapter_config.json")
        base = adapter_config.get("model")
        if check_base and base:
            if str(base) not in _model_identities(model_name_or_path, self.model_dir) and not (
                Path(str(base)).expanduser().exists()
                and Path(str(base)).expanduser().resolve() == self.model_dir.resolve()
            ):
                raise ModelLoadError(
                    f"adapter {path} was trained on base model {base!r}, but this reranker loads "
                    f"{str(model_name_or_path)!r}; load the adapter's base model, or pass check_adapter_base=False "
                    "if it is the same model under another name"
                )
        try:
            load_adapters(self.model, str(path))
        except (ValueError, KeyError) as exc:
            raise ModelLoadError(f"adapter {path} does not fit {self.model_dir}: {exc}") from exc

    def _dequantize(self) -> bool:
        quantized = (nn.QuantizedLinear, nn.QuantizedEmbedding)
        if not any(isinstance(m, quantized) for _, m in self.model.named_modules()):
            return False
        from mlx_lm.utils import dequantize_model

        self.model.set_dtype(mx.float32)  # float16 scales/biases -> float32: dequantization is then exact
        dequantize_model(self.model)
        return True

    def _single_token(self, token: str) -> int:
        tid = self.tokenizer.token_to_id(token)
        if tid is None:
            pieces = self.tokenizer.encode(token, add_special_tokens=False).tokens
            raise ModelLoadError(
                f"the tokenizer of {self.model_dir} has no single token {token!r} (it splits it into {pieces}); "
                "an LLM yes/no reranker needs single answer tokens: set RerankTemplate(yes=..., no=...)"
            )
        return tid

    def _resolve_max_length(self, max_length: int) -> int:
        fixed = len(self.prefix_ids) + len(self.suffix_ids)
        if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length <= fixed:
            raise ValueError(
                f"max_length must be an integer larger than the template's {fixed} prefix+suffix tokens, "
                f"got {max_length!r}"
            )
        limit = self.config.get("max_position_embeddings")
        if isinstance(limit, int) and max_length > limit:
            logger.warning("max_length %d exceeds the model's %d positions; using %d", max_length, limit, limit)
            max_length = limit
        return max_length

    def _pad_token_id(self) -> int:
        pad = self.config.get("pad_token_id")
        if isinstance(pad, int):
            return pad
        for token in ("<|endoftext|>", "<pad>", "<|pad|>"):
            if (tid := self.tokenizer.token_to_id(token)) is not None:
                return tid
        return 0  # right padding: pad ids are never attended to by real tokens

    def _vocab_rows(self) -> int | None:
        head = self._head_module()
        weight = getattr(head, "weight", None)
        return None if weight is None else int(weight.shape[0])

    def _head_module(self) -> nn.Module | None:
        lm = self._lm
        if "lm_head" in lm:
            return lm["lm_head"]
        if self._backbone is not None and "embed_tokens" in self._backbone:
            return self._backbone["embed_tokens"]
        return None

    def _two_rows(self) -> tuple[mx.array, mx.array | None] | None:
        """The [no, yes] rows of the output projection (dequantized if quantized), read from the current weights."""
        head = self._head_module()
        rows = mx.array([self.no_id, self.yes_id])
        if isinstance(head, (nn.QuantizedLinear, nn.QuantizedEmbedding)):
            biases = head.get("biases")
            weight = mx.dequantize(
                head["weight"][rows], head["scales"][rows], biases[rows] if biases is not None else None,
                group_size=head.group_size, bits=head.bits, mode=head.mode,
            )  # fmt: skip
        elif isinstance(head, (nn.Linear, nn.Embedding)):
            weight = head.weight[rows]
        else:  # e.g. a LoRA-wrapped head
            return None
        bias = head.bias[rows] if isinstance(head, (nn.Linear, nn.QuantizedLinear)) and "bias" in head else None
        return weight, bias

    def _check_two_rows(self) -> bool:
        """Whether the two head rows reproduce the model's own logits (families may soft-cap or scale them)."""
        if self._backbone is None or self._two_rows() is None:
            logger.info("two_row_head unavailable for %s; using full logits", type(self._lm).__module__)
            return False
        probe = mx.array([(self.prefix_ids + self.suffix_ids)[-64:] or [self.no_id, self.yes_id]])
        full = self.model(probe)[:, -1, :]
        full = mx.stack([full[:, self.no_id], full[:, self.yes_id]], axis=-1).astype(mx.float32)
        two = self._project(self._backbone(probe)[:, -1, :], self._two_rows()).astype(mx.float32)
        tol = 1e-4 if self.dtype == mx.float32 else 3e-2
        err = mx.max(mx.abs(full - two)).item()
        if not err <= tol * (1.0 + mx.max(mx.abs(full)).item()):
            logger.warning(
                "two_row_head disabled: %s post-processes its logits (probe diff %.3g)", type(self._lm).__module__, err
            )
            return False
        return True

    def _prefix_cache_supported(self) -> bool:
        try:
            caches = self._make_prompt_cache(self.model)
        except Exception:  # noqa: BLE001 - a model without a standard cache
            return False
        ok = self._backbone is not None and all(type(c) is self._KVCache for c in caches)
        if not ok:
            logger.info("prefix_cache unavailable for %s (cache types %s)", type(self.model).__module__,
                        sorted({type(c).__name__ for c in caches}))  # fmt: skip
        return ok

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
        encodings = self.tokenizer.encode_batch(bodies, add_special_tokens=False)
        return [self.prefix_ids + enc.ids[:budget] + self.suffix_ids for enc in encodings]

    # -- inference ---------------------------------------------------------------------------------------
    @staticmethod
    def _project(hidden: mx.array, rows: tuple[mx.array, mx.array | None]) -> mx.array:
        weight, bias = rows
        out = hidden @ weight.astype(hidden.dtype).T
        return out + bias.astype(out.dtype) if bias is not None else out

    def _last_logits(self, ids: list[list[int]], cache=None) -> mx.array:
        """``(batch, 2)`` [no, yes] logits at each row's last real token; rows right-padded."""
        lengths = [len(x) for x in ids]
        width = max(lengths)
        batch = np.full((len(ids), width), self.pad_token_id, dtype=np.int32)
        for row, x in enumerate(ids):
            batch[row, : len(x)] = x
        inputs = mx.array(batch)
        rows = mx.arange(len(ids))
        last = mx.array(lengths) - 1
        head_rows = self._two_rows() if self.two_row_head and self._two_row_ok else None
        if head_rows is not None:
            hidden = self._backbone(inputs, cache=cache)[rows, last]
            return self._project(hidden, head_rows)
        logits = self.model(inputs, cache=cache)[rows, last]  # full vocabulary at every position: the plain path
        return mx.stack([logits[:, self.no_id], logits[:, self.yes_id]], axis=-1)

    def _expand(self, prefix_cache: list, batch: int) -> list:
        """A batch-sized copy of a one-row prefix cache (broadcast; the first update materializes it)."""
        caches = []
        for c in prefix_cache:
            n = self._KVCache()
            keys, values = c.keys[..., : c.offset, :], c.values[..., : c.offset, :]
            n.keys = mx.broadcast_to(keys, (batch, *keys.shape[1:]))
            n.values = mx.broadcast_to(values, (batch, *values.shape[1:]))
            n.offset = c.offset
            caches.append(n)
        return caches

    def _plan(self, pairs, seqs: list[list[int]], batch_size: int) -> list[tuple[int, list[int]]]:
        """``(prefix_len, indices)`` per batch: one query's documents share a cached prefix of prefix_len tokens."""

        def batches(idx: list[int], lengths: list[int]) -> list[list[int]]:
            if self.length_batching:
                return [[idx[i] for i in b] for b in length_sorted_batches(lengths, batch_size)]
            return [idx[i : i + batch_size] for i in range(0, len(idx), batch_size)]

        plan: list[tuple[int, list[int]]] = []
        loose: list[int] = []
        if self.prefix_cache and self._cache_ok:
            groups: dict[str, list[int]] = {}
            for i, (query, _) in enumerate(pairs):
                groups.setdefault(query, []).append(i)
            for idx in groups.values():
                if len(idx) < 2:
                    loose += idx
                    continue
                group = [seqs[i] for i in idx]
                shared = min(len(s) for s in group) - 1  # every row keeps >= 1 token after the prefix
                first = group[0]
                for s in group[1:]:
                    n = 0
                    while n < shared and s[n] == first[n]:
                        n += 1
                    shared = n
                if shared < 1:
                    loose += idx
                    continue
                plan += [(shared, b) for b in batches(idx, [len(seqs[i]) for i in idx])]
        else:
            loose = list(range(len(seqs)))
        plan += [(0, b) for b in batches(loose, [len(seqs[i]) for i in loose])]
        return plan

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

    def _score(self, pairs, seqs: list[list[int]], batch_size: int, progress: bool) -> np.ndarray:
        out = np.empty((len(seqs), 2), dtype=np.float32)
        prefix_key, prefix_kv = None, None
        streams = self._streams()
        with _blas.single_threaded_while(len(streams) > 1):
            pending: list = []
            for shared, idx in tqdm(self._plan(pairs, seqs, batch_size), desc="Scoring", disable=not progress):
                if shared:
                    key = tuple(seqs[idx[0]][:shared])
                    if key != prefix_key:
                        prefix_kv = self._make_prompt_cache(self.model)
                        self._backbone(mx.array([list(key)]), cache=prefix_kv)
                        mx.eval([(c.keys, c.values) for c in prefix_kv])
                        prefix_key = key
                submitted = []
                # rows dealt round-robin: a length-sorted batch gives each stream the same mix of lengths
                n_chunks = min(len(streams), len(idx))
                chunks = [np.array(idx[k::n_chunks]) for k in range(n_chunks)]
                for chunk, stream in zip(chunks, streams):
                    with mx.stream(stream) if stream is not None else nullcontext():
                        if shared:
                            cache = self._expand(prefix_kv, len(chunk))
                            logits = self._last_logits([seqs[i][shared:] for i in chunk], cache)
                        else:
                            logits = self._last_logits([seqs[i] for i in chunk])
                        submitted.append((chunk, logits.astype(mx.float32)))
                mx.async_eval([x for _, x in submitted])  # the next batch's graph is built meanwhile
                for chunk, x in pending:
                    out[chunk] = np.asarray(x)
                pending = submitted
            for chunk, x in pending:
                out[chunk] = np.asarray(x)
        return out

    def predict_logits(self, pairs, batch_size: int = 32, instruction: str | None = None) -> np.ndarray:
        """``(n, 2)`` float32 [logit_no, logit_yes] of the last position, in input order."""
        pairs, _ = validate_pairs(pairs)
        return self._score(pairs, self._encode(pairs, instruction), batch_size, progress=False)

    def predict(
        self,
        pairs,
        batch_size: int = 32,
        instruction: str | None = None,
        activation_fn=None,
        show_progress_bar: bool | None = None,
    ) -> np.ndarray:
        """P(yes) per (query, document) pair in input order (``activation_fn="identity"``: logit_yes - logit_no).

        One pair gives a numpy scalar, a list an ``(n,)`` float32 array.
        """
        pairs, single = validate_pairs(pairs)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        act = resolve_activation(activation_fn)
        if show_progress_bar is None:
            show_progress_bar = logger.getEffectiveLevel() in (logging.INFO, logging.DEBUG)
        logits = self._score(pairs, self._encode(pairs, instruction), batch_size, show_progress_bar)
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


__all__: list[Any] = [
    "DEFAULT_INSTRUCTION",
    "QWEN3_TEMPLATE",
    "Qwen3Reranker",
    "RerankTemplate",
    "load_reranker",
]
