"""Hot reload of a changed adapter in the server (``reload_period_s``, TriBridRAG's AdapterWatch reused): after a
promotion (new folder renamed in) requests score as the in-process Qwen3Reranker with the NEW adapter; a broken
adapter never serves (the old keeps serving); without reload the old adapter keeps serving."""

from __future__ import annotations

import os
import shutil

import httpx
import numpy as np
import pytest
from builders import DOCUMENTS, QUERIES, qwen3_causal_lm
from tribrid_helpers import write_mlx_lm_adapter

from mlx_cross_encoder import Qwen3Reranker
from mlx_cross_encoder.serve import ServeSettings
from mlx_cross_encoder.serve.models import load_model
from mlx_cross_encoder.serve.testing import running_server

PAIRS = [(QUERIES[1], d) for d in DOCUMENTS]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return qwen3_causal_lm(tmp_path_factory.mktemp("reload_qwen") / "tiny", seed=0, initializer_range=0.5)


def promote(src, active) -> None:
    """TriBridRAG's promotion: copy aside, rename the active folder away, rename the copy in."""
    tmp = active.parent / (active.name + ".new")
    shutil.copytree(src, tmp)
    old = active.parent / (active.name + ".old")
    os.rename(active, old)
    os.rename(tmp, active)
    shutil.rmtree(old)


def served_scores(url: str) -> np.ndarray:
    body = {"model": "qwen", "query": PAIRS[0][0], "documents": [d for _, d in PAIRS]}
    results = httpx.post(f"{url}/v2/rerank", json=body, timeout=60).json()["results"]
    out = np.empty(len(PAIRS))
    out[[r["index"] for r in results]] = [r["relevance_score"] for r in results]
    return out


@pytest.mark.parametrize("period", [0.0, None])
def test_changed_adapter_is_swapped_in_and_a_broken_one_never_serves(tmp_path, base, period):
    first, second = (
        write_mlx_lm_adapter(base, tmp_path / "a1", seed=3),
        write_mlx_lm_adapter(base, tmp_path / "a2", seed=7),
    )
    active = tmp_path / "active"
    shutil.copytree(first, active)
    want_first = Qwen3Reranker(base, adapter_path=first).predict(PAIRS)
    want_second = Qwen3Reranker(base, adapter_path=second).predict(PAIRS)
    assert np.abs(want_first - want_second).max() > 1e-3  # the two adapters score differently
    loaders = {"qwen": lambda: load_model(base, adapter_path=str(active))}
    settings = ServeSettings(reload_period_s=period)
    with running_server(loaders, settings, adapters={"qwen": str(active)}) as url:
        np.testing.assert_allclose(served_scores(url), want_first, rtol=1e-5, atol=1e-6)
        promote(second, active)
        got = served_scores(url)
        if period is None:  # reload off: the loaded adapter keeps serving
            np.testing.assert_allclose(got, want_first, rtol=1e-5, atol=1e-6)
            return
        np.testing.assert_allclose(got, want_second, rtol=1e-5, atol=1e-6)
        broken = tmp_path / "broken"
        shutil.copytree(first, broken)
        data = (broken / "adapters.safetensors").read_bytes()
        (broken / "adapters.safetensors").write_bytes(data[: len(data) // 2])  # half-written
        promote(broken, active)
        np.testing.assert_allclose(served_scores(url), want_second, rtol=1e-5, atol=1e-6)
        metrics = httpx.get(f"{url}/metrics").text
        assert 'rerank_adapter_reloads_total{model="qwen"} 1.0' in metrics
