"""Server limits and knobs: one pydantic record, shared by the app, the CLI and the tests."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ServeSettings(BaseModel):
    """Limits of one server. Requests over a limit get a 4xx JSON error, never a 5xx."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_documents: int = Field(1000, ge=1, description="documents per request (Cohere recommends <= 1000)")
    max_request_bytes: int = Field(4_000_000, ge=1, description="request body size; larger bodies get 413")
    max_queue: int = Field(256, ge=1, description="queued requests per model; a full queue answers 429")
    max_batch_pairs: int = Field(256, ge=1, description="pairs one merged batch may hold (a larger request runs alone)")
    batch_size: int = Field(32, ge=1, description="rows per forward pass inside a merged batch")
    request_timeout_s: float = Field(60.0, gt=0, description="a request still unanswered after this gets 504")
    retry_after_s: int = Field(1, ge=0, description="Retry-After header value of a 429")
    auto_truncate: bool = Field(
        True, description="TEI requests without 'truncate': truncate overlong inputs (True) or refuse them (413)"
    )
    reload_period_s: float | None = Field(
        None, ge=0, description="check adapters for changes at most this often (None: never); 0 = every batch"
    )
    api_key_env: str = Field("MLX_RERANK_API_KEY", description="env var holding the Bearer key; unset = no auth")
