"""harness.metrics: values against hand computation (trec_eval semantics), significance, the TREC DL BM25 figures."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from harness.metrics import METRICS, evaluate, significance, validate_metric

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "trec-dl"

# One query, grades 0..3; the run ranks d4(0) d1(3) d5(unjudged) d3(1) d2(2).
QRELS = {"q1": {"d1": 3, "d2": 2, "d3": 1, "d4": 0}}
RUN = {"q1": {"d4": 0.9, "d1": 0.8, "d5": 0.7, "d3": 0.6, "d2": 0.5}}


def _discount(rank: int) -> float:
    return math.log2(rank + 1)


def test_validate_metric_names():
    assert validate_metric("nDCG@10") == "ndcg@10"
    assert validate_metric("recall@0100") == "recall@100"
    assert validate_metric("map") == "map"
    assert set(METRICS) == {"ndcg@k", "mrr@k", "map@k", "recall@k", "precision@k"}
    for bad, words in [
        ("ndcg@0", "positive integer"),
        ("f1@10", "unknown metric"),
        ("map@100-l2", "relevance_level"),
        ("ndcg@x", "unknown metric"),
        (10, "strings"),
    ]:
        with pytest.raises(ValueError, match=words):
            validate_metric(bad)


def test_ndcg_uses_linear_graded_gains_and_ignores_the_level():
    dcg = 3 / _discount(2) + 1 / _discount(4) + 2 / _discount(5)
    idcg = 3 / _discount(1) + 2 / _discount(2) + 1 / _discount(3)
    dcg3 = 3 / _discount(2)
    idcg3 = idcg
    for level in (1, 2):
        means, per_query = evaluate(QRELS, RUN, ["ndcg@5", "ndcg@3"], relevance_level=level)
        assert means["ndcg@5"] == pytest.approx(dcg / idcg, abs=1e-12)
        assert means["ndcg@3"] == pytest.approx(dcg3 / idcg3, abs=1e-12)
        assert per_query["ndcg@5"] == {"q1": pytest.approx(dcg / idcg, abs=1e-12)}
    exponential = (7 / _discount(2) + 1 / _discount(4) + 3 / _discount(5)) / (7 + 3 / _discount(2) + 1 / _discount(3))
    assert abs(dcg / idcg - exponential) > 1e-3  # the two gain definitions differ here: we test the linear one


def test_binary_measures_follow_the_relevance_level():
    # level 1: relevant d1, d2, d3 at ranks 2, 5, 4; level 2: d1, d2 at ranks 2, 5.
    m1, _ = evaluate(QRELS, RUN, ["mrr@10", "mrr@1", "map@100", "map@4", "recall@4", "precision@4"], relevance_level=1)
    assert m1["mrr@10"] == pytest.approx(1 / 2)
    assert m1["mrr@1"] == 0.0
    assert m1["map@100"] == pytest.approx((1 / 2 + 2 / 4 + 3 / 5) / 3)
    assert m1["map@4"] == pytest.approx((1 / 2 + 2 / 4) / 3)  # divided by all relevant, like map_cut
    assert m1["recall@4"] == pytest.approx(2 / 3)
    assert m1["precision@4"] == pytest.approx(2 / 4)
    m2, _ = evaluate(QRELS, RUN, ["mrr@10", "map@100", "map@4", "recall@4", "precision@4"], relevance_level=2)
    assert m2["mrr@10"] == pytest.approx(1 / 2)
    assert m2["map@100"] == pytest.approx((1 / 2 + 2 / 5) / 2)
    assert m2["map@4"] == pytest.approx((1 / 2) / 2)
    assert m2["recall@4"] == pytest.approx(1 / 2)
    assert m2["precision@4"] == pytest.approx(1 / 4)
    # a grade-1 document first: MRR differs between the levels
    run = {"q1": {"d3": 2.0, "d4": 1.0, "d1": 0.5}}
    assert evaluate(QRELS, run, ["mrr@10"], 1)[0]["mrr@10"] == pytest.approx(1.0)
    assert evaluate(QRELS, run, ["mrr@10"], 2)[0]["mrr@10"] == pytest.approx(1 / 3)
    assert evaluate(QRELS, run, ["mrr@2"], 2)[0]["mrr@2"] == 0.0


def test_precision_divides_by_k_even_for_short_runs():
    means, _ = evaluate({"q": {"a": 1}}, {"q": {"a": 1.0}}, ["precision@10", "precision"], 1)
    assert means["precision@10"] == pytest.approx(0.1)
    assert means["precision"] == pytest.approx(1.0)  # bare form: the whole ranking


def test_query_set_is_the_judged_queries_in_qid_order():
    # insertion orders differ between qrels and run on purpose (ranx pairs dict inputs by position)
    qrels = {"b": {"x": 1}, "a": {"y": 2, "z": 0}, "c": {"w": 1}, "empty": {}}
    run = {"c": {"w": 3.0}, "extra": {"x": 1.0}, "a": {"z": 5.0, "y": 4.0}}
    means, per_query = evaluate(qrels, run, ["mrr@10", "recall@10"], 1)
    assert per_query["mrr@10"] == {"a": 0.5, "b": 0.0, "c": 1.0}  # b: judged but not run -> 0; extra/empty: dropped
    assert per_query["recall@10"] == {"a": 1.0, "b": 0.0, "c": 1.0}
    assert means["mrr@10"] == pytest.approx((0.5 + 0.0 + 1.0) / 3)


def test_ties_break_like_trec_eval_whatever_the_insertion_order():
    qrels = {"q": {"a": 1, "m": 2}}
    # trec_eval: score descending, then docid descending -> z, m, a for the tie at 1.0
    for run in ({"q": {"a": 1.0, "m": 1.0, "z": 1.0}}, {"q": {"z": 1.0, "a": 1.0, "m": 1.0}}):
        means, _ = evaluate(qrels, run, ["mrr@10", "ndcg@3", "map@3"], 1)
        assert means["mrr@10"] == pytest.approx(1 / 2)
        assert means["map@3"] == pytest.approx((1 / 2 + 2 / 3) / 2)
        assert means["ndcg@3"] == pytest.approx((2 / _discount(2) + 1 / _discount(3)) / (2 + 1 / _discount(2)))


def test_evaluate_rejects_bad_input():
    with pytest.raises(ValueError, match="score must be a number"):
        evaluate(QRELS, {"q1": {"d1": float("nan")}}, ["ndcg@10"])
    with pytest.raises(ValueError, match="relevance_level"):
        evaluate(QRELS, RUN, ["ndcg@10"], relevance_level=0)
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate(QRELS, RUN, ["bleu"])
    with pytest.raises(ValueError, match="no judged query"):
        evaluate({"q": {}}, RUN, ["ndcg@10"])


def _exact_p(diffs: list[float]) -> float:
    """Exact two-sided paired randomization p-value over all 2^n sign assignments."""
    observed = abs(sum(diffs))
    hits = sum(
        abs(sum(s * d for s, d in zip(signs, diffs))) >= observed - 1e-12
        for signs in itertools.product((1, -1), repeat=len(diffs))
    )
    return hits / 2 ** len(diffs)


def test_significance_matches_the_exact_permutation_distribution_and_holm():
    qids = [f"q{i}" for i in range(12)]
    base = {q: 0.5 for q in qids}
    strong = {q: 0.6 for q in qids}  # better on every query
    mixed = {q: 0.6 if i < 10 else 0.4 for i, q in enumerate(qids)}  # better on 10 of 12
    result = significance(base, {"strong": strong, "mixed": mixed, "same": dict(base)}, n_permutations=40000, seed=0)
    p_strong, p_mixed = _exact_p([0.1] * 12), _exact_p([0.1] * 10 + [-0.1] * 2)
    assert p_mixed == pytest.approx(158 / 4096)  # the reference itself: (1 + 12 + 66) * 2 sign patterns as extreme
    assert result["strong"]["p_value"] == pytest.approx(p_strong, abs=0.002)
    assert result["mixed"]["p_value"] == pytest.approx(p_mixed, abs=0.006)
    assert result["same"]["p_value"] == 1.0 and not result["same"]["significant"]
    # Holm: sorted p ascending, multiplied by 3, 2, 1, then made monotone
    assert result["strong"]["p_holm"] == pytest.approx(3 * result["strong"]["p_value"])
    p_s, p_m = result["strong"]["p_value"], result["mixed"]["p_value"]
    assert result["mixed"]["p_holm"] == pytest.approx(max(3 * p_s, 2 * p_m))
    assert result["same"]["p_holm"] == 1.0
    assert result["strong"]["significant"]
    assert result["mixed"]["p_value"] < 0.05 and not result["mixed"]["significant"]  # Holm: 2 x p > 0.05
    # alone, the mixed system is significant (no correction for one comparison)
    assert significance(base, {"mixed": mixed}, n_permutations=40000)["mixed"]["significant"]


def test_significance_is_seeded_and_paired():
    rng = np.random.default_rng(1)
    base = {f"q{i}": float(v) for i, v in enumerate(rng.random(40))}
    other = {q: v + float(rng.normal(0.02, 0.2)) for q, v in base.items()}
    first = significance(base, {"x": other}, n_permutations=2000, seed=7)
    assert first == significance(base, {"x": other}, n_permutations=2000, seed=7)
    assert 0 < first["x"]["p_value"] <= 1
    with pytest.raises(ValueError, match="not paired"):
        significance(base, {"x": {q: v for q, v in list(other.items())[:-1]}})


@pytest.mark.parametrize("year, expected", [("19", 0.5058), ("20", 0.4796), ("21", 0.4458)])
def test_trec_dl_bm25_reference_figures(year, expected):
    candidates, qrels_path = SHARED / f"bm25_top100_dl{year}.json", SHARED / f"qrels_dl{year}.txt"
    if not (candidates.is_file() and qrels_path.is_file()):
        pytest.skip(f"shared TREC DL data not found at {SHARED}")
    from harness.sources import read_candidates, read_trec_qrels

    _, ranked, _ = read_candidates(candidates)
    run = {q: dict(hits) for q, hits in ranked.items()}
    means, per_query = evaluate(read_trec_qrels(qrels_path), run, ["ndcg@10"], relevance_level=2)
    assert round(means["ndcg@10"], 4) == expected  # trec_eval ndcg_cut_10, from ../shared/data/README.md
    assert len(per_query["ndcg@10"]) == len(run)
