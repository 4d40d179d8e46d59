"""TriBridRAG's cloud route, unchanged: its cloud mode calls the Cohere SDK, which honours ``CO_API_URL``.

TriBridRAG builds ``cohere.Client(api_key=...)`` and calls ``rerank(model="rerank-v3.5", query=..., documents=...,
top_n=...)``, then reads ``results[i].index`` and ``.relevance_score``. Serving our MLX model under the name
``rerank-v3.5`` (``mlx-cross-encoder serve --model rerank-v3.5=PATH``) and pointing ``CO_API_URL`` at the server is
the whole switch; the scores must be the in-process model's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from builders import DOCUMENTS, QUERIES, bert_cross_encoder

from mlx_cross_encoder import MLXCrossEncoder
from mlx_cross_encoder.serve import ServeSettings
from mlx_cross_encoder.serve.testing import running_server

TRIBRID_CLOUD_MODEL = "rerank-v3.5"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return bert_cross_encoder(tmp_path_factory.mktemp("cloud_bert"), seed=3, initializer_range=0.5)


# TriBridRAG's call, run in a fresh interpreter whose environment carries CO_API_URL (the SDK reads it when
# cohere is imported, as in TriBridRAG's process).
TRIBRID_CALL = """
import json, sys
import cohere
client = cohere.Client(api_key="tribrid-key")
out = []
for query in json.loads(sys.argv[1]):
    response = client.rerank(model="rerank-v3.5", query=query, documents=json.loads(sys.argv[2]), top_n=4)
    out.append([[r.index, r.relevance_score] for r in response.results])
print(json.dumps(out))
"""


def test_tribrid_cloud_call_through_co_api_url_reranks_with_our_model(model_dir):
    reference = MLXCrossEncoder(model_dir)
    queries = QUERIES[:3]
    with running_server({TRIBRID_CLOUD_MODEL: lambda: MLXCrossEncoder(model_dir)}, ServeSettings()) as url:
        env = {**os.environ, "CO_API_URL": url}
        done = subprocess.run(
            [sys.executable, "-c", TRIBRID_CALL, json.dumps(queries), json.dumps(DOCUMENTS)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    for query, got in zip(queries, json.loads(done.stdout), strict=True):
        want = [(r["corpus_id"], r["score"]) for r in reference.rank(query, DOCUMENTS)][:4]
        assert [i for i, _ in got] == [i for i, _ in want]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-6)
