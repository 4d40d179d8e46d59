"""Token-budget batching (``max_batch_tokens``): the shared planner's limits, exact scores, lower peak memory."""

from __future__ import annotations

import numpy as np
import pytest
from builders import (
    QUERIES,
    bert_cross_encoder,
    long_document,
    pairs,
    peak_bytes,
    qwen3_causal_lm,
    qwen3_reranker_shaped,
)

from mlx_cross_encoder import MLXCrossEncoder, Qwen3Reranker
from mlx_cross_encoder import llm_reranker as llm_reranker_module
from mlx_cross_encoder.base import length_sorted_batches, padded_width
from mlx_cross_encoder.llm_batching import per_row_prefix_caches

#: other batch shapes, other BLAS blocking: float32 rows may differ in the last bits (7e-7 seen on LLM logits)
SAME = dict(atol=2e-6, rtol=1e-5)

# -- the planner ----------------------------------------------------------------------------------------------


def widest(batch: list[int], lengths, multiple: int = 1, max_width: int | None = None) -> int:
    return max(padded_width(int(lengths[i]), multiple, max_width) for i in batch)


@pytest.mark.parametrize("sort", [True, False])
def test_planner_never_exceeds_the_budget_except_single_oversized_rows(sort):
    rng = np.random.default_rng(0)
    for _ in range(400):
        n = int(rng.integers(1, 60))
        lengths = rng.integers(1, 300, size=n).tolist()
        batch_size = int(rng.integers(1, 20))
        budget = int(rng.integers(1, 2000))
        multiple = int(rng.choice([1, 8, 32]))
        max_width = int(rng.choice([256, 512])) if multiple > 1 else None
        plan = length_sorted_batches(lengths, batch_size, budget, multiple=multiple, max_width=max_width, sort=sort)
        assert sorted(i for b in plan for i in b) == list(range(n)), "every row exactly once"
        for b in plan:
            assert 1 <= len(b) <= batch_size
            tokens = len(b) * widest(b, lengths, multiple, max_width)
            assert tokens <= budget or len(b) == 1, (lengths, batch_size, budget, b)
        flat = [lengths[i] for b in plan for i in b]
        if sort:
            assert flat == sorted(flat, reverse=True), "longest first"
        else:
            assert [i for b in plan for i in b] == list(range(n)), "input order"
        # greedy: each batch was closed because the next row would break a limit
        for b, nxt in zip(plan, plan[1:]):
            grown = b + [nxt[0]]
            assert len(grown) > batch_size or len(grown) * widest(grown, lengths, multiple, max_width) > budget


def test_planner_without_budget_is_the_row_count_plan():
    lengths = [5, 9, 9, 2, 7, 30, 1]
    assert length_sorted_batches(lengths, 3) == [[5, 1, 2], [4, 0, 3], [6]]
    assert length_sorted_batches(lengths, 3, max_batch_tokens=10**9) == [[5, 1, 2], [4, 0, 3], [6]]
    assert length_sorted_batches(lengths, 10, max_batch_tokens=20) == [[5], [1, 2], [4, 0], [3, 6]]
    with pytest.raises(ValueError, match="max_batch_tokens"):
        length_sorted_batches(lengths, 3, max_batch_tokens=0)


# -- same scores with a budget --------------------------------------------------------------------------------


def mixed_pairs() -> list[tuple[str, str]]:
    """Short and long pairs plus one much longer than the budgets below."""
    return pairs() + [(QUERIES[0], long_document(120, seed=3))]


