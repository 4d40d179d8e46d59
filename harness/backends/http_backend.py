"""The ``http`` backend: rerank through any Cohere-, Jina- or TEI-shaped endpoint (our ``mlx-cross-encoder serve``,
text-embeddings-inference, a hosted API), so a suite compares them on the very same candidates.

Suite options: ``url`` (the endpoint itself, e.g. ``http://127.0.0.1:8000/v2/rerank``,
``https://api.jina.ai/v1/rerank``, ``http://host:8080/rerank``), ``shape`` (``cohere`` | ``jina`` | ``tei``),
``remote_model`` (the request's ``model``; default: the reranker's name), ``api_key_env`` (the NAME of an
environment variable holding the key, sent as ``Authorization: Bearer``; the key itself is never stored) and
``timeout_s`` (per request, default 120).

Truncation: the remote truncates by its own rule; the harness cannot enforce the suite's ``max_length`` on it.
``model:`` must name the local copy of the served checkpoint: its tokenizer counts tokens (pair encoding cut at
``max_length``, as the cross-encoder backends do) and its weights' fingerprint is recorded, so the protocol says
what the remote was supposed to serve. TEI requests send ``truncate: true`` (TEI refuses overlong inputs
otherwise) and ``raw_scores: false``. ``describe()`` records all this under ``truncation``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from . import Backend, BackendError, as_scores
from .registry import BACKENDS

OPTIONS = BACKENDS["http"].options
SHAPES = ("cohere", "jina", "tei")
REMOTE_TRUNCATION = (
    "remote: the endpoint truncates by its own rule (not enforced by the harness); max_length is the local "
    "checkpoint's and only cuts the token counts"
)


def request_body(shape: str, query: str, documents: list[str], model: str | None) -> dict[str, Any]:
    """The JSON body of one rerank request of ``shape`` scoring every document."""
    if shape == "tei":
        return {"query": query, "texts": documents, "truncate": True, "raw_scores": False} | (
            {"model": model} if model else {}
        )
    body = {"query": query, "documents": documents, "top_n": len(documents), "return_documents": False}
    return body | ({"model": model} if model else {})


def parse_scores(shape: str, payload: Any, n: int) -> np.ndarray:
    """Scores in input order from a response of ``shape``; BackendError unless every index 0..n-1 comes once."""
    try:
        rows = payload if shape == "tei" else payload["results"]
        key = "score" if shape == "tei" else "relevance_score"
        pairs = [(int(r["index"]), float(r[key])) for r in rows]
    except (KeyError, TypeError, ValueError) as exc:
        raise BackendError(f"{shape} response is not in the {shape} shape ({exc!r}): {str(payload)[:200]}") from None
    indices = sorted(i for i, _ in pairs)
    if indices != list(range(n)):
        raise BackendError(f"{shape} response has indices {indices[:10]}... for {n} documents (each must come once)")
    scores = np.empty(n, dtype=np.float32)
    for i, s in pairs:
        scores[i] = s
    return scores


def public_url(url: str) -> str:
    """``url`` without user info, query or fragment (what may be stored in results)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def auth_headers(api_key_env: str | None) -> dict[str, str]:
    """``Authorization: Bearer <key>`` from the environment variable NAMED ``api_key_env`` (none when unset)."""
    if not api_key_env:
        return {}
    key = os.environ.get(api_key_env)
    if not key:
        raise BackendError(f"option api_key_env names {api_key_env!r}, which is not set (or empty) in the environment")
    return {"Authorization": f"Bearer {key}"}


class HTTPBackend(Backend):
    name = "http"
    memory_measure = "not measurable from the client (remote process)"
    version_packages = ("httpx", "tokenizers")

    def __init__(self, spec, max_length: int, model_dir: Path):
        super().__init__(spec, max_length, model_dir)
        self.check_options(OPTIONS)
        import httpx
        from tokenizers import Tokenizer

        self.url = self.options.get("url")
        self.shape = self.options.get("shape", "cohere")
        if not isinstance(self.url, str) or urlsplit(self.url).scheme not in ("http", "https"):
            raise BackendError(f"option url must be an http(s) endpoint URL, got {self.url!r}")
        if self.shape not in SHAPES:
            raise BackendError(f"option shape must be one of {', '.join(SHAPES)}, got {self.shape!r}")
        self.remote_model = self.options.get("remote_model", getattr(spec, "name", None))
        self.headers = auth_headers(self.options.get("api_key_env"))
        self.timeout_s = float(self.options.get("timeout_s", 120))
        self.device = f"remote {public_url(self.url)}"
        tokenizer_file = self.model_dir / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise BackendError(f"{self.model_dir} has no tokenizer.json (needed to count tokens)")
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length, strategy="longest_first")
        self.client = httpx.Client(timeout=self.timeout_s, headers=self.headers)

    def score_query(self, query: str, documents: list[str]) -> np.ndarray:
        body = request_body(self.shape, query, documents, self.remote_model)
        response = self.client.post(self.url, json=body)
        if response.status_code != 200:
            raise BackendError(f"{public_url(self.url)} answered {response.status_code}: {response.text[:300]}")
        return parse_scores(self.shape, response.json(), len(documents))

    def predict(self, pairs, batch_size: int) -> np.ndarray:
        """One request per distinct query (the worker passes one query's candidates); ``batch_size`` is the
        remote's business."""
        scores = np.empty(len(pairs), dtype=np.float32)
        by_query: dict[str, list[int]] = {}
        for i, (q, _) in enumerate(pairs):
            by_query.setdefault(q, []).append(i)
        for q, idx in by_query.items():
            scores[idx] = self.score_query(q, [pairs[i][1] for i in idx])
        return as_scores(scores, len(pairs))

    def token_counts(self, pairs) -> np.ndarray:
        return np.array([len(e.ids) for e in self.tokenizer.encode_batch(list(pairs))], dtype=np.int64)

    def reset_peak_memory(self) -> None:
        return None

    def peak_memory_mb(self) -> float | None:
        return None

    def remote_info(self) -> Any:
        """The server's ``GET /v1/models`` (our server, OpenAI-style servers) when it answers JSON, else None."""
        parts = urlsplit(self.url)
        try:
            r = self.client.get(urlunsplit((parts.scheme, parts.netloc, "/v1/models", "", "")), timeout=5)
            return r.json() if r.status_code == 200 else None
        except Exception:
            return None

    def describe(self) -> dict[str, Any]:
        options = self.options | {"url": public_url(self.url)}  # never user info or a query string
        return {
            **super().describe(),
            "options": options,
            "url": public_url(self.url),
            "shape": self.shape,
            "remote_model": self.remote_model,
            "api_key_env": self.options.get("api_key_env"),  # the variable's name only
            "truncation": REMOTE_TRUNCATION,
            "remote_models": self.remote_info(),
        }


def load(spec, max_length: int, model_dir: Path) -> HTTPBackend:
    return HTTPBackend(spec, max_length, model_dir)
