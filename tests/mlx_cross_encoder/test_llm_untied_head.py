"""Qwen3Reranker on a checkpoint whose LM head is NOT tied to the input embedding (Qwen3-Reranker-8B's layout:
``tie_word_embeddings: false``, its own ``lm_head.weight``) scores as the official transformers recipe, on every
path (two-row head or full vocabulary, prefix cache on or off), and its two-row head is read from ``lm_head``
(the reranker's start-up check would otherwise switch the fast path off)."""

from __future__ import annotations

import builders
import numpy as np
import pytest

from harness import qwen3_recipe
from mlx_cross_encoder import Qwen3Reranker


@pytest.fixture(scope="module")
def untied(tmp_path_factory):
    return builders.qwen3_causal_lm(tmp_path_factory.mktemp("qwen3") / "untied", seed=1, tie_word_embeddings=False)


@pytest.mark.parametrize("two_row_head", [True, False])
@pytest.mark.parametrize("prefix_cache", [True, False])
def test_untied_lm_head_scores_as_transformers(untied, two_row_head, prefix_cache):
    pairs = builders.pairs(6)
    ref = qwen3_recipe.Qwen3RerankerTorch(untied, max_length=512).predict(pairs)
    model = Qwen3Reranker(untied, max_length=512)
    assert "lm_head" in model.model  # the head is its own weight, not the embedding
    assert model._two_row_ok  # the [no, yes] rows read from lm_head match the full head (else it falls back)
    model.two_row_head, model.prefix_cache = two_row_head, prefix_cache
    np.testing.assert_allclose(model.predict(pairs, batch_size=4), ref, atol=1e-4, rtol=0)