def test_cross_encoder_scores_with_a_budget_equal_without(tmp_path):
    model = MLXCrossEncoder(bert_cross_encoder(tmp_path / "bert", seed=1, max_position_embeddings=256))
    data = mixed_pairs()
    lengths = model.token_counts(data)
    budget = 96
    assert lengths.max() > budget, "one pair longer than the budget: it must run alone"
    plan = model.plan(lengths, 16, budget)
    assert [len(b) for b in plan if lengths[b[0]] > budget] == [1]
    assert len(plan) > len(model.plan(lengths, 16)), "the budget must split batches here"
    plain = model.predict(data, batch_size=16)
    budgeted = model.predict(data, batch_size=16, max_batch_tokens=budget)
    np.testing.assert_allclose(budgeted, plain, **SAME)
    model.max_batch_tokens = budget  # the constructor's default
    np.testing.assert_allclose(model.predict(data, batch_size=16), plain, **SAME)


@pytest.mark.parametrize("prefix_cache", [True, False])
def test_llm_reranker_scores_with_a_budget_equal_without(tmp_path_factory, prefix_cache):
    model = Qwen3Reranker(qwen3_causal_lm(tmp_path_factory.mktemp("qwen3") / "tiny", seed=0), max_length=512)
    model.prefix_cache = prefix_cache
    data = mixed_pairs()
    seqs = model.tokenize(data)
    lengths = np.array([len(s) for s in seqs])
    budget = 160
    assert lengths.max() > budget
    plan = model._plan(data, seqs, 16, budget)
    assert [len(b) for _, b in plan if lengths[b[0]] > budget] == [1], "the long pair runs alone"
    assert len(plan) > len(model._plan(data, seqs, 16))
    for _, b in plan:
        assert len(b) == 1 or len(b) * lengths[b].max() <= budget
    plain = model.predict(data, batch_size=16)
    budgeted = model.predict(data, batch_size=16, max_batch_tokens=budget)
    np.testing.assert_allclose(budgeted, plain, **SAME)
    logits = model.predict_logits(data, 16, max_batch_tokens=budget)
    np.testing.assert_allclose(logits, model.predict_logits(data, 16), **SAME)


# -- memory ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wide(tmp_path_factory) -> Qwen3Reranker:
    """Qwen3-Reranker-0.6B's layer width (hidden 1024, 8 KV heads x 128), two layers."""
    return Qwen3Reranker(qwen3_reranker_shaped(tmp_path_factory.mktemp("wide") / "m", num_hidden_layers=2))


def one_query(n: int = 24) -> list[tuple[str, str]]:
    return [(QUERIES[0] + " " + long_document(40, seed=7), long_document(20 + 3 * i, seed=i)) for i in range(n)]


def test_small_budget_peaks_lower_than_a_big_one(wide):
    data = one_query()
    small = peak_bytes(lambda: wide.predict(data, batch_size=64, max_batch_tokens=512))
    big = peak_bytes(lambda: wide.predict(data, batch_size=64))
    assert small < 0.6 * big, (small, big)


def test_shared_prefix_peaks_lower_than_a_per_row_kv_cache(wide, monkeypatch):
    """The prefix's KV is broadcast inside each layer (SharedPrefixCache), not held as a per-row copy across all
    layers as a batch-sized mlx-lm KVCache (the former path) holds it. A long shared prefix, short documents."""
    data = [(QUERIES[0] + " " + long_document(300, seed=7), long_document(5 + i, seed=i)) for i in range(32)]
    wide.prefix_cache = True
    shared_scores = wide.predict(data, batch_size=64)
    shared = peak_bytes(lambda: wide.predict(data, batch_size=64))

    # the former llm_batching.expand_cache: a per-row copy of the prefix in every layer's mlx-lm KVCache
    monkeypatch.setattr(llm_reranker_module, "shared_prefix_caches", per_row_prefix_caches(wide._KVCache))
    copied_scores = wide.predict(data, batch_size=64)
    copied = peak_bytes(lambda: wide.predict(data, batch_size=64))
    np.testing.assert_array_equal(copied_scores, shared_scores)
    print(f"peak above weights: shared prefix {shared / 1e6:.1f} MB, per-row KVCache {copied / 1e6:.1f} MB")
    assert shared < 0.8 * copied, (shared, copied)
