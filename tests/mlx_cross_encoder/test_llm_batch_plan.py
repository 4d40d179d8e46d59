"""The LLM reranker's batch plan inside one ``predict`` call: pairs of many queries pooled under one prefix,
each prefix computed once per call, padding-aware length-sorted batches, scores back in input order."""

from __future__ import annotations

import random

import numpy as np
import pytest
from builders import DOCUMENTS, QUERIES, qwen3_causal_lm

from harness import qwen3_recipe
from mlx_cross_encoder import Qwen3Reranker
from mlx_cross_encoder.base import length_sorted_batches
from mlx_cross_encoder.llm_batching import padding_aware_batches

SAME = 1e-5  # MLX vs MLX, other batches: same math, other summation order
TOL = 1e-4  # MLX vs the transformers recipe, float32


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return qwen3_causal_lm(tmp_path_factory.mktemp("qwen3") / "tiny", seed=0)


@pytest.fixture(scope="module")
def reranker(tiny):
    return Qwen3Reranker(tiny, max_length=512)


def mixed_call() -> list[tuple[str, str]]:
    """Five queries' pairs shuffled together (as one offline-scenario call), documents of varying length."""
    data = [(q, d) for q in QUERIES for d in DOCUMENTS[:6]]
    random.Random(3).shuffle(data)
    return data


def counting_prefixes(model: Qwen3Reranker) -> list:
    """Record every prefix the model computes (its token ids), through the instance."""
    seen: list = []
    compute = type(model)._prefix_kv

    def record(key):
        seen.append(key)
        return compute(model, key)

    model._prefix_kv = record
    return seen


def test_mixed_query_call_pools_under_one_prefix_and_scores_as_pair_by_pair(tiny, reranker):
    data = mixed_call()
    seqs = reranker.tokenize(data)
    plan = reranker._plan(data, seqs, 64)
    assert len({shared for shared, _ in plan}) == 1, "30 pairs of 5 queries (6 each): one pooled prefix"
    assert sorted(i for _, idx in plan for i in idx) == list(range(len(data)))
    assert len(plan) < len(QUERIES), "fewer batches than one per query"
    shared = plan[0][0]
    assert len(reranker.prefix_ids) < shared < min(len(s) for s in seqs)
    assert len({tuple(s[:shared]) for s in seqs}) == 1, "the pooled prefix is common to every pair"

    model = Qwen3Reranker(tiny, max_length=512)
    prefixes = counting_prefixes(model)
    pooled = model.predict(data, batch_size=64)
    assert len(prefixes) == 1
    one_by_one = np.array([model.predict(p) for p in data])  # no shared prefix, no padding: the plain path
    np.testing.assert_allclose(pooled, one_by_one, atol=SAME, rtol=0)
    model.prefix_cache = model.length_batching = False
    np.testing.assert_allclose(pooled, model.predict(data, batch_size=64), atol=SAME, rtol=0)
    expected = qwen3_recipe.Qwen3RerankerTorch(tiny, max_length=512).predict(data, batch_size=8)
    np.testing.assert_allclose(pooled, expected, atol=TOL, rtol=0)


def test_each_query_prefix_is_computed_once_per_call_and_scores_come_back_in_input_order(tiny):
    data = [(q, d) for q in QUERIES for d in DOCUMENTS] * 5  # 40 documents a query (5 copies of each)
    random.Random(5).shuffle(data)
    model = Qwen3Reranker(tiny, max_length=512, batch_overhead_tokens=0)  # split wherever padding is saved
    seqs = model.tokenize(data)
    plan = model._plan(data, seqs, 32)
    assert all(len(b) <= 32 for _, b in plan)
    assert len({(shared, tuple(seqs[b[0]][:shared])) for shared, b in plan}) == len(QUERIES), "own prefixes"
    assert len(plan) > 2 * len(QUERIES), "each query's 40 documents in several batches"
    for shared, b in plan:
        assert len({tuple(seqs[i][:shared]) for i in b}) == 1, "a batch's rows share its prefix"
    prefixes = counting_prefixes(model)
    got = model.predict(data, batch_size=32)
    assert len(prefixes) == len(set(prefixes)) == len(QUERIES), "each query's prefix computed once"
    plain = {p: model.predict(p) for p in set(data)}  # one pair at a time: the plain path
    np.testing.assert_allclose(got, [plain[p] for p in data], atol=SAME, rtol=0)


def partitions(items: list[int]):
    """Every partition of ``items`` into non-empty sets."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for part in partitions(rest):
        for k in range(len(part)):
            yield [*part[:k], [first, *part[k]], *part[k + 1 :]]
        yield [[first], *part]


def computed_tokens(lengths, plan, shared, overhead) -> int:
    return sum(len(b) * (max(lengths[i] for i in b) - shared) + overhead for b in plan)


@pytest.mark.parametrize("seed", range(6))
def test_padding_aware_batches_are_the_cheapest_partition_within_the_limits(seed):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(20, 200, size=7).tolist()
    batch_size, budget, shared, overhead = 3, int(rng.integers(200, 500)), 10, int(rng.integers(0, 120))

    def allowed(b):
        return len(b) <= batch_size and (len(b) == 1 or len(b) * max(lengths[i] for i in b) <= budget)

    plan = padding_aware_batches(lengths, batch_size, budget, shared=shared, overhead_tokens=overhead)
    assert sorted(i for b in plan for i in b) == list(range(len(lengths)))
    assert all(allowed(b) for b in plan)
    best = min(
        computed_tokens(lengths, p, shared, overhead)
        for p in partitions(list(range(len(lengths))))
        if all(allowed(b) for b in p)
    )
    assert computed_tokens(lengths, plan, shared, overhead) == best


def test_padding_aware_batches_cut_the_padding_of_one_query_with_spread_lengths():
    lengths = np.random.default_rng(0).integers(40, 300, size=100).tolist()  # one query's 100 documents
    one_batch = length_sorted_batches(lengths, 128, 32768)
    assert len(one_batch) == 1
    plan = padding_aware_batches(lengths, 128, 32768, shared=30, overhead_tokens=2048)
    real = sum(n - 30 for n in lengths)
    before = computed_tokens(lengths, one_batch, 30, 0)
    after = computed_tokens(lengths, plan, 30, 0)
    assert after < before and (after - real) < 0.5 * (before - real)
    assert computed_tokens(lengths, plan, 30, 2048) <= computed_tokens(lengths, one_batch, 30, 2048)
