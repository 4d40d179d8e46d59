"""The served models: each loaded at startup on the single MLX thread and scored by its own :class:`ModelWorker`
(micro-batching queue), reloaded when its adapter changes; ``ModelPool.score`` turns a request's query and texts
into scores or an :class:`ApiError` (unknown model, bad input, overlong input, full queue, timeout).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .batcher import ModelWorker, NonFiniteScores, QueueFull
from .errors import ApiError
from .metrics import ServerMetrics
from .models import NotApplicable, ServedModel
from .settings import ServeSettings


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


class ModelPool:
    """One model per ``loaders`` entry (name -> zero-argument function returning a reranker with
    ``predict(pairs, batch_size)``); the first is the default for requests without ``model``. ``adapters`` (name
    -> adapter folder the loader reads): with ``settings.reload_period_s`` set, a changed adapter is rebuilt
    (``loaders[name]`` again) and swapped in between batches (``mlx_cross_encoder.tribrid.reload.AdapterWatch``:
    a half-written adapter never serves).

    The loaders run in ``start`` on the single MLX thread that later runs every ``predict``: MLX streams belong
    to the thread that made them, so a model built on another thread cannot be used from the predict thread."""

    def __init__(
        self,
        loaders: dict[str, Callable[[], object]],
        settings: ServeSettings,
        adapters: dict[str, str] | None,
        metrics: ServerMetrics,
    ):
        if not loaders:
            raise ValueError("create_app needs at least one model")
        self.loaders, self.settings, self.adapters, self.metrics = loaders, settings, adapters, metrics
        self.models: dict[str, ServedModel] = {}
        self.workers: dict[str, ModelWorker] = {}
        self.default = next(iter(loaders))
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlx-predict")

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        reloads = {}
        for name, load in self.loaders.items():
            watch = _watch(name, self.adapters, self.settings)
            self.models[name] = ServedModel(await loop.run_in_executor(self.executor, load))
            reloads[name] = None if watch is None else _reloader(watch, load)
        for name, model in self.models.items():
            self.workers[name] = ModelWorker(
                name,
                model,
                self.executor,
                self.metrics,
                max_queue=self.settings.max_queue,
                max_batch_pairs=self.settings.max_batch_pairs,
                batch_size=self.settings.batch_size,
                reload=reloads[name],
            )
            self.workers[name].start()

    async def stop(self) -> None:
        for worker in self.workers.values():
            await worker.stop()
        self.executor.shutdown(wait=False, cancel_futures=True)

    def current(self, name: str) -> ServedModel:
        return self.workers[name].model  # a reload swaps the worker's model

    async def score(
        self,
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
        name = model_name or self.default
        if name not in self.workers:
            raise ApiError(404, f"model {name!r} is not served; served: {sorted(self.workers)}")
        check_inputs(query, texts, self.settings)
        pairs = self._pairs(self.current(name), query, texts, raw, truncate, max_tokens_per_doc)
        try:
            future = self.workers[name].submit(pairs, raw)
        except QueueFull:
            raise ApiError(
                429,
                f"model {name!r} queue is full ({self.settings.max_queue} requests); retry later",
                headers={"Retry-After": str(self.settings.retry_after_s)},
            ) from None
        try:
            return await asyncio.wait_for(future, self.settings.request_timeout_s)
        except asyncio.TimeoutError:
            raise ApiError(504, f"not scored within {self.settings.request_timeout_s} s") from None
        except NonFiniteScores as exc:
            raise ApiError(500, str(exc)) from None

    @staticmethod
    def _pairs(
        served: ServedModel, query: str, texts: list[str], raw: bool, truncate: bool, max_tokens_per_doc: int | None
    ) -> list[tuple[str, str]]:
        """The (query, text) pairs to score, after the request's raw-score, cut and truncation rules."""
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
        return pairs


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
