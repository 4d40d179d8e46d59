"""Real clients against a server the test starts on 127.0.0.1: the cohere SDK (v1, v2), raw HTTP for Jina and TEI.

Rankings must equal ``MLXCrossEncoder.rank`` / ``Qwen3Reranker.predict`` on the same inputs, in-process.
"""

from __future__ import annotations

import cohere
import httpx
import numpy as np
import pytest
from builders import DOCUMENTS, QUERIES, bert_cross_encoder, qwen3_causal_lm

from mlx_cross_encoder import MLXCrossEncoder, Qwen3Reranker
from mlx_cross_encoder.serve import ServeSettings
from mlx_cross_encoder.serve.testing import running_server

SPREAD = {"initializer_range": 0.5}


@pytest.fixture(scope="module")
def loaders(tmp_path_factory):
    bert = bert_cross_encoder(tmp_path_factory.mktemp("serve_bert"), seed=1, **SPREAD)
    qwen = qwen3_causal_lm(tmp_path_factory.mktemp("serve_qwen") / "tiny", seed=0)
    return {"bert": lambda: MLXCrossEncoder(bert), "qwen": lambda: Qwen3Reranker(qwen, max_length=512)}


@pytest.fixture(scope="module")
def models(loaders):
    """In-process references: separate instances, built on the test thread."""
    return {name: load() for name, load in loaders.items()}


@pytest.fixture(scope="module")
def server(loaders):
    with running_server(loaders, ServeSettings()) as url:
        yield url


def expected(model, query, docs):
    return [(r["corpus_id"], r["score"]) for r in model.rank(query, docs)]


@pytest.mark.parametrize("name", ["bert", "qwen"])
def test_cohere_v2_sdk_ranking_equals_in_process_rank(server, models, name):
    client = cohere.ClientV2(base_url=server, api_key="unused")
    for query in QUERIES[:3]:
        resp = client.rerank(model=name, query=query, documents=DOCUMENTS, top_n=5)
        want = expected(models[name], query, DOCUMENTS)[:5]
        assert [r.index for r in resp.results] == [i for i, _ in want]
        np.testing.assert_allclose([r.relevance_score for r in resp.results], [s for _, s in want], rtol=1e-6)


def test_cohere_v1_sdk_returns_documents(server, models):
    client = cohere.Client(base_url=server, api_key="unused")
    resp = client.rerank(model="bert", query=QUERIES[0], documents=DOCUMENTS, return_documents=True)
    want = expected(models["bert"], QUERIES[0], DOCUMENTS)
    assert [r.index for r in resp.results] == [i for i, _ in want]
    assert [r.document.text for r in resp.results] == [DOCUMENTS[i] for i, _ in want]
    np.testing.assert_allclose([r.relevance_score for r in resp.results], [s for _, s in want], rtol=1e-6)


def test_default_model_is_the_first(server, models):
    body = {"query": QUERIES[1], "documents": DOCUMENTS}
    got = httpx.post(f"{server}/v1/rerank", json=body).json()
    assert [r["index"] for r in got["results"]] == [i for i, _ in expected(models["bert"], QUERIES[1], DOCUMENTS)]


def test_jina_shape_with_object_documents(server, models):
    body = {
        "model": "qwen",
        "query": QUERIES[2],
        "documents": [{"text": d} for d in DOCUMENTS],
        "top_n": 3,
        "return_documents": True,
    }
    got = httpx.post(f"{server}/v1/rerank", json=body).json()
    scores = np.asarray(models["qwen"].predict([(QUERIES[2], d) for d in DOCUMENTS]))
    order = list(np.argsort(-scores, kind="stable")[:3])
    assert [r["index"] for r in got["results"]] == order
    assert [r["document"]["text"] for r in got["results"]] == [DOCUMENTS[i] for i in order]
    np.testing.assert_allclose([r["relevance_score"] for r in got["results"]], scores[order], rtol=1e-6)


def test_tei_shape(server, models):
    got = httpx.post(f"{server}/rerank", json={"query": QUERIES[3], "texts": DOCUMENTS, "return_text": True}).json()
    want = expected(models["bert"], QUERIES[3], DOCUMENTS)
    assert [r["index"] for r in got] == [i for i, _ in want]
    assert [r["text"] for r in got] == [DOCUMENTS[i] for i, _ in want]
    np.testing.assert_allclose([r["score"] for r in got], [s for _, s in want], rtol=1e-6)


def test_health_and_models(server):
    assert httpx.get(f"{server}/health").json() == {"status": "ok", "models": ["bert", "qwen"]}
    cards = httpx.get(f"{server}/v1/models").json()["data"]
    assert [(c["id"], c["kind"]) for c in cards] == [("bert", "MLXCrossEncoder"), ("qwen", "Qwen3Reranker")]


def test_unknown_model_is_404(server):
    r = httpx.post(f"{server}/v2/rerank", json={"model": "nope", "query": "q", "documents": ["d"]})
    assert r.status_code == 404 and "nope" in r.json()["message"]
