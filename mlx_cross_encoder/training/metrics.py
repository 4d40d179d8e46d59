"""A built-in ranking metric for dev-set evaluation, used when no ``metric_fn`` is passed.

``metric_fn(run, qrels) -> dict[str, float]`` is the interface the trainers call: ``run`` maps query id ->
document id -> score, ``qrels`` maps query id -> document id -> relevance grade (the ``ranx``/``pytrec_eval``
shapes). Pass the harness's metric function to get its exact semantics; this module's fallback computes
nDCG@10 with trec_eval's definition (gain = grade, discount = log2(rank + 1), ties broken by document id
descending as trec_eval does, unjudged = 0, queries without a relevant document score 0) and MRR@10.
"""

from __future__ import annotations

import math


def _ranked(scores: dict[str, float]) -> list[str]:
    # trec_eval sorts by score descending, then by docno descending
    return [d for d, _ in sorted(scores.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)]


def ndcg_at_k(run: dict, qrels: dict, k: int = 10) -> float:
    values = []
    for qid, judged in qrels.items():
        ranked = _ranked(run.get(qid, {}))[:k]
        dcg = sum(judged.get(d, 0.0) / math.log2(i + 2) for i, d in enumerate(ranked) if judged.get(d, 0.0) > 0)
        ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
        idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
        values.append(dcg / idcg if idcg > 0 else 0.0)
    return sum(values) / len(values) if values else 0.0


def mrr_at_k(run: dict, qrels: dict, k: int = 10, relevance_level: float = 1.0) -> float:
    values = []
    for qid, judged in qrels.items():
        ranked = _ranked(run.get(qid, {}))[:k]
        rr = next((1.0 / (i + 1) for i, d in enumerate(ranked) if judged.get(d, 0.0) >= relevance_level), 0.0)
        values.append(rr)
    return sum(values) / len(values) if values else 0.0


def ranking_metrics(run: dict, qrels: dict) -> dict[str, float]:
    """``{"ndcg@10", "mrr@10"}`` over the queries of ``qrels``."""
    return {"ndcg@10": ndcg_at_k(run, qrels, 10), "mrr@10": mrr_at_k(run, qrels, 10)}
