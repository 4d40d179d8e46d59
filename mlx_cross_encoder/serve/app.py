"""The FastAPI app: routes, auth, limits and error bodies. Scoring goes through :mod:`.pool` (one
:class:`.batcher.ModelWorker` per served model)."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from contextlib import asynccontextmanager

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError

from .errors import ApiError
from .metrics import ServerMetrics
from .pool import ModelPool
from .schemas import (
    ApiVersion,
    Meta,
    ModelCard,
    ModelList,
    RerankRequest,
    RerankResponse,
    RerankResult,
    ResultDocument,
    TEIRequest,
    TEIResult,
)
from .settings import ServeSettings

RERANK_ROUTES = frozenset({"/v1/rerank", "/v2/rerank", "/rerank"})  # behind the API key when one is set
OBSERVED_ROUTES = RERANK_ROUTES | {"/health", "/v1/models"}  # counted and timed in the metrics


async def read_body(request: Request, schema: type[BaseModel], settings: ServeSettings):
    """The body parsed into ``schema``: 413 over ``max_request_bytes``, 422 for bad JSON or wrong types."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > settings.max_request_bytes:
        raise ApiError(413, f"request body is {declared} bytes; the limit is {settings.max_request_bytes}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > settings.max_request_bytes:
            raise ApiError(413, f"request body is over {len(body)} bytes; the limit is {settings.max_request_bytes}")
    try:
        return schema.model_validate_json(bytes(body))
    except ValidationError as exc:
        errors = json.loads(exc.json(include_url=False, include_input=False, include_context=False))
        raise ApiError(422, f"invalid {schema.__name__}: {exc.error_count()} error(s)", errors) from None


def create_app(
    loaders: dict[str, Callable[[], object]],
    settings: ServeSettings | None = None,
    adapters: dict[str, str] | None = None,
) -> FastAPI:
    """An app serving one model per ``loaders`` entry (name -> zero-argument function returning a reranker with
    ``predict(pairs, batch_size)``); the first is the default for requests without ``model``. ``adapters`` (name
    -> adapter folder the loader reads): with ``settings.reload_period_s`` set, a changed adapter is rebuilt
    (``loaders[name]`` again) and swapped in between batches (``mlx_cross_encoder.tribrid.reload.AdapterWatch``:
    a half-written adapter never serves).

    The loaders run at startup on the single MLX thread that later runs every ``predict``: MLX streams belong to
    the thread that made them, so a model built on another thread cannot be used from the predict thread."""
    settings = settings or ServeSettings()
    metrics = ServerMetrics()
    pool = ModelPool(loaders, settings, adapters, metrics)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        await pool.start()
        yield
        await pool.stop()

    app = FastAPI(title="mlx-cross-encoder rerank server", lifespan=lifespan)
    app.state.settings, app.state.metrics, app.state.models = settings, metrics, pool.models

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError):
        body = {"message": exc.message} | ({"errors": exc.errors} if exc.errors is not None else {})
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)

    @app.middleware("http")
    async def _observe(request: Request, call_next):
        start = time.perf_counter()
        route = request.url.path
        if request.method == "POST" and route in RERANK_ROUTES:
            key = os.environ.get(settings.api_key_env)
            if key and request.headers.get("authorization", "") != f"Bearer {key}":
                response = JSONResponse({"message": "missing or wrong API key (Authorization: Bearer ...)"}, 401)
            else:
                response = await call_next(request)
        else:
            response = await call_next(request)
        if route in OBSERVED_ROUTES:
            metrics.requests.labels(route, str(response.status_code)).inc()
            metrics.latency.labels(route).observe(time.perf_counter() - start)
        return response

    _add_routes(app, pool)
    return app


async def _cohere_shape(request: Request, pool: ModelPool, version: str) -> RerankResponse:
    req = await read_body(request, RerankRequest, pool.settings)
    texts = req.texts()
    scores = await pool.score(req.model, req.query, texts, max_tokens_per_doc=req.max_tokens_per_doc)
    order = np.argsort(-scores, kind="stable")[: req.top_n or len(texts)]
    results = [
        RerankResult(
            index=int(i),
            relevance_score=float(scores[i]),
            document=ResultDocument(text=texts[i]) if req.return_documents else None,
        )
        for i in order
    ]
    return RerankResponse(id=str(uuid.uuid4()), results=results, meta=Meta(api_version=ApiVersion(version=version)))


def _add_routes(app: FastAPI, pool: ModelPool) -> None:
    """The rerank routes (Cohere v1/Jina, Cohere v2, TEI), health, model list and Prometheus metrics."""

    @app.post("/v1/rerank", response_model=RerankResponse, response_model_exclude_none=True)
    async def rerank_v1(request: Request):
        """Cohere v1 and Jina shape."""
        return await _cohere_shape(request, pool, "1")

    @app.post("/v2/rerank", response_model=RerankResponse, response_model_exclude_none=True)
    async def rerank_v2(request: Request):
        """Cohere v2 shape."""
        return await _cohere_shape(request, pool, "2")

    @app.post("/rerank", response_model=list[TEIResult], response_model_exclude_none=True)
    async def rerank_tei(request: Request):
        """text-embeddings-inference shape: ``score`` is the activated score, or the logit with ``raw_scores``;
        ``truncate`` false (or unset while the server's ``auto_truncate`` is off) refuses overlong inputs (413)."""
        req = await read_body(request, TEIRequest, pool.settings)
        truncate = pool.settings.auto_truncate if req.truncate is None else req.truncate
        scores = await pool.score(req.model, req.query, req.texts, raw=req.raw_scores, truncate=truncate)
        order = np.argsort(-scores, kind="stable")
        return [
            TEIResult(index=int(i), score=float(scores[i]), text=req.texts[i] if req.return_text else None)
            for i in order
        ]

    @app.get("/health")
    async def health():
        return {"status": "ok", "models": list(pool.loaders)}

    @app.get("/v1/models", response_model=ModelList)
    async def list_models():
        return ModelList(data=[ModelCard(id=n, kind=pool.current(n).class_name) for n in pool.models])

    @app.get("/metrics")
    async def prometheus():
        for name, worker in pool.workers.items():
            pool.metrics.queue_depth.labels(name).set(worker.queue.qsize())
        return Response(pool.metrics.render(), media_type="text/plain; version=0.0.4")
