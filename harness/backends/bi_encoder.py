"""Bi-encoder (embedding) rerankers in the harness: what makes a folder one, and its truncation length.

A folder is a bi-encoder when its sentence-transformers ``modules.json`` lists a ``Pooling`` module (an embedding
model such as all-MiniLM-L6-v2 or Qwen3-Embedding): both backends then score a pair by the cosine similarity of
the query's and the document's embeddings (``harness.backends.bi_encoder_mlx`` / ``bi_encoder_torch``, chosen by
``BackendInfo.kinds`` in the registry). Each text is truncated on its own at ``max_length`` tokens; a pair's token
count is the query's plus the document's. Imports nothing heavy (the parent and the suite validator read it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: the model kinds the harness runs: cross-encoders and LLM rerankers score a pair, bi-encoders embed each text
KIND_BI_ENCODER = "bi_encoder"


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except json.JSONDecodeError as exc:
        from . import BackendError

        raise BackendError(f"{path} is not valid JSON: {exc}") from exc


def is_bi_encoder(model_dir: str | Path) -> bool:
    """True when ``model_dir/modules.json`` lists a sentence-transformers ``Pooling`` module."""
    modules = _read(Path(model_dir) / "modules.json")
    if not isinstance(modules, list):
        return False
    return any(isinstance(m, dict) and str(m.get("type", "")).rsplit(".", 1)[-1] == "Pooling" for m in modules)


def model_kind(model_dir: str | Path) -> str | None:
    """``"bi_encoder"`` for an embedding folder, else None (the backend's own kinds: cross-encoder or LLM)."""
    return KIND_BI_ENCODER if is_bi_encoder(model_dir) else None


def declared_max_seq_length(model_dir: str | Path) -> int | None:
    """An embedding folder's ``sentence_bert_config.json`` ``max_seq_length`` (what ``SentenceTransformer``
    truncates at); None for other folders or when it is not set."""
    if not is_bi_encoder(model_dir):
        return None
    value = (_read(Path(model_dir) / "sentence_bert_config.json") or {}).get("max_seq_length")
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 2 else None


def pair_token_counts(pairs, count_texts) -> list[int]:
    """Tokens a bi-encoder reads for each pair: its query's plus its document's, each truncated on its own.
    ``count_texts(texts) -> token counts`` is the backend's own tokenizer; each distinct text is counted once."""
    texts = list(dict.fromkeys(t for pair in pairs for t in pair))
    length = dict(zip(texts, (int(n) for n in count_texts(texts))))
    return [length[q] + length[d] for q, d in pairs]


def cosine_scores(embeddings, pairs, texts: list[str]):
    """Cosine similarity per pair from ``embeddings`` of ``texts`` (rows in that order), float32."""
    import numpy as np

    emb = np.asarray(embeddings, dtype=np.float32)
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    index = {t: i for i, t in enumerate(texts)}
    q = emb[[index[a] for a, _ in pairs]]
    d = emb[[index[b] for _, b in pairs]]
    return np.einsum("ij,ij->i", q, d).astype(np.float32)
