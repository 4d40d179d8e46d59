"""The dataset sources, declared once: suite validation, ``harness list`` and loading read this.

Each source kind names the suite key that holds it (``candidates: FILE``, ``run: FILE``, ``beir: DIR``,
``ir_datasets: ID``, ``judged_pool: QRELS``), the further keys it needs (all required, the others refused), whether
the harness computes its first stage itself or the source fixes it (``first_stage``), its loader
(``"module:function"``, ``(spec, max_queries, seed) -> RerankDataset``) and a description. Imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceKind:
    kind: str  # DatasetSpec.source_kind
    key: str  # the suite key giving the source
    files: tuple[str, ...]  # further suite keys it needs (files)
    loader: str  # "module:function"
    description: str
    computes_first_stage: bool = False  # first_stage is BM25 computed by the harness
    first_stage: str | None = None  # the one first stage this source gives (its name in reports), if it fixes it


SOURCES: dict[str, SourceKind] = {
    s.kind: s
    for s in (
        SourceKind(
            "candidates",
            "candidates",
            ("qrels",),
            "harness.sources:load_candidates",
            "candidate-list JSON [{query, hits: [{content, qid, docid, rank, score}]}] + TREC qrels",
        ),
        SourceKind(
            "trec_run",
            "run",
            ("corpus", "queries", "qrels"),
            "harness.sources:load_trec_run",
            "TREC run file + corpus (TSV docid<TAB>text or BEIR-style JSONL) + queries (TSV or JSONL) + TREC qrels",
        ),
        SourceKind(
            "beir",
            "beir",
            (),
            "harness.sources:load_beir",
            "BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv), first stage BM25 (bm25s)",
            True,
        ),
        SourceKind(
            "ir_datasets",
            "ir_datasets",
            (),
            "harness.sources:load_ir_datasets",
            "ir_datasets id (already downloaded), its scoreddocs as first stage, else BM25 (bm25s)",
            True,
        ),
        SourceKind(
            "judged_pool",
            "judged_pool",
            ("corpus", "queries"),
            "harness.sources.pool:load_judged_pool",
            "TREC qrels (also the judgments): each query's judged documents are its candidates, in corpus order "
            "(first stage judged-pool) + corpus + queries",
            first_stage="judged-pool",
        ),
    )
}
SOURCE_KEYS: dict[str, SourceKind] = {s.key: s for s in SOURCES.values()}  # suite key -> source
FILE_KEYS: tuple[str, ...] = ("qrels", "corpus", "queries")  # keys some sources need and others refuse
COMPUTED_FIRST_STAGES = ("bm25",)  # first stages the harness computes itself
