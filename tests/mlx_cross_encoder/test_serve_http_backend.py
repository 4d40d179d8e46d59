"""The harness ``http`` backend against our server started on 127.0.0.1: every shape scores as the in-process
MLXCrossEncoder, token counts come from the local checkpoint, and the API key is read from the named environment
variable and never recorded."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from builders import DOCUMENTS, QUERIES, bert_cross_encoder, long_document

from harness.backends import BackendError, load_backend
from mlx_cross_encoder import MLXCrossEncoder
from mlx_cross_encoder.serve import ServeSettings
from mlx_cross_encoder.serve.testing import running_server

KEY_ENV = "SERVE_HTTP_BACKEND_TEST_KEY"
MAX_LENGTH = 48


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return bert_cross_encoder(tmp_path_factory.mktemp("http_backend_bert"), seed=1, initializer_range=0.5)


@pytest.fixture(scope="module")
def server(bert_dir):
    load = {"tiny": lambda: MLXCrossEncoder(bert_dir, max_length=MAX_LENGTH)}
    with running_server(load, ServeSettings(api_key_env=KEY_ENV)) as url:
        yield url


def spec(bert_dir, **options):
    return SimpleNamespace(
        name="tiny",
        backend="http",
        model=str(bert_dir),
        dtype=None,
        batch_size=8,
        max_length=MAX_LENGTH,
        device="auto",
        instruction=None,
        options=options,
    )


PAIRS = [(QUERIES[0], d) for d in DOCUMENTS] + [(QUERIES[2], d) for d in DOCUMENTS[:3] + [long_document(80)]]


@pytest.mark.parametrize(("path", "shape"), [("/v2/rerank", "cohere"), ("/v1/rerank", "jina"), ("/rerank", "tei")])
def test_every_shape_scores_as_in_process(server, bert_dir, path, shape):
    backend = load_backend(spec(bert_dir, url=server + path, shape=shape), MAX_LENGTH, bert_dir)
    local = MLXCrossEncoder(bert_dir, max_length=MAX_LENGTH)
    np.testing.assert_allclose(backend.predict(PAIRS, 8), local.predict(PAIRS), rtol=1e-6)
    np.testing.assert_array_equal(backend.token_counts(PAIRS), local.token_counts(PAIRS))
    facts = backend.describe()
    assert (facts["backend"], facts["shape"], facts["url"]) == ("http", shape, server + path)
    assert "remote" in facts["truncation"]
    assert [m["id"] for m in facts["remote_models"]["data"]] == ["tiny"]


def test_api_key_from_named_env_var_is_sent_and_never_recorded(server, bert_dir, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "k3y-value")
    with pytest.raises(BackendError, match="401"):
        load_backend(spec(bert_dir, url=server + "/v2/rerank"), MAX_LENGTH, bert_dir).predict(PAIRS[:2], 8)
    backend = load_backend(spec(bert_dir, url=server + "/v2/rerank", api_key_env=KEY_ENV), MAX_LENGTH, bert_dir)
    assert backend.predict(PAIRS[:2], 8).shape == (2,)
    recorded = json.dumps(backend.describe())
    assert "k3y-value" not in recorded and KEY_ENV in recorded
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(BackendError, match=f"{KEY_ENV}.*not set"):
        load_backend(spec(bert_dir, url=server + "/v2/rerank", api_key_env=KEY_ENV), MAX_LENGTH, bert_dir)


def test_bad_options_and_bad_answers_are_clear_errors(server, bert_dir):
    with pytest.raises(BackendError, match="shape must be one of"):
        load_backend(spec(bert_dir, url=server + "/rerank", shape="openai"), MAX_LENGTH, bert_dir)
    with pytest.raises(BackendError, match="url must be an http"):
        load_backend(spec(bert_dir, url="ftp://x/rerank"), MAX_LENGTH, bert_dir)
    wrong_shape = load_backend(spec(bert_dir, url=server + "/rerank", shape="cohere"), MAX_LENGTH, bert_dir)
    with pytest.raises(BackendError, match="422"):  # a Cohere body sent to the TEI route
        wrong_shape.predict(PAIRS[:2], 8)
