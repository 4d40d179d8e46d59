"""InfoNCE training examples: from first-stage candidate lists and qrels (TREC DL 2019 / 2021 here), or from a
``train:`` section's pair records (:func:`examples_from_records`, what the harness's bi-encoder trainers read).

For each training query: every candidate judged relevant (grade >= ``relevance_level``) is a positive; its hard
negatives are that query's candidates judged non-relevant (grade 0), in first-stage order, taken round-robin so
that consecutive positives get different ones. Unjudged candidates are never negatives (they may be relevant).
Queries are split into train and dev by ``harness.train.data.split_queries`` (by query, seeded); a query with no
positive or too few judged negatives gives no example. Keys are ``<list name>:<qid>``. Numpy only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlx_cross_encoder.training.infonce import InfoNCEExample

from ..sources.readers import read_candidates, read_trec_qrels
from .data import split_queries


def infonce_examples(
    lists: dict[str, tuple[Path, Path]],
    relevance_level: int = 2,
    negatives: int = 1,
    dev_fraction: float = 0.2,
    seed: int = 0,
    max_examples: int | None = None,
) -> tuple[list[InfoNCEExample], list[str]]:
    """``(training examples, dev query keys)`` from ``{name: (candidates.json, qrels)}``; ``max_examples``
    keeps a seeded sample (in the examples' order)."""
    per_query: dict[str, list[InfoNCEExample]] = {}
    for name, (candidates, qrels_file) in lists.items():
        queries, ranked, texts = read_candidates(candidates)
        qrels = read_trec_qrels(qrels_file)
        for qid, hits in ranked.items():
            judged = qrels.get(qid, {})
            pos = [d for d, _ in hits if judged.get(d, 0) >= relevance_level]
            neg = [d for d, _ in hits if d in judged and judged[d] == 0]
            if not pos or len(neg) < negatives:
                continue
            key = f"{name}:{qid}"
            per_query[key] = [
                InfoNCEExample(
                    queries[qid],
                    texts[p],
                    tuple(texts[neg[(i * negatives + j) % len(neg)]] for j in range(negatives)),
                    qid=key,
                )
                for i, p in enumerate(pos)
            ]
    train, dev = split_queries(per_query, dev_fraction, seed)
    examples = [e for key in train for e in per_query[key]]
    if max_examples is not None and len(examples) > max_examples:
        keep = np.sort(np.random.default_rng(seed).choice(len(examples), max_examples, replace=False))
        examples = [examples[i] for i in keep]
    return examples, dev


def examples_from_records(records: list[dict], negatives: int = 1) -> list[InfoNCEExample]:
    """Examples from training pair records (``{query, document, label, grade}``, a ``train:`` section's train file,
    ``harness.train.plan``), by the rule above: per query, in the records' order, each positive (label > 0.5) with
    ``negatives`` hard negatives taken round-robin from that query's grade-0 records (judged non-relevant; with
    ``recipe.candidates: all`` also the unjudged candidates, which the harness writes as grade 0). Records with a
    grade between (label 0, grade > 0: judged partly relevant) are neither. A query with no positive or fewer
    grade-0 records than ``negatives`` gives no example. ``qid`` is the query text (one spelling per query)."""
    by_query: dict[str, tuple[list[str], list[str]]] = {}
    for r in records:
        pos, neg = by_query.setdefault(r["query"], ([], []))
        if float(r["label"]) > 0.5:
            pos.append(r["document"])
        elif int(r["grade"]) == 0:
            neg.append(r["document"])
    examples = []
    for query, (pos, neg) in by_query.items():
        if not pos or len(neg) < negatives:
            continue
        examples += [
            InfoNCEExample(query, p, tuple(neg[(i * negatives + j) % len(neg)] for j in range(negatives)), qid=query)
            for i, p in enumerate(pos)
        ]
    return examples
