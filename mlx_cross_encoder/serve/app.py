"""The FastAPI app: routes, auth, limits and error bodies. Scoring goes through :mod:`.batcher`."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError

from .batcher import ModelWorker, NonFiniteScores, QueueFull
from .metrics import ServerMetrics
from .models import NotApplicable, ServedModel
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


class ApiError(Exception):
    """An error answered as ``{"message": ...}`` with ``status``."""

    def __init__(self, status: int, message: str, errors: list | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.errors, self.headers = status, message, errors, headers


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


def check_inputs(query: str, texts: list[str], settings: ServeSettings) -> None:
    if not query.strip():
        raise ApiError(400, "query is empty")
    if not texts:
        raise ApiError(400, "documents is empty: nothing to rerank")
    if len(texts) > settings.max_documents:
        raise ApiError(400, f"{len(texts)} documents; the limit is {settings.max_documents} per request")
    empty = [i for i, t in enumerate(texts) if not t.strip()]
    if empty:
        raise ApiError(400, f"documents {empty[:10]} are empty strings")


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
    if not loaders:
        raise ValueError("create_app needs at least one model")
    models: dict[str, ServedModel] = {}
    settings = settings or ServeSettings()
    metrics = ServerMetrics()
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlx-predict")
    default = next(iter(loaders))
    workers: dict[str, ModelWorker] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        loop = asyncio.get_running_loop()
        reloads = {}
        for name, load in loaders.items():
            watch = _watch(name, adapters, settings)
            models[name] = ServedModel(await loop.run_in_executor(executor, load))
            reloads[name] = None if watch is None else _reloader(watch, load)
        for name, model in models.items():
            workers[name] = ModelWorker(
                name,
                model,
                executor,
                metrics,
                max_queue=settings.max_queue,
                max_batch_pairs=settings.max_batch_pairs,
                batch_size=settings.batch_size,
                reload=reloads[name],
            )
            workers[name].start()
        yield
        for worker in workers.values():
            await worker.stop()
        executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="mlx-cross-encoder rerank server", lifespan=lifespan)
    app.state.settings, app.state.metrics, app.state.models = settings, metrics, models

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError):
        body = {"message": exc.message} | ({"errors": exc.errors} if exc.errors is not None else {})
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)

    @app.middleware("http")
    async def _observe(request: Request, call_next):
        start = time.perf_counter()
        route = request.url.path
        if request.method == "POST" and route in {"/v1/rerank", "/v2/rerank", "/rerank"}:
            key = os.environ.get(settings.api_key_env)
            if key and request.headers.get("authorization", "") != f"Bearer {key}":
                response = JSONResponse({"message": "missing or wrong API key (Authorization: Bearer ...)"}, 401)
            else:
                response = await call_next(request)
        else:
            response = await call_next(request)
        if route in {"/v1/rerank", "/v2/rerank", "/rerank", "/health", "/v1/models"}:
            metrics.requests.labels(route, str(response.status_code)).inc()
            metrics.latency.labels(route).observe(time.perf_counter() - start)
        return response

    def current(name: str) -> ServedModel:
        return workers[name].model  # a reload swaps the worker's model

    async def score(
        model_name: str | None,
        query: str,
        texts: list[str],
        *,
        raw: bool = False,
        truncate: bool = True,
        max_tokens_per_doc: int | None = None,
    ) -> np.ndarray:
        """Scores of ``texts`` for ``query`` in input order. ``max_tokens_per_doc`` cuts each document first;
        ``truncate=False`` refuses (413, as TEI does) pairs longer than the model's ``max_length``."""
        name = model_name or default
        if name not in workers:
            raise ApiError(404, f"model {name!r} is not served; served: {sorted(workers)}")
        check_inputs(query, texts, settings)
        served = current(name)
        try:
            if raw:
                served.check_raw()
            if max_tokens_per_doc is not None:
                texts = served.cut_documents(texts, max_tokens_per_doc)
            pairs = [(query, t) for t in texts]
            if not truncate:
                over = served.overlong(pairs)
                if over:
                    raise ApiError(
                        413,
                        f"Input validation error: texts {over[:10]} are longer than the model's max_length "
                        f"({served.max_length} tokens with the query) and truncate is false",
                    )
        except NotApplicable as exc:
            raise ApiError(400, str(exc)) from None
        try:
            future = workers[name].submit(pairs, raw)
        except QueueFull:
            raise ApiError(
                429,
                f"model {name!r} queue is full ({settings.max_queue} requests); retry later",
                headers={"Retry-After": str(settings.retry_after_s)},
            ) from None
        try:
            return await asyncio.wait_for(future, settings.request_timeout_s)
        except asyncio.TimeoutError:
            raise ApiError(504, f"not scored within {settings.request_timeout_s} s") from None
        except NonFiniteScores as exc:
            raise ApiError(500, str(exc)) from None

    async def cohere_shape(request: Request, version: str) -> RerankResponse:
        req = await read_body(request, RerankRequest, settings)
        texts = req.texts()
        scores = await score(req.model, req.query, texts, max_tokens_per_doc=req.max_tokens_per_doc)
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

    @app.post("/v1/rerank", response_model=RerankResponse, response_model_exclude_none=True)
    async def rerank_v1(request: Request):
        """Cohere v1 and Jina shape."""
        return await cohere_shape(request, "1")

    @app.post("/v2/rerank", response_model=RerankResponse, response_model_exclude_none=True)
    async def rerank_v2(request: Request):
        """Cohere v2 shape."""
        return await cohere_shape(request, "2")

    @app.post("/rerank", response_model=list[TEIResult], response_model_exclude_none=True)
    async def rerank_tei(request: Request):
        """text-embeddings-inference shape: ``score`` is the activated score, or the logit with ``raw_scores``;
        ``truncate`` false (or unset while the server's ``auto_truncate`` is off) refuses overlong inputs (413)."""
        req = await read_body(request, TEIRequest, settings)
        truncate = settings.auto_truncate if req.truncate is None else req.truncate
        scores = await score(req.model, req.query, req.texts, raw=req.raw_scores, truncate=truncate)
        order = np.argsort(-scores, kind="stable")
        return [
            TEIResult(index=int(i), score=float(scores[i]), text=req.texts[i] if req.return_text else None)
            for i in order
        ]

    @app.get("/health")
    async def health():
        return {"status": "ok", "models": list(loaders)}

    @app.get("/v1/models", response_model=ModelList)
    async def list_models():
        return ModelList(data=[ModelCard(id=n, kind=current(n).class_name) for n in models])

    @app.get("/metrics")
    async def prometheus():
        for name, worker in workers.items():
            metrics.queue_depth.labels(name).set(worker.queue.qsize())
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    return app


def _watch(name: str, adapters: dict[str, str] | None, settings: ServeSettings):
    """An AdapterWatch of ``name``'s adapter, its fingerprint taken before the first build (None: no reload)."""
    if settings.reload_period_s is None or not adapters or adapters.get(name) is None:
        return None
    from ..tribrid.reload import AdapterWatch, adapter_fingerprint

    watch = AdapterWatch(adapters[name], settings.reload_period_s)
    watch.accept(adapter_fingerprint(adapters[name]))
    return watch


def _reloader(watch, load: Callable[[], object]) -> Callable[[], ServedModel | None]:
    def reload() -> ServedModel | None:
        built = watch.poll(load)
        return None if built is None else ServedModel(built)

    return reload
