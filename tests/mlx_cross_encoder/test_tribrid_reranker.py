"""TriBridMLXReranker: the seed's rerank() contract against sentence-transformers, from_env, hot reload."""

from __future__ import annotations

import os

import numpy as np
import pytest
from builders import DOCUMENTS, QUERIES, bert_cross_encoder, qwen3_causal_lm
from tribrid_helpers import write_mlx_lm_adapter

from mlx_cross_encoder import Qwen3Reranker, TriBridMLXReranker
from mlx_cross_encoder.tribrid.settings import RerankerSettings, settings_from_env


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return bert_cross_encoder(tmp_path_factory.mktemp("bert") / "ce", seed=1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return qwen3_causal_lm(tmp_path_factory.mktemp("qwen3") / "tiny", seed=0)


def test_rerank_sorts_by_sentence_transformers_scores(bert):
    from sentence_transformers import CrossEncoder

    docs = DOCUMENTS[:6]
    reranker = TriBridMLXReranker(reranker_type="cross_encoder", model_name=str(bert), max_length=128, batch_size=4)
    got = reranker.rerank(QUERIES[0], docs)
    ref = CrossEncoder(str(bert), device="cpu", max_length=128).predict([(QUERIES[0], d) for d in docs])
    order = sorted(range(len(docs)), key=lambda i: -ref[i])
    assert [r["index"] for r in got] == order
    assert [r["document"] for r in got] == [docs[i] for i in order]
    np.testing.assert_allclose([r["score"] for r in got], ref[order], atol=1e-5)
    assert reranker.rerank(QUERIES[0], docs, top_n=2) == got[:2]
    assert reranker.rerank(QUERIES[0], []) == []
    with pytest.raises(ValueError, match="top_n must be a positive integer"):
        reranker.rerank(QUERIES[0], docs, top_n=0)
    with pytest.raises(TypeError, match="documents must be a list of strings"):
        reranker.rerank(QUERIES[0], "one string")


def test_from_env_valid(bert, tiny, tmp_path):
    env = {
        "RERANKER_MODE": "mlx",
        "MLX_RERANKER_TYPE": "cross_encoder",
        "MLX_RERANKER_MODEL": str(bert),
        "MLX_RERANKER_MAX_LENGTH": "128",
        "MLX_RERANKER_BATCH_SIZE": "8",
        "MLX_RERANKER_TOP_N": "2",
    }
    reranker = TriBridMLXReranker.from_env(env)
    assert (
        reranker.settings.model_dump()
        == RerankerSettings(
            reranker_type="cross_encoder", model_name=str(bert), max_length=128, batch_size=8, top_n=2
        ).model_dump()
    )
    assert len(reranker.rerank(QUERIES[0], DOCUMENTS[:5])) == 2
    adapter = write_mlx_lm_adapter(tiny, tmp_path / "adapter")
    env = {
        "RERANKER_MODE": "mlx",
        "MLX_RERANKER_TYPE": "qwen3",
        "MLX_RERANKER_MODEL": str(tiny),
        "MLX_RERANKER_ADAPTER": str(adapter),
        "MLX_RERANKER_MAX_LENGTH": "256",
    }
    qwen = TriBridMLXReranker.from_env(env)
    ref = Qwen3Reranker(tiny, max_length=256, adapter_path=adapter).predict([(QUERIES[1], d) for d in DOCUMENTS[:3]])
    np.testing.assert_allclose(qwen.scores(QUERIES[1], DOCUMENTS[:3]), ref, atol=1e-6)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "RERANKER_MODE must be 'mlx'"),
        ({"RERANKER_MODE": "learning"}, "RERANKER_MODE must be 'mlx'"),
        ({"RERANKER_MODE": "mlx"}, "MLX_RERANKER_MODEL is not set"),
        ({"MLX_RERANKER_TYPE": "colbert"}, "MLX_RERANKER_TYPE='colbert'"),
        ({"MLX_RERANKER_MAX_LENGTH": "big"}, "MLX_RERANKER_MAX_LENGTH='big' is not an integer"),
        ({"MLX_RERANKER_MAX_LENGTH": "0"}, "MLX_RERANKER_MAX_LENGTH=0"),
        ({"MLX_RERANKER_BATCH_SIZE": "-1"}, "MLX_RERANKER_BATCH_SIZE=-1"),
        ({"MLX_RERANKER_TOP_N": "0"}, "MLX_RERANKER_TOP_N=0"),
        ({"MLX_RERANKER_RELOAD_ON_CHANGE": "yes"}, "MLX_RERANKER_RELOAD_ON_CHANGE='yes' must be 0 or 1"),
    ],
)
def test_from_env_invalid(env, message):
    base = {"RERANKER_MODE": "mlx", "MLX_RERANKER_MODEL": "some/model"}
    full = env if ("RERANKER_MODE" in env or not env) else {**base, **env}
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        settings_from_env(full)


def test_hot_reload_on_adapter_change(tiny, tmp_path):
    adapter = write_mlx_lm_adapter(tiny, tmp_path / "active", seed=3)
    reranker = TriBridMLXReranker(model_name=str(tiny), adapter_path=adapter, max_length=256)
    docs = DOCUMENTS[:4]
    before = reranker.scores(QUERIES[0], docs)
    assert reranker.reloads == 0 and not reranker.maybe_reload()
    weights = adapter / "adapters.safetensors"
    stat = weights.stat()
    write_mlx_lm_adapter(tiny, tmp_path / "next", seed=4)
    os.replace(tmp_path / "next" / "adapters.safetensors", weights)  # same size: only the mtime tells
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    after = reranker.scores(QUERIES[0], docs)
    assert reranker.reloads == 1
    fresh = Qwen3Reranker(tiny, max_length=256, adapter_path=adapter).predict([(QUERIES[0], d) for d in docs])
    np.testing.assert_allclose(after, fresh, atol=1e-6)
    assert np.abs(np.array(after) - np.array(before)).max() > 1e-3
    frozen = TriBridMLXReranker(model_name=str(tiny), adapter_path=adapter, max_length=256, reload_on_change=False)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000))
    frozen.scores(QUERIES[0], docs)
    assert frozen.reloads == 0
