"""Data shapes passed between the harness's parts (suite -> datasets -> runner -> results -> report)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Candidate:
    docid: str
    text: str
    score: float  # first-stage score


@dataclass
class RerankDataset:
    """One dataset ready to rerank: every system in a comparison gets exactly these candidates."""

    name: str
    queries: dict[str, str]  # qid -> query text (only queries that have candidates)
    candidates: dict[str, list[Candidate]]  # qid -> first-stage ranking, best first, already cut to top_k
    qrels: dict[str, dict[str, int]]  # qid -> docid -> grade
    first_stage: str  # e.g. "bm25" (name of the first-stage row in reports)
    relevance_level: int = 1  # binary measures count grade >= this (TREC DL: 2)
    source: str = ""  # where it came from (paths or ir_datasets id), for provenance
    protocol: dict = field(default_factory=dict)  # top_k, max_queries, add_judged_positives, ...

    def fingerprint(self) -> str:
        """sha256 over queries, candidate lists (ids, texts) and qrels: equal data, equal hash."""
        h = hashlib.sha256()
        for qid in sorted(self.candidates):
            h.update(json.dumps([qid, self.queries[qid], [(c.docid, c.text) for c in self.candidates[qid]]]).encode())
        h.update(json.dumps(self.qrels, sort_keys=True).encode())
        return h.hexdigest()
