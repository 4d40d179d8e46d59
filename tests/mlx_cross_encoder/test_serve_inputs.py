"""Bad requests get clear 4xx JSON errors and never a 5xx; the API key; JSON fuzzing (hypothesis) of every route."""

from __future__ import annotations

import math

import cohere
import httpx
import pytest
from builders import DOCUMENTS, bert_cross_encoder
from cohere.errors.unauthorized_error import UnauthorizedError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlx_cross_encoder import MLXCrossEncoder
from mlx_cross_encoder.serve import ServeSettings
from mlx_cross_encoder.serve.testing import running_server

KEY_ENV = "MLX_RERANK_TEST_API_KEY"
LIMITS = ServeSettings(max_documents=8, max_request_bytes=4096, api_key_env=KEY_ENV)
ROUTES = ["/v1/rerank", "/v2/rerank", "/rerank"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    path = bert_cross_encoder(tmp_path_factory.mktemp("serve_inputs_bert"), seed=1)
    with running_server({"bert": lambda: MLXCrossEncoder(path)}, LIMITS) as url:
        yield url


def post(url: str, route: str, body, **kw) -> httpx.Response:
    return httpx.post(f"{url}{route}", json=body, timeout=30, **kw)


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"query": "   ", "documents": ["a"]}, 400, "query is empty"),
        ({"query": "q", "documents": []}, 400, "documents is empty"),
        ({"query": "q", "documents": ["a", ""]}, 400, "documents [1] are empty"),
        ({"query": "q", "documents": ["d"] * 9}, 400, "limit is 8"),
        ({"query": "q", "documents": ["a", 3]}, 422, "invalid RerankRequest"),
        ({"query": "q", "documents": [{"title": "no text"}]}, 422, "invalid RerankRequest"),
        ({"query": 5, "documents": ["a"]}, 422, "invalid RerankRequest"),
        ({"query": "q", "documents": "not a list"}, 422, "invalid RerankRequest"),
        ({"query": "q", "documents": ["a"], "top_n": 0}, 422, "invalid RerankRequest"),
        ({"query": "q", "documents": ["a"], "top_n": "3"}, 422, "invalid RerankRequest"),
        ({"documents": ["a"]}, 422, "invalid RerankRequest"),
        ({"query": "q", "documents": ["x" * 5000]}, 413, "the limit is 4096"),
    ],
)
def test_bad_cohere_requests_get_clear_4xx(server, body, status, words):
    r = post(server, "/v2/rerank", body)
    assert r.status_code == status, r.text
    assert words in r.json()["message"]


def test_bad_tei_requests_get_clear_4xx(server):
    assert post(server, "/rerank", {"query": "q", "texts": [None]}).status_code == 422
    assert "empty" in post(server, "/rerank", {"query": "q", "texts": [" "]}).json()["message"]
    r = httpx.post(f"{server}/rerank", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["errors"][0]["type"] == "json_invalid"


def test_api_key_from_environment(server, monkeypatch):
    body = {"query": "q", "documents": DOCUMENTS[:2]}
    assert post(server, "/v2/rerank", body).status_code == 200  # env var unset: no key required
    monkeypatch.setenv(KEY_ENV, "s3cret")
    for route in ROUTES:
        no_key = post(server, route, body if route != "/rerank" else {"query": "q", "texts": ["a"]})
        assert no_key.status_code == 401 and "API key" in no_key.json()["message"]
    assert post(server, "/v1/rerank", body, headers={"Authorization": "Bearer wrong"}).status_code == 401
    with pytest.raises(UnauthorizedError):
        cohere.ClientV2(base_url=server, api_key="wrong").rerank(model="bert", query="q", documents=["a"])
    resp = cohere.ClientV2(base_url=server, api_key="s3cret").rerank(model="bert", query="q", documents=["a", "b"])
    assert sorted(r.index for r in resp.results) == [0, 1]
    assert httpx.get(f"{server}/health").status_code == 200  # health needs no key


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=20,
)
field_values = st.one_of(
    json_values,
    st.text(max_size=30),
    st.lists(st.text(max_size=30), max_size=10),
    st.lists(st.fixed_dictionaries({"text": st.text(max_size=30)}), max_size=5),
    st.integers(min_value=-3, max_value=20),
)
bodies = st.one_of(
    json_values,
    st.dictionaries(
        st.sampled_from(
            [
                "model",
                "query",
                "documents",
                "texts",
                "top_n",
                "return_documents",
                "max_tokens_per_doc",
                "raw_scores",
                "return_text",
                "truncate",
            ]
        ),
        field_values,
        max_size=7,
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(ROUTES), body=bodies)
def test_fuzzed_json_bodies_never_5xx(server, route, body):
    r = post(server, route, body)
    assert r.status_code < 500, (r.status_code, r.text)
    answer = r.json()
    if r.status_code == 200:
        rows = answer if route == "/rerank" else answer["results"]
        scores = [row["score" if route == "/rerank" else "relevance_score"] for row in rows]
        assert all(math.isfinite(s) for s in scores) and scores == sorted(scores, reverse=True)
    else:
        assert isinstance(answer["message"], str) and answer["message"]


def test_server_still_up_after_fuzzing(server):
    assert httpx.get(f"{server}/health").json()["status"] == "ok"
