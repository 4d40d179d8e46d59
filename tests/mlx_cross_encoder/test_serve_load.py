"""Concurrency, merged batches, overload (429), timeouts (504) on a server the test starts on 127.0.0.1."""

from __future__ import annotations

import asyncio
import re
import threading

import httpx
import numpy as np
import pytest
from builders import DOCUMENTS, QUERIES, bert_cross_encoder

from mlx_cross_encoder import MLXCrossEncoder
from mlx_cross_encoder.serve import ServeSettings
from mlx_cross_encoder.serve.testing import running_server

CLIENTS, REQUESTS = 32, 20


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return bert_cross_encoder(tmp_path_factory.mktemp("serve_load_bert"), seed=1, initializer_range=0.5)


def rotated(k: int) -> list[str]:
    return DOCUMENTS[k % len(DOCUMENTS) :] + DOCUMENTS[: k % len(DOCUMENTS)]


def metric(text: str, name: str, model: str) -> float:
    return float(re.search(rf'^{name}{{model="{model}"}} (\S+)$', text, re.M).group(1))


def test_32_clients_x_20_requests_all_correct_and_batches_merge(bert_dir):
    reference = MLXCrossEncoder(bert_dir)
    want = {(q, k): reference.predict([(QUERIES[q], d) for d in rotated(k)]) for q in range(5) for k in range(8)}

    async def client(c: int, http: httpx.AsyncClient) -> list:
        out = []
        for r in range(REQUESTS):
            q, k = (c + r) % 5, (c * 7 + r) % 8
            resp = await http.post("/v2/rerank", json={"query": QUERIES[q], "documents": rotated(k)})
            out.append((q, k, resp.status_code, resp.json()))
        return out

    async def main():
        async with httpx.AsyncClient(base_url=url, timeout=120) as http:
            return await asyncio.gather(*(client(c, http) for c in range(CLIENTS)))

    with running_server({"bert": lambda: MLXCrossEncoder(bert_dir)}, ServeSettings(max_queue=64)) as url:
        answers = [a for per_client in asyncio.run(main()) for a in per_client]
        metrics = httpx.get(f"{url}/metrics").text
    assert len(answers) == CLIENTS * REQUESTS
    for q, k, status, body in answers:
        assert status == 200, body
        scores = [r["relevance_score"] for r in body["results"]]
        assert scores == sorted(scores, reverse=True)
        got = np.empty(len(DOCUMENTS))
        got[[r["index"] for r in body["results"]]] = scores
        np.testing.assert_allclose(got, want[q, k], rtol=1e-5, atol=1e-6)
    batches = metric(metrics, "rerank_batches_total", "bert")
    merged = metric(metrics, "rerank_batched_requests_total", "bert")
    assert merged == CLIENTS * REQUESTS
    assert batches < merged, f"{batches} batches for {merged} requests: no request was merged with another"


class Gated:
    """A real model whose ``predict`` waits for the test to open the gate (to hold the queue full on purpose)."""

    def __init__(self, model):
        self.model, self.entered, self.gate = model, threading.Event(), threading.Event()

    def predict(self, pairs, batch_size=32):
        self.entered.set()
        assert self.gate.wait(60), "the test never opened the gate"
        return self.model.predict(pairs, batch_size=batch_size)


def wait_queue_depth(url: str, depth: int) -> None:
    for _ in range(500):
        if metric(httpx.get(f"{url}/metrics").text, "rerank_queue_depth", "bert") == depth:
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"queue never reached depth {depth}")


def test_full_queue_answers_429_with_retry_after_then_recovers(bert_dir):
    gated = Gated(MLXCrossEncoder(bert_dir))
    body = {"query": QUERIES[0], "documents": DOCUMENTS}
    settings = ServeSettings(max_queue=1, max_batch_pairs=len(DOCUMENTS), retry_after_s=2)
    with running_server({"bert": lambda: gated}, settings) as url:
        results: list = []
        first = threading.Thread(target=lambda: results.append(httpx.post(f"{url}/v1/rerank", json=body, timeout=60)))
        first.start()
        assert gated.entered.wait(30)  # request 1 is being scored (blocked), the queue is empty
        second = threading.Thread(target=lambda: results.append(httpx.post(f"{url}/v1/rerank", json=body, timeout=60)))
        second.start()
        wait_queue_depth(url, 1)  # request 2 waits in the queue: it is full
        over = httpx.post(f"{url}/v1/rerank", json=body, timeout=10)
        assert over.status_code == 429
        assert over.headers["retry-after"] == "2"
        assert "queue is full" in over.json()["message"]
        gated.gate.set()
        first.join(60)
        second.join(60)
        assert [r.status_code for r in results] == [200, 200]
        assert httpx.post(f"{url}/v1/rerank", json=body, timeout=30).status_code == 200


def test_request_timeout_answers_504_and_server_keeps_serving(bert_dir):
    gated = Gated(MLXCrossEncoder(bert_dir))
    body = {"query": QUERIES[0], "documents": DOCUMENTS}
    with running_server({"bert": lambda: gated}, ServeSettings(request_timeout_s=0.5)) as url:
        late = httpx.post(f"{url}/v1/rerank", json=body, timeout=30)
        assert late.status_code == 504 and "not scored within" in late.json()["message"]
        gated.gate.set()
        assert httpx.post(f"{url}/v1/rerank", json=body, timeout=30).status_code == 200
