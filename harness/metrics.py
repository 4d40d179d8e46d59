"""Retrieval metrics (computed with ranx, trec_eval semantics) and paired significance tests.

Semantics, chosen to match ``trec_eval -m ndcg_cut.10 -m recip_rank -m map_cut.100 -m recall.100 -m P.10``:

* **nDCG@k** uses the graded judgments as linear gains (Järvelin & Kekäläinen; ranx ``ndcg``, which is
  trec_eval's ``ndcg_cut``), not the exponential ``2^g - 1`` gains of ranx ``ndcg_burges``. Every grade >= 1 is
  a gain, whatever the relevance level.
* **Binary measures** (mrr, map, recall, precision) count a document as relevant when its grade >=
  ``relevance_level`` (trec_eval ``-l``; TREC DL passages use 2). This is passed to ranx as the metric suffix
  ``-l<level>`` (e.g. ``map@100-l2``), ranx's own way to set the level: qrels are never rewritten here.
* ``map@k`` divides by all relevant documents of the query (trec_eval ``map_cut``); ``precision@k`` divides by
  k even when fewer than k documents were returned (trec_eval ``P_k``). ``mrr@k`` is the MS MARCO MRR@k
  (reciprocal rank of the first relevant document within the top k, 0 if none); bare ``mrr`` is trec_eval's
  ``recip_rank``.
* **Query set**: the judged queries (qids of ``qrels`` with at least one judgment). Queries of the run that
  have no judgments are dropped; judged queries missing from the run (or with an empty ranking) score 0 for
  every metric and count in the mean, like ``trec_eval -c``, so a system cannot gain by returning nothing.
* **Ties**: ranx sorts a run given as ``Run``/dict with an unstable argsort, so tied documents come out in an
  arbitrary order. Here each ranking is first put in trec_eval's order (score descending, then docid descending
  as a string) and its scores replaced by distinct decreasing ranks; ranx's metric kernels then get it as
  numba typed lists in exactly that order, so every value is deterministic and equal to trec_eval's.
* **Significance**: see ``significance``; a numpy paired randomization test (ranx's is not reproducible).
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np

# name pattern -> description (for `harness list`); k is a positive integer, the bare form ranks the whole list.
METRICS: dict[str, str] = {
    "ndcg@k": "nDCG at k with linear graded gains (trec_eval ndcg_cut.k); `ndcg` = whole ranking",
    "mrr@k": "reciprocal rank of the first relevant document within k (MS MARCO MRR@k); `mrr` = trec_eval recip_rank",
    "map@k": "average precision over the top k, divided by all relevant documents (trec_eval map_cut.k); `map`",
    "recall@k": "relevant documents in the top k / all relevant documents (trec_eval recall.k); `recall`",
    "precision@k": "relevant documents in the top k / k (trec_eval P.k); `precision`",
}
_BASES = tuple(m.split("@")[0] for m in METRICS)
_GRADED = {"ndcg"}  # every other base is binary and takes the relevance level
_NAME = re.compile(r"^([a-z]+)(?:@(\d+))?$")


def validate_metric(name: str) -> str:
    """Return the canonical (lower-case) metric name, or raise ValueError saying what is wrong."""
    if not isinstance(name, str):
        raise ValueError(f"metric names are strings like 'ndcg@10', got {name!r}")
    canon = name.strip().lower()
    if re.search(r"-l\d+$", canon):
        raise ValueError(
            f"unknown metric {name!r}: the relevance level is set per dataset (relevance_level), not in the metric name"
        )
    m = _NAME.match(canon)
    if not m or m.group(1) not in _BASES:
        raise ValueError(
            f"unknown metric {name!r}; supported: {', '.join(METRICS)} (k a positive integer) or the bare names "
            f"{', '.join(_BASES)}"
        )
    if m.group(2) is not None and int(m.group(2)) < 1:
        raise ValueError(f"unknown metric {name!r}: the cutoff k must be a positive integer")
    return canon if m.group(2) is None else f"{m.group(1)}@{int(m.group(2))}"


def _ranx_name(metric: str, relevance_level: int) -> str:
    base = metric.split("@")[0]
    return metric if base in _GRADED else f"{metric}-l{relevance_level}"


def trec_order(scores: dict[str, float]) -> list[str]:
    """Docids ranked as trec_eval ranks them: score descending, ties by docid descending."""
    by_docid = sorted(scores, reverse=True)
    return sorted(by_docid, key=lambda d: scores[d], reverse=True)  # stable: keeps docid-desc order within ties


def evaluate(
    qrels: dict[str, dict[str, int]],
    run: dict[str, dict[str, float]],
    metrics: list[str],
    relevance_level: int = 1,
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """(mean per metric, metric -> qid -> value) over the judged queries; see the module docstring."""
    import numba
    from numba.typed import List as TypedList
    from ranx import evaluate as ranx_evaluate

    if isinstance(relevance_level, bool) or not isinstance(relevance_level, int) or relevance_level < 1:
        raise ValueError(f"relevance_level must be a positive integer, got {relevance_level!r}")
    names = list(dict.fromkeys(validate_metric(m) for m in metrics))
    if not names:
        raise ValueError("no metrics to compute")
    judged = sorted(q for q, docs in qrels.items() if docs)
    if not judged:
        raise ValueError("qrels hold no judged query")

    ranked: dict[str, dict[str, float]] = {}
    for qid in judged:
        docs = run.get(qid) or {}
        for docid, score in docs.items():
            if not isinstance(score, (int, float, np.number)) or math.isnan(float(score)):
                raise ValueError(f"run: query {qid!r}, document {docid!r}: score must be a number, got {score!r}")
        if docs:
            order = trec_order({str(d): float(s) for d, s in docs.items()})
            ranked[qid] = {d: float(len(order) - i) for i, d in enumerate(order)}  # distinct, decreasing

    per_query: dict[str, dict[str, float]] = {m: {q: 0.0 for q in judged} for m in names}
    if ranked:
        qids = sorted(ranked)
        # ranx's public input forms (Qrels/Run or dicts) hash docids and compile numba code specialised on the
        # docids' string length (seconds per new length); its metric kernels also take numba typed lists of
        # [doc, score] rows, which is what they get here: docids as exact integer ids, qrels rows by grade
        # descending (ranx reads the ideal ranking from their order), run rows already in trec_eval order.
        ids: dict[str, int] = {}
        qrels_rows, run_rows = TypedList(), TypedList()
        for q in qids:
            judged_docs = sorted(qrels[q].items(), key=lambda kv: (-int(kv[1]), str(kv[0])))
            qrels_rows.append(
                np.array([[ids.setdefault(str(d), len(ids)), int(g)] for d, g in judged_docs], dtype=np.float64)
            )
            run_rows.append(
                np.array([[ids.setdefault(d, len(ids)), s] for d, s in ranked[q].items()], dtype=np.float64)
            )
        ranx_names = [_ranx_name(m, relevance_level) for m in names]
        # ranx returns a bare array for one metric, looked up under a mangled key ("mrr" for "mrr@10-l2"):
        # asking for it twice always gives the dict
        asked = ranx_names if len(ranx_names) > 1 else ranx_names * 2
        threads = numba.get_num_threads()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", numba.NumbaTypeSafetyWarning)  # ranx's uint64 -> int64 casts
                out = ranx_evaluate(qrels_rows, run_rows, asked, return_mean=False)
        finally:
            numba.set_num_threads(threads)  # ranx drops numba to 1 thread for < 10 queries and leaves it there
        for m, rm in zip(names, ranx_names):
            for qid, value in zip(qids, out[rm]):
                per_query[m][qid] = float(value)
    means = {m: float(np.mean([per_query[m][q] for q in judged])) for m in names}
    return means, per_query


def _holm(p_values: dict[str, float]) -> dict[str, float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    m = len(p_values)
    adjusted, running = {}, 0.0
    for i, name in enumerate(sorted(p_values, key=lambda n: (p_values[n], n))):
        running = max(running, min(1.0, (m - i) * p_values[name]))
        adjusted[name] = running
    return adjusted


def randomization_p_value(a: np.ndarray, b: np.ndarray, n_permutations: int = 10000, seed: int = 0) -> float:
    """Two-sided paired randomization (Fisher) test on the difference of means of paired per-query values.

    Each permutation swaps the two systems' values of every query with probability 1/2 (flips the sign of the
    per-query difference), exactly like ranx's ``fisher_randomization_test``; the p-value is
    (1 + #{|permuted mean diff| >= |observed|}) / (1 + n_permutations) (Phipson & Smyth, never 0).
    """
    d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    n = d.shape[0]
    observed = abs(d.sum()) / n
    tol = 1e-12 * max(1.0, float(np.abs(d).sum()) / n)
    rng = np.random.default_rng(seed)
    count, done, chunk = 0, 0, max(1, min(n_permutations, 2_000_000 // max(n, 1)))
    while done < n_permutations:
        size = min(chunk, n_permutations - done)
        signs = rng.integers(0, 2, size=(size, n), dtype=np.int8) * 2 - 1
        count += int(np.count_nonzero(np.abs(signs @ d) / n >= observed - tol))
        done += size
    return (count + 1) / (n_permutations + 1)


def significance(
    baseline: dict[str, float],
    systems: dict[str, dict[str, float]],
    n_permutations: int = 10000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, dict]:
    """Each system vs the baseline over the same queries: {"p_value", "p_holm", "significant"} per system.

    Paired two-sided randomization test (see ``randomization_p_value``) on per-query values, Holm-Bonferroni
    correction across the systems, significant when p_holm <= alpha. ranx's numba ``fisher_randomization_test``
    is not used: its parallel loop draws from unseeded per-thread generators, so the same call gives different
    p-values run to run; this numpy version (same statistic) is reproducible for a given seed.
    """
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations}")
    qids = sorted(baseline)
    if not qids:
        raise ValueError("significance: the baseline has no per-query values")
    base = np.array([baseline[q] for q in qids], dtype=np.float64)
    p_values = {}
    for name, values in systems.items():
        if set(values) != set(qids):
            missing, extra = sorted(set(qids) - set(values)), sorted(set(values) - set(qids))
            raise ValueError(
                f"significance: system {name!r} is not paired with the baseline "
                f"(missing queries {missing[:5]}, extra queries {extra[:5]})"
            )
        p_values[name] = randomization_p_value(base, np.array([values[q] for q in qids]), n_permutations, seed)
    holm = _holm(p_values)
    return {n: {"p_value": p_values[n], "p_holm": holm[n], "significant": bool(holm[n] <= alpha)} for n in systems}
