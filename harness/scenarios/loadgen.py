"""The server scenario's load generator: asyncio + httpx, one process, no threads.

Why not locust: locust runs its users on gevent (monkey-patching the process the harness measures from), has no
open-loop arrival schedule (its users are closed loops with think times), and reports percentiles from rounded
response-time buckets. Here every request's latency is kept exactly, arrivals can follow a fixed schedule, and
httpx is already the server's test client.

Two ways to load a server (MLPerf's Server scenario is the first):

* **open loop** (``target_qps``): the arrival times of a Poisson process of that rate, conditioned on its count
  (``round(target_qps x duration)`` arrival times drawn uniformly and sorted, seeded), issued whatever the server
  does. Latency runs from the *scheduled* arrival, so a generator or server falling behind shows up in the
  latency instead of being hidden (no coordinated omission).
* **closed loop** (``concurrency``): that many clients, each sending its next request when the previous one is
  answered.

Both first run ``warmup_s`` of the same load, whose requests are not counted. Requests cycle through the
prepared bodies (one per query of the dataset).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Sample:
    query: int  # index of the prepared body
    scheduled: float  # seconds since the generator started: the planned arrival (open) or the send (closed)
    sent: float
    done: float
    status: int  # HTTP status; 0 when no answer (connection error, client timeout)
    error: str | None = None
    scores: np.ndarray | None = None

    @property
    def latency_s(self) -> float:
        return self.done - self.scheduled


@dataclass
class LoadResult:
    window_start: float  # seconds since the generator started
    duration_s: float
    samples: list[Sample] = field(default_factory=list)  # requests scheduled inside the window only

    @property
    def ok(self) -> list[Sample]:
        return [s for s in self.samples if s.status == 200 and s.error is None]

    @property
    def span_s(self) -> float:
        """From the window's start until its last request was answered (at least ``duration_s``)."""
        last = max((s.done for s in self.samples), default=self.window_start)
        return max(self.duration_s, last - self.window_start)

    @property
    def achieved_qps(self) -> float:
        return len(self.ok) / self.span_s

    @property
    def offered_qps(self) -> float:
        return len(self.samples) / self.duration_s

    def errors(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.samples:
            if s.status != 200 or s.error is not None:
                key = str(s.status) if s.status else (s.error or "error").split(":")[0]
                out[key] = out.get(key, 0) + 1
        return out

    def latencies_ms(self) -> list[float]:
        return [s.latency_s * 1000.0 for s in self.ok]

    def issue_lag_ms(self) -> float:
        """Largest delay between a request's scheduled and actual send (the generator's own lag)."""
        return max(((s.sent - s.scheduled) * 1000.0 for s in self.samples), default=0.0)


def arrival_times(rate: float, start: float, seconds: float, rng: random.Random) -> list[float]:
    """A Poisson process of ``rate`` per second on [start, start + seconds) given its count (uniform order
    statistics)."""
    n = int(round(rate * seconds))
    return sorted(start + rng.random() * seconds for _ in range(n))


class LoadGenerator:
    """Sends ``bodies`` (JSON) to ``url``; ``parse(payload, i) -> scores`` reads an answer to body ``i``."""

    def __init__(
        self,
        url: str,
        bodies: list[dict],
        parse: Callable[[object, int], np.ndarray],
        headers: dict[str, str] | None = None,
        timeout_s: float = 60.0,
    ):
        if not bodies:
            raise ValueError("no request bodies to send")
        self.url, self.bodies, self.parse = url, bodies, parse
        self.headers, self.timeout_s = headers or {}, timeout_s
        self._t0 = 0.0

    def _now(self) -> float:
        return time.perf_counter() - self._t0

    async def _send(self, http, i: int, scheduled: float) -> Sample:
        q = i % len(self.bodies)
        sent = self._now()
        try:
            r = await http.post(self.url, json=self.bodies[q])
            status, payload = r.status_code, (r.json() if r.status_code == 200 else None)
        except Exception as exc:  # no answer: recorded, never raised
            return Sample(q, scheduled, sent, self._now(), 0, f"{type(exc).__name__}: {exc}"[:200])
        done = self._now()
        if status != 200:
            return Sample(q, scheduled, sent, done, status)
        try:
            return Sample(q, scheduled, sent, done, status, scores=self.parse(payload, q))
        except Exception as exc:  # a 200 with a wrong body is an error too
            return Sample(q, scheduled, sent, done, status, f"bad answer: {exc}"[:200])

    def _client(self, connections: int):
        import httpx

        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        return httpx.AsyncClient(timeout=self.timeout_s, headers=self.headers, limits=limits)

    async def open_loop(self, target_qps: float, warmup_s: float, duration_s: float, seed: int = 0) -> LoadResult:
        rng = random.Random(seed)
        times = arrival_times(target_qps, 0.0, warmup_s, rng) + arrival_times(target_qps, warmup_s, duration_s, rng)
        result = LoadResult(window_start=warmup_s, duration_s=duration_s)
        async with self._client(connections=1024) as http:
            self._t0 = time.perf_counter()
            tasks = []
            for i, at in enumerate(times):
                delay = at - self._now()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(self._send(http, i, at)))
            samples = await asyncio.gather(*tasks)
        result.samples = [s for s in samples if s.scheduled >= warmup_s]
        return result

    async def closed_loop(self, concurrency: int, warmup_s: float, duration_s: float) -> LoadResult:
        result = LoadResult(window_start=warmup_s, duration_s=duration_s)
        counter = iter(range(10**12))
        end = warmup_s + duration_s

        async def client(http) -> list[Sample]:
            out = []
            while (now := self._now()) < end:
                out.append(await self._send(http, next(counter), now))
            return out

        async with self._client(connections=concurrency) as http:
            self._t0 = time.perf_counter()
            per_client = await asyncio.gather(*(client(http) for _ in range(concurrency)))
        result.samples = [s for samples in per_client for s in samples if s.scheduled >= warmup_s]
        return result


def run_load(
    generator: LoadGenerator,
    *,
    target_qps: float | None,
    concurrency: int | None,
    warmup_s: float,
    duration_s: float,
    seed: int = 0,
) -> LoadResult:
    """One load level, open loop when ``target_qps`` is given, else closed loop with ``concurrency`` clients."""
    if (target_qps is None) == (concurrency is None):
        raise ValueError("give exactly one of target_qps (open loop) and concurrency (closed loop)")
    if target_qps is not None:
        return asyncio.run(generator.open_loop(target_qps, warmup_s, duration_s, seed))
    return asyncio.run(generator.closed_loop(concurrency, warmup_s, duration_s))
