"""Bi-encoders in MLX: ``MLXEmbedder`` (sentence-transformers' ``encode``) and ``MLXBiEncoderReranker`` (cosine).

An embedder is a BERT-family encoder folder (the encoders of ``models/*.py``, without their classification head)
or a decoder folder that mlx-lm runs (Qwen3, Gemma-3 text, Llama/SmolLM2: ``embedding.decoder``), plus
sentence-transformers' pooling: the folder's ``modules.json`` / ``1_Pooling/config.json`` say mean, CLS or last-token
pooling and whether a ``Normalize`` module follows; ``sentence_bert_config.json``'s ``max_seq_length`` is the
default truncation.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from .base import RerankerBase, length_sorted_batches, padded_width, validate_pairs
from .errors import ModelLoadError, UnsupportedArchitectureError
from .hub import load_config, load_json, load_tokenizer, load_weights, resolve_model_dir
from .precision import resolve_dtype

#: config.json ``model_type`` -> module under mlx_cross_encoder.models (encoders only)
ENCODER_MODULES = {"bert": "bert", "xlm-roberta": "xlm_roberta", "modernbert": "modernbert"}
#: pooling modes this embedder implements (sentence-transformers' names)
POOLING_MODES = ("mean", "cls", "lasttoken")


def _st_class(module: dict) -> str:
    """Class name of a modules.json entry (older sentence-transformers write ``sentence_transformers.models.Pooling``,
    newer ``sentence_transformers.sentence_transformer.modules.pooling.Pooling``)."""
    return str(module.get("type", "")).rsplit(".", 1)[-1]


def encoder_module(config: dict[str, Any]):
    """The ``models`` module of an encoder config (by ``model_type``; any ``*Model`` / head architecture)."""
    name = ENCODER_MODULES.get(str(config.get("model_type", "")).lower())
    if name is None:
        raise UnsupportedArchitectureError(
            f"unsupported model_type {config.get('model_type')!r} for an embedder; "
            f"supported: {', '.join(sorted(ENCODER_MODULES))}"
        )
    return importlib.import_module(f".models.{name}", __package__)


def folder_pooling(model_dir: Path) -> tuple[str, bool]:
    """``(pooling mode, normalize)`` that the sentence-transformers modules of ``model_dir`` declare.

    No ``modules.json``: mean pooling, no normalization (sentence-transformers' own default for a bare folder).
    """
    modules = load_json(model_dir, "modules.json") if (model_dir / "modules.json").is_file() else []
    if not isinstance(modules, list):
        raise ModelLoadError(f"{model_dir / 'modules.json'} must be a list of modules")
    normalize = any(_st_class(m) == "Normalize" for m in modules)
    pooling = [m for m in modules if _st_class(m) == "Pooling"]
    if not pooling:
        return "mean", normalize
    file = Path(pooling[0].get("path", "")) / "config.json"
    cfg = load_json(model_dir, str(file))
    if isinstance(cfg.get("pooling_mode"), str):  # newer sentence-transformers: "pooling_mode": "cls"
        modes = [cfg["pooling_mode"]]
    else:  # older: one boolean per mode, e.g. "pooling_mode_mean_tokens": true
        modes = [
            k.removeprefix("pooling_mode_").removesuffix("_token").removesuffix("_tokens")
            for k, v in cfg.items()
            if k.startswith("pooling_mode_") and v
        ]
    if len(modes) != 1 or modes[0] not in POOLING_MODES:
        raise ModelLoadError(
            f"{model_dir / file}: pooling_mode_* selects {modes or 'nothing'}; supported: exactly one of "
            f"{', '.join(POOLING_MODES)}"
        )
    return modes[0], normalize


class MLXEmbedder:
    """Sentence embeddings from an encoder or decoder folder, as ``SentenceTransformer(path).encode`` gives.

    Args:
        model_name_or_path: local folder (config.json, safetensors, tokenizer.json [, sentence-transformers files]).
        max_length: truncation in tokens (default: ``sentence_bert_config.json`` max_seq_length, else the
            tokenizer's model_max_length, capped at the model's positions).
        dtype: "float32" (default), "tf32", "float16" or "bfloat16" (precision.resolve_dtype); pooling and
            normalization run in float32.
        pooling: "mean", "cls" or "lasttoken" (default: the folder's Pooling module, else mean).
        normalize: L2-normalize embeddings (default: whether the folder has a Normalize module).
    """

    def __init__(
        self,
        model_name_or_path: str | os.PathLike,
        max_length: int | None = None,
        dtype=None,
        pooling: str | None = None,
        normalize: bool | None = None,
    ):
        self.model_dir: Path = resolve_model_dir(model_name_or_path)
        self.config = load_config(self.model_dir)
        self.dtype = resolve_dtype(dtype)
        self.is_decoder = str(self.config.get("model_type", "")).lower() not in ENCODER_MODULES
        if self.is_decoder:
            from .embedding.decoder import DecoderBackbone

            self.model = DecoderBackbone(self.model_dir, self.config, self.dtype)
            self._encode = self.model
        else:
            module = encoder_module(self.config)
            self.model = module.Model(module.ModelArgs.from_dict(self.config))
            self._load_weights()
            self.model.eval()
            self._encode = self.model.encode
        folder_mode, folder_normalize = folder_pooling(self.model_dir)
        self.pooling = folder_mode if pooling is None else pooling
        if self.pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {', '.join(POOLING_MODES)}, got {pooling!r}")
        self.normalize = folder_normalize if normalize is None else bool(normalize)
        self.tokenizer = load_tokenizer(self.model_dir)
        self.max_length = self._resolve_max_length(max_length)
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_length)
        self.pad_token_id = int(self.config.get("pad_token_id") or 0)  # right padding: never attended to

    def _load_weights(self) -> None:
        """The encoder's tensors, all of them; the classification head (absent from an embedding folder) and a
        BERT pooler (unused by sentence pooling) may be missing."""
        weights = self.model.sanitize(load_weights(self.model_dir))
        optional = (*self.model.head_prefixes, "bert.pooler.", "roberta.pooler.")
        expected = {k for k, _ in nn.utils.tree_flatten(self.model.parameters())}
        missing = sorted(k for k in expected - weights.keys() if not k.startswith(optional))
        unexpected = sorted(weights.keys() - expected)
        if missing or unexpected:
            raise ModelLoadError(
                f"weights in {self.model_dir} do not fit a {self.config.get('model_type')} encoder: "
                f"missing {missing[:4]}, unexpected {unexpected[:4]}"
            )
        loaded = [(k, v.astype(self.dtype)) for k, v in weights.items() if not k.startswith(optional)]
        self.model.load_weights(loaded, strict=False)
        mx.eval(self.model.parameters())

    def _resolve_max_length(self, max_length: int | None) -> int:
        limit = self.model.max_positions
        if max_length is None:
            declared = load_json(self.model_dir, "sentence_bert_config.json").get("max_seq_length")
            if declared is None:
                declared = load_json(self.model_dir, "tokenizer_config.json").get("model_max_length")
            max_length = int(declared) if isinstance(declared, (int, float)) and declared < 1e6 else limit
        if not isinstance(max_length, int) or max_length < 2:
            raise ValueError(f"max_length must be an integer >= 2, got {max_length!r}")
        return min(max_length, limit)

    @property
    def dimension(self) -> int:
        return int(self.config["hidden_size"])

    def collate(self, encodings, pad_multiple: int | None = None) -> tuple[mx.array, mx.array]:
        """``(ids, mask)`` int32 arrays of right-padded tokenizer encodings; the width is the longest row, rounded
        up to a multiple of ``pad_multiple`` when given (fewer distinct shapes in training; the padding is masked,
        so every pooling gives the same embeddings)."""
        width = max(len(e.ids) for e in encodings)
        if pad_multiple:  # never past the positions the model has (the longest row fits: max_length caps it)
            width = padded_width(width, pad_multiple, self.model.max_positions)
        ids = np.full((len(encodings), width), self.pad_token_id, dtype=np.int32)
        mask = np.zeros((len(encodings), width), dtype=np.int32)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = 1
        return mx.array(ids), mx.array(mask)

    def pooled(self, ids: mx.array, mask: mx.array) -> mx.array:
        """Sentence embeddings ``(batch, dimension)`` float32 of right-padded ``ids`` (arrays in, arrays out:
        a training step can wrap it in ``mx.compile``)."""
        hidden = self._encode(ids, mask).astype(mx.float32)
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        elif self.pooling == "lasttoken":  # the last real token of each right-padded row
            last = mask.astype(mx.int32).sum(axis=1) - 1
            pooled = mx.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0]
        else:
            m = mask.astype(mx.float32)[..., None]
            pooled = (hidden * m).sum(axis=1) / mx.maximum(m.sum(axis=1), 1e-9)
        if self.normalize:
            pooled = pooled / mx.maximum(mx.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)
        return pooled

    def _forward(self, encodings, pad_multiple: int | None = None) -> mx.array:
        return self.pooled(*self.collate(encodings, pad_multiple))

    def encode(self, texts: str | Sequence[str], batch_size: int = 32) -> np.ndarray:
        """``(n, dimension)`` float32 embeddings in input order (one string gives ``(dimension,)``)."""
        single = isinstance(texts, str)
        texts = [texts] if single else list(texts)
        if not texts:
            raise ValueError("texts is empty: nothing to encode")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] must be a string, got {type(text).__name__}")
        encodings = self.tokenizer.encode_batch(texts)
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        try:
            for batch in length_sorted_batches([len(e.ids) for e in encodings], batch_size, max_width=self.max_length):
                out[batch] = np.asarray(self._forward([encodings[i] for i in batch]))
        finally:
            mx.clear_cache()
        return out[0] if single else out

    def trained_weights(self) -> dict[str, mx.array]:
        """The embedding module's current tensors by name (a decoder's: relative to its backbone, the Hugging Face
        names without ``model.``), LoRA adapters fused: a ``LoRALinear`` at ``path`` gives ``path.weight`` =
        ``W + scale * (A B)^T`` (mlx-lm's ``fuse``) and its bias."""
        from mlx.utils import tree_flatten

        from .training.lora import is_lora_linear

        module = self.model.model if self.is_decoder else self.model
        out = dict(tree_flatten(module.parameters()))
        for path, layer in module.named_modules():
            if is_lora_linear(layer):
                fused = layer.fuse()
                for key in [k for k in out if k.startswith(path + ".")]:
                    del out[key]
                out.update({f"{path}.{k}": v for k, v in tree_flatten(fused.parameters())})
        return out

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write an embedding folder like the one loaded, holding this embedder's current weights (e.g. after
        ``training.infonce.InfoNCETrainer``, LoRA adapters fused into their layers): the source folder's files are
        copied (tokenizer, sentence-transformers modules, config), and its safetensors tensors are written to
        ``model.safetensors`` under their own names and shapes, each with the trained value when the embedder
        loaded it (buffers, an unused pooler, head or LM head: the source's value). ``SentenceTransformer(path)``
        and ``MLXEmbedder(path)`` load it."""
        import shutil

        from .embedding.decoder import PREFIX

        out = Path(path)
        if out.resolve() == self.model_dir.resolve():
            raise ValueError(f"{out} is the folder this embedder was loaded from: write the trained one elsewhere")
        weight_files = ("*.safetensors", "*.safetensors.index.json", "*.bin", "*.pt", "*.h5", "*.msgpack", "*.onnx")
        shutil.copytree(
            self.model_dir, out, ignore=shutil.ignore_patterns(*weight_files, "onnx", "openvino"), dirs_exist_ok=True
        )
        current = self.trained_weights()
        skipped = () if self.is_decoder else (*self.model.head_prefixes, "bert.pooler.", "roberta.pooler.")
        tensors = {}
        for name, value in load_weights(self.model_dir).items():
            if self.is_decoder:  # a causal-LM file's "model.*" or a bare backbone's names
                mapped = name.removeprefix(PREFIX)
            else:
                mapped = next(iter(self.model.sanitize({name: value})), None)
            if mapped in current and not mapped.startswith(skipped):
                if current[mapped].shape != value.shape:
                    raise ValueError(f"{name}: trained shape {current[mapped].shape} != source {value.shape}")
                value = current[mapped].astype(value.dtype)
            tensors[name] = value
        mx.save_safetensors(str(out / "model.safetensors"), tensors, metadata={"format": "pt"})
        return out

    def __repr__(self) -> str:
        return (
            f"MLXEmbedder({str(self.model_dir)!r}, pooling={self.pooling}, normalize={self.normalize}, "
            f"max_length={self.max_length}, dtype={self.dtype})"
        )


class MLXBiEncoderReranker(RerankerBase):
    """Reranks by cosine similarity of query and document embeddings; ``predict`` / ``rank`` as MLXCrossEncoder.

    ``embedder``: an :class:`MLXEmbedder` or a folder (then ``options`` go to ``MLXEmbedder``).
    """

    def __init__(self, embedder: MLXEmbedder | str | os.PathLike, **options):
        self.embedder = embedder if isinstance(embedder, MLXEmbedder) else MLXEmbedder(embedder, **options)

    def predict(self, pairs, batch_size: int = 32) -> np.ndarray:
        """Cosine similarity per (query, document) pair, float32, input order (one pair gives a scalar).
        Each distinct text is encoded once."""
        pairs, single = validate_pairs(pairs)
        texts = list(dict.fromkeys(t for pair in pairs for t in pair))
        index = {t: i for i, t in enumerate(texts)}
        emb = self.embedder.encode(texts, batch_size=batch_size)
        emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        q = emb[[index[a] for a, _ in pairs]]
        d = emb[[index[b] for _, b in pairs]]
        scores = np.einsum("ij,ij->i", q, d).astype(np.float32)
        return scores[0] if single else scores

    def __repr__(self) -> str:
        return f"MLXBiEncoderReranker({self.embedder!r})"
