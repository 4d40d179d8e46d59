"""Tiny learnable ranking data for the training tests (made here, nothing downloaded)."""

from __future__ import annotations

import random

from builders import vocabulary


def words() -> list[str]:
    return [w for w in vocabulary() if not w.startswith(("[", "##"))]


TOPICS = ["oauth", "grid", "disease", "metal", "rerank", "river", "music", "physics"]


def toy_groups(n_queries: int = 8, n_neg: int = 5, seed: int = 0, teacher: bool = False) -> list[dict]:
    """FlagEmbedding-style groups: the positive document repeats the query's topic word, negatives do not."""
    rng = random.Random(seed)
    fillers = [w for w in words() if w not in TOPICS]
    records = []
    for i in range(n_queries):
        topic = TOPICS[i % len(TOPICS)]
        query = f"{topic} {rng.choice(fillers)}"
        pos = " ".join([topic] + rng.sample(fillers, 5))
        others = [t for t in TOPICS if t != topic]
        negs = [" ".join([rng.choice(others)] + rng.sample(fillers, 5)) for _ in range(n_neg)]
        rec = {"query": query, "pos": [pos], "neg": negs}
        if teacher:
            rec["pos_scores"] = [round(rng.uniform(2.0, 4.0), 3)]
            rec["neg_scores"] = [round(rng.uniform(-3.0, 1.0), 3) for _ in negs]
        records.append(rec)
    return records


def toy_pairs(n_queries: int = 8, n_neg: int = 3, seed: int = 0) -> list[dict]:
    """The same task as labeled pairs (label 1 for the on-topic document)."""
    out = []
    for g in toy_groups(n_queries, n_neg, seed):
        out.append({"query": g["query"], "document": g["pos"][0], "label": 1})
        out += [{"query": g["query"], "document": d, "label": 0} for d in g["neg"]]
    return out
