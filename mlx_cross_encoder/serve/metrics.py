"""Prometheus metrics of one app (own registry, so several apps in one process do not clash)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("rerank_requests", "HTTP requests by route and status", ["route", "status"], registry=r)
        self.latency = Histogram("rerank_request_latency_seconds", "request latency", ["route"], registry=r)
        self.batches = Counter("rerank_batches", "merged batches run", ["model"], registry=r)
        self.batched_requests = Counter(
            "rerank_batched_requests", "requests scored in merged batches", ["model"], registry=r
        )
        self.batch_requests = Histogram(
            "rerank_batch_requests", "requests per merged batch", ["model"], buckets=SIZE_BUCKETS, registry=r
        )
        self.batch_pairs = Histogram(
            "rerank_batch_pairs", "pairs per merged batch", ["model"], buckets=SIZE_BUCKETS, registry=r
        )
        self.reloads = Counter("rerank_adapter_reloads", "changed adapters swapped in", ["model"], registry=r)
        self.queue_depth = Gauge("rerank_queue_depth", "requests waiting in the model's queue", ["model"], registry=r)

    def observe_batch(self, model: str, requests: int, pairs: int) -> None:
        self.batches.labels(model).inc()
        self.batched_requests.labels(model).inc(requests)
        self.batch_requests.labels(model).observe(requests)
        self.batch_pairs.labels(model).observe(pairs)

    def render(self) -> bytes:
        return generate_latest(self.registry)
