"""First stages the harness computes or reads: rankings in trec_eval order, and BM25 with bm25s."""

from __future__ import annotations

import numpy as np

from ..metrics import trec_order
from .readers import Ranked

BM25_PARAMS = {"method": "lucene", "k1": 0.9, "b": 0.4}
BM25_TOKENIZER = {"lower": True, "token_pattern": r"(?u)\b\w\w+\b", "stopwords": "en", "stemmer": None}


def ranked_run(run: dict[str, dict[str, float]]) -> Ranked:
    return {q: [(d, docs[d]) for d in trec_order(docs)] for q, docs in run.items()}


def bm25_rank(
    doc_ids: list[str], doc_texts: list[str], queries: dict[str, str], k: int, exclude_identical_ids: bool = False
) -> Ranked:
    """Top-k BM25 (bm25s, ``BM25_PARAMS``/``BM25_TOKENIZER``) per query, trec_eval order, score > 0 only."""
    import bm25s

    tok = dict(BM25_TOKENIZER)
    retriever = bm25s.BM25(**BM25_PARAMS)
    retriever.index(bm25s.tokenize(doc_texts, show_progress=False, **tok), show_progress=False)
    query_ids = list(queries)
    query_tokens = bm25s.tokenize([queries[q] for q in query_ids], return_ids=False, show_progress=False, **tok)
    out: Ranked = {}
    for qid, tokens in zip(query_ids, query_tokens):
        token_ids = retriever.get_tokens_ids(tokens)
        if not token_ids:
            out[qid] = []
            continue
        scores = np.asarray(retriever.get_scores_from_ids(token_ids), dtype=np.float64)
        idx = np.flatnonzero(scores > 0)
        if exclude_identical_ids:
            idx = np.array([i for i in idx if doc_ids[i] != qid], dtype=np.int64)
        if len(idx) > k:  # keep every document tied with the k-th score: trec_order breaks the tie
            idx = idx[scores[idx] >= np.partition(scores[idx], -k)[-k]]
        hits = {doc_ids[i]: float(scores[i]) for i in idx}
        out[qid] = [(d, hits[d]) for d in trec_order(hits)][:k]
    return out
