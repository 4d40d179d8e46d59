"""Dynamic micro-batching: one asyncio worker per model merges queued requests into one ``predict`` call.

Requests wait in a bounded ``asyncio.Queue`` (full -> :class:`QueueFull`, the app answers 429). The worker takes
the first waiting request, then every other already-waiting request while the merged pair count stays within
``max_batch_pairs`` (a larger request runs alone), scores all pairs in one ``predict`` on the model thread, and
hands each request its slice of the scores. All MLX work runs on one shared single-thread executor, so MLX is
never entered from two threads at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .metrics import ServerMetrics
from .models import ServedModel


class QueueFull(Exception):
    """The model's queue holds ``max_queue`` requests already."""


class NonFiniteScores(Exception):
    """The model returned NaN or infinite scores."""


@dataclass
class _Job:
    pairs: list[tuple[str, str]]
    raw: bool
    future: asyncio.Future = field(repr=False)


class ModelWorker:
    """The queue and the batching task of one served model."""

    def __init__(
        self,
        name: str,
        model: ServedModel,
        executor: ThreadPoolExecutor,
        metrics: ServerMetrics,
        *,
        max_queue: int,
        max_batch_pairs: int,
        batch_size: int,
        reload: Callable[[], ServedModel | None] | None = None,
    ):
        self.name, self.model, self.executor, self.metrics = name, model, executor, metrics
        self.max_batch_pairs, self.batch_size = max_batch_pairs, batch_size
        self.reload = reload  # run on the model thread before each batch: a new model to swap in, or None
        self.queue: asyncio.Queue[_Job] = asyncio.Queue(maxsize=max_queue)
        self._carry: _Job | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"batcher:{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def submit(self, pairs: list[tuple[str, str]], raw: bool = False) -> asyncio.Future:
        """Queue ``pairs``; the future resolves to their scores (``raw``: logits, see
        :meth:`ServedModel.scores`). Raises :class:`QueueFull`."""
        job = _Job(pairs, raw, asyncio.get_running_loop().create_future())
        try:
            self.queue.put_nowait(job)
        except asyncio.QueueFull as exc:
            raise QueueFull(self.name) from exc
        self.metrics.queue_depth.labels(self.name).set(self.queue.qsize())
        return job.future

    async def _next_batch(self) -> list[_Job]:
        first = self._carry or await self.queue.get()
        self._carry = None
        batch, total = [first], len(first.pairs)
        while not self.queue.empty():
            job = self.queue.get_nowait()
            if total + len(job.pairs) > self.max_batch_pairs:
                self._carry = job
                break
            batch.append(job)
            total += len(job.pairs)
        self.metrics.queue_depth.labels(self.name).set(self.queue.qsize())
        return [job for job in batch if not job.future.done()]  # timed-out requests are dropped

    def _predict(self, pairs: list[tuple[str, str]], raw: bool) -> np.ndarray:
        scores = np.atleast_1d(np.asarray(self.model.scores(pairs, self.batch_size, raw), dtype=np.float64))
        if scores.ndim != 1 or scores.shape[0] != len(pairs):
            raise ValueError(f"model {self.name} returned scores of shape {scores.shape} for {len(pairs)} pairs")
        if not np.isfinite(scores).all():
            raise NonFiniteScores(f"model {self.name} returned non-finite scores")
        return scores

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            if not batch:
                continue
            if self.reload is not None:
                await self._maybe_reload(loop)
            self.metrics.observe_batch(self.name, len(batch), sum(len(job.pairs) for job in batch))
            for raw in (False, True):  # raw-score requests (rare) run in a predict call of their own
                group = [job for job in batch if job.raw == raw]
                if group:
                    await self._score(loop, group, raw)

    async def _maybe_reload(self, loop) -> None:
        """Swap in the model ``reload`` built (a changed adapter); a failure keeps the current model serving."""
        try:
            new = await loop.run_in_executor(self.executor, self.reload)
        except Exception:  # AdapterWatch already keeps build errors; anything else must not stop the worker
            new = None
        if new is not None:
            self.model = new
            self.metrics.reloads.labels(self.name).inc()

    async def _score(self, loop, group: list[_Job], raw: bool) -> None:
        pairs = [p for job in group for p in job.pairs]
        try:
            scores = await loop.run_in_executor(self.executor, self._predict, pairs, raw)
        except Exception as exc:  # handed to the waiting requests, the worker keeps serving
            for job in group:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        start = 0
        for job in group:
            if not job.future.done():
                job.future.set_result(scores[start : start + len(job.pairs)])
            start += len(job.pairs)
