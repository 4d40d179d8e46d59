"""The ir_datasets source: queries, qrels, its scoreddocs as first stage (else BM25), documents' texts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .firststage import bm25_rank, ranked_run
from .readers import DatasetError, _judge, doc_text
from .types import RerankDataset

if TYPE_CHECKING:
    from ..suite import DatasetSpec


def _ir_doc_text(doc) -> str:
    if isinstance(getattr(doc, "title", None), str) and isinstance(getattr(doc, "text", None), str):
        return doc_text(doc.title, doc.text)
    return doc.default_text() if hasattr(doc, "default_text") else str(doc.text)


def _ir_query_text(query) -> str:
    return query.default_text() if hasattr(query, "default_text") else str(query.text)


def _ir_doc_texts(ds, ids: set[str]) -> dict[str, str]:
    try:
        store = ds.docs_store()
    except (AttributeError, NotImplementedError):
        store = None
    if store is not None:
        return {d: _ir_doc_text(doc) for d, doc in store.get_many(ids).items()}
    return {doc.doc_id: _ir_doc_text(doc) for doc in ds.docs_iter() if doc.doc_id in ids}


def load_ir_dataset(
    ds, spec: DatasetSpec, max_queries: int | None = None, seed: int = 0, dataset_id: str | None = None
) -> RerankDataset:
    """Load an ir_datasets dataset object (from ``ir_datasets.load`` or ``ir_datasets.create_dataset``)."""
    from . import _assemble, _bm25_protocol

    dataset_id = dataset_id or spec.ir_datasets or "<ir_datasets object>"
    for part in ("queries", "qrels"):
        if not getattr(ds, f"has_{part}")():
            raise DatasetError(f"ir_datasets {dataset_id!r} has no {part}")
    queries = {q.query_id: _ir_query_text(q) for q in ds.queries_iter()}
    qrels: dict[str, dict[str, int]] = {}
    where: dict[tuple[str, str], int] = {}
    for n, r in enumerate(ds.qrels_iter(), 1):  # conflicting judgments refused, as for files
        _judge(qrels, where, f"ir_datasets:{dataset_id} qrels", n, r.query_id, r.doc_id, int(r.relevance))
    common = dict(
        spec=spec, max_queries=max_queries, seed=seed, source=f"ir_datasets:{dataset_id}", queries=queries, qrels=qrels
    )
    if ds.has_scoreddocs():
        judged = {q for q, docs in qrels.items() if docs}
        run: dict[str, dict[str, float]] = {}
        for sd in ds.scoreddocs_iter():
            if sd.query_id in judged:
                run.setdefault(sd.query_id, {})[sd.doc_id] = float(sd.score)
        ranked = ranked_run(run)
        return _assemble(
            **common,
            rank=lambda qids: ranked,
            texts=lambda ids: _ir_doc_texts(ds, ids),
            candidate_qids=set(run) | (set(queries) - judged),  # unjudged queries too, to count them as dropped
            protocol={"first_stage_source": "ir_datasets scoreddocs"},
        )
    if not ds.has_docs():
        raise DatasetError(f"ir_datasets {dataset_id!r} has neither scoreddocs nor docs to run BM25 over")
    corpus = {doc.doc_id: _ir_doc_text(doc) for doc in ds.docs_iter()}
    ids = list(corpus)
    identical = dataset_id.startswith("beir/")
    return _assemble(
        **common,
        rank=lambda qids: bm25_rank(
            ids, [corpus[d] for d in ids], {q: queries[q] for q in qids}, spec.top_k, identical
        ),
        texts=lambda wanted: corpus,
        protocol=_bm25_protocol(identical),
    )
