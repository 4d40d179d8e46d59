"""Load a suite's dataset into a RerankDataset: queries, first-stage candidates (cut to top_k) and qrels.

Sources (``DatasetSpec.source_kind``):

* ``candidates``: a candidate-list JSON ``[{"query": str, "hits": [{"content", "qid", "docid", "rank",
  "score"}]}]`` (the rank_llm format of ../shared/data/trec-dl) + TREC qrels. The first-stage score is the hit's
  ``score``.
* ``trec_run``: a TREC run (``qid Q0 docid rank score tag``) + corpus (TSV ``docid<TAB>text`` - further columns
  are joined with spaces - or JSONL ``{"_id", "title", "text"}``) + queries (TSV ``qid<TAB>text`` or JSONL
  ``{"_id", "text"}``) + TREC qrels.
* ``beir``: a BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv`` with a header line), first
  stage BM25 computed here with bm25s.
* ``ir_datasets``: an ir_datasets id; the dataset's own ``scoreddocs`` are the first stage when it has them
  (e.g. msmarco-passage/trec-dl-2019/judged: the official BM25 top 1000), else BM25 with bm25s over
  ``docs_iter()``. ``load_ir_dataset`` takes a dataset object, e.g. one made by ``ir_datasets.create_dataset``.
* ``judged_pool`` (``harness.sources.pool``): TREC qrels + corpus + queries; each query's judged documents are its
  candidates, in corpus order (first stage ``judged-pool``), for collections that judge a fixed pool per query
  (NovelEval): no run file derived from the collection is needed.

Conventions (one rule for every backend: the parent applies them once, every system gets the result):

* Inputs that would be silently wrong are refused, naming the file and the entry or line: a docid given with two
  different texts in a candidates file, ``content`` that is not a string (null, a number), a score that is not a
  finite number, the same (query, document) judged twice with different grades, a file that is not UTF-8.
* Empty queries and empty documents (no text once stripped) are dropped at load, for every backend alike, and
  counted in the protocol (``dropped_empty_queries``, ``dropped_empty_documents``).

* Document text: a document with a title is ``(title + " " + text).strip()``, the BEIR reranking convention
  (beir/reranking/rerank.py); ir_datasets documents without title use their ``default_text()``.
* Rankings are ordered like trec_eval orders them (score descending, then docid descending) before the cut to
  ``top_k``, so the first-stage row and the cut agree with ``harness.metrics``.
* BM25 (``BM25_PARAMS``): bm25s ``method="lucene"``, k1=0.9, b=0.4 (Anserini/Pyserini defaults); tokens are
  lower-cased ``\\w\\w+`` runs (scikit-learn's pattern, bm25s' default), Lucene's 33 English stop words removed,
  no stemming (no stemmer dependency), so figures sit a little below Pyserini's stemmed BM25. Only documents
  sharing a term with the query (score > 0) are candidates, as in Lucene. On BEIR data a document whose id is
  the query's id is never a candidate (BEIR's ``ignore_identical_ids``, for ArguAna and Quora).
* Queries with no judgment in the qrels are dropped (``protocol["dropped_unjudged"]``), and so are judged
  queries without any candidate (``protocol["dropped_no_candidates"]``); qrels keep only the loaded queries.
* Subset (``max_queries``): the queries are ordered by sha256 of ``"<seed>:<qid>"`` and the first N are kept:
  a deterministic, seeded, unbiased sample, the same on every machine and Python version, and nested (the N
  queries of a smaller subset are in every larger one with the same seed).
* ``add_judged_positives``: judged documents with grade >= relevance_level that the first stage missed are
  appended after the top_k candidates, best grade first, with scores below the lowest candidate's (counted in
  ``protocol["n_judged_positives_added"]``; judged documents missing from the corpus are skipped and counted in
  ``n_judged_positives_not_in_corpus``). It needs the corpus, so not with ``candidates`` files.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from .firststage import BM25_PARAMS, BM25_TOKENIZER, Ranked, bm25_rank, ranked_run
from .irds import _ir_query_text, load_ir_dataset  # noqa: F401  (harness.train.data reads _ir_query_text)
from .readers import (  # noqa: F401  (the readers are part of this package's interface)
    DatasetError,
    doc_text,
    read_beir_qrels,
    read_candidates,
    read_corpus,
    read_queries,
    read_trec_qrels,
    read_trec_run,
)
from .registry import SOURCES
from .types import Candidate, RerankDataset

if TYPE_CHECKING:
    from ..suite import DatasetSpec


# --- assembling --------------------------------------------------------------------------------------------------
def select_queries(qids: Iterable[str], n: int | None, seed: int = 0) -> list[str]:
    """The first ``n`` qids ordered by sha256("<seed>:<qid>") (all when n is None), returned sorted."""
    qids = sorted(set(qids))
    if n is None or n >= len(qids):
        return qids
    key = lambda q: hashlib.sha256(f"{seed}:{q}".encode()).hexdigest()  # noqa: E731
    return sorted(sorted(qids, key=key)[:n])


def _assemble(
    spec: DatasetSpec,
    max_queries: int | None,
    seed: int,
    *,
    source: str,
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    rank: Callable[[list[str]], Ranked],
    texts: Callable[[set[str]], dict[str, str]],
    candidate_qids: set[str] | None = None,
    protocol: dict | None = None,
) -> RerankDataset:
    """Shared steps: judged filter, subset, first stage, cut, judged positives, texts, protocol."""
    n = max_queries if max_queries is not None else spec.max_queries
    level = spec.resolved_relevance_level()
    judged = {q for q, docs in qrels.items() if docs}
    pool = set(queries) if candidate_qids is None else set(candidate_qids)
    missing_text = sorted(pool - set(queries))
    if missing_text:
        raise DatasetError(f"{source}: no query text for {len(missing_text)} queries, e.g. {missing_text[:5]}")
    empty_queries = {q for q in pool & judged if not queries[q].strip()}  # one rule for every backend: dropped
    available = (pool & judged) - empty_queries
    chosen = select_queries(available, n, seed)
    ranked = rank(chosen)

    firsts = {q: ranked.get(q, [])[: spec.top_k] for q in chosen}
    extras: dict[str, list[str]] = {}
    if spec.add_judged_positives:
        for qid, hits in firsts.items():
            have = {d for d, _ in hits}
            extras[qid] = sorted(
                (d for d, g in qrels[qid].items() if g >= level and d not in have), key=lambda d: (-qrels[qid][d], d)
            )
    needed = {d for hits in firsts.values() for d, _ in hits}
    found = texts(needed | {d for ds in extras.values() for d in ds})
    lost = sorted(needed - set(found))
    if lost:
        raise DatasetError(f"{source}: no text for {len(lost)} candidate documents, e.g. {lost[:5]}")
    candidates_ids, counts = _candidate_lists(firsts, extras, found)

    kept = sorted(candidates_ids)
    protocol = dict(protocol or {})
    protocol.update(
        source_kind=spec.source_kind,
        first_stage=spec.first_stage,
        top_k=spec.top_k,
        max_queries=n,
        subset="all" if n is None or n >= len(available) else f"first {n} by sha256('{seed}:<qid>')",
        seed=seed,
        add_judged_positives=spec.add_judged_positives,
        n_judged_positives_added=counts["added"],
        n_judged_positives_not_in_corpus=counts["missing"],
        relevance_level=level,
        n_queries_available=len(available),
        n_queries=len(kept),
        n_pairs=sum(len(h) for h in candidates_ids.values()),
        dropped_unjudged=len(pool - judged),
        dropped_no_candidates=len(judged - pool) + (len(chosen) - len(kept)),
        dropped_empty_queries=len(empty_queries),
        dropped_empty_documents=counts["empty_documents"],
    )
    return RerankDataset(
        name=spec.name,
        queries={q: queries[q] for q in kept},
        candidates={q: [Candidate(d, found[d], float(s)) for d, s in candidates_ids[q]] for q in kept},
        qrels={q: dict(qrels[q]) for q in kept},
        first_stage=spec.first_stage,
        relevance_level=level,
        source=source,
        protocol=protocol,
    )


def _candidate_lists(
    firsts: Ranked, extras: dict[str, list[str]], found: dict[str, str]
) -> tuple[Ranked, dict[str, int]]:
    """Per query: the first-stage candidates with text, then the judged positives added below them; counts of
    judged positives added / not in the corpus and of empty documents dropped (the same for every backend)."""
    candidates_ids: Ranked = {}
    counts = {"added": 0, "missing": 0, "empty_documents": 0}
    for qid, hits in firsts.items():
        kept_hits = [(d, s) for d, s in hits if found[d].strip()]  # empty documents: dropped for every backend
        counts["empty_documents"] += len(hits) - len(kept_hits)
        extra = [d for d in extras.get(qid, []) if d in found and found[d].strip()]  # absent or empty: skipped
        counts["missing"] += len(extras.get(qid, [])) - len(extra)
        floor = min((s for _, s in kept_hits), default=1.0) - 1.0
        hits = kept_hits + [(d, floor - i) for i, d in enumerate(extra)]  # below every candidate, in grade order
        counts["added"] += len(extra)
        if hits:
            candidates_ids[qid] = hits
    return candidates_ids, counts


def _bm25_protocol(identical: bool) -> dict:
    return {
        "first_stage_source": "bm25s",
        "bm25": {**BM25_PARAMS, **BM25_TOKENIZER},
        "excluded_identical_ids": identical,
    }


def load_dataset(spec: DatasetSpec, max_queries: int | None = None, seed: int = 0) -> RerankDataset:
    """Load ``spec`` with its source's loader (``harness.sources.registry``); ``max_queries`` overrides the spec's,
    ``seed`` picks the subset."""
    source = SOURCES.get(spec.source_kind)
    if source is None:
        raise DatasetError(
            f"dataset {spec.name!r}: unknown source kind {spec.source_kind!r}; known: {', '.join(SOURCES)}"
        )
    module, function = source.loader.split(":")
    return getattr(importlib.import_module(module), function)(spec, max_queries, seed)


def load_candidates(spec: DatasetSpec, max_queries: int | None, seed: int) -> RerankDataset:
    queries, ranked, texts = read_candidates(spec.candidates)
    return _assemble(
        spec,
        max_queries,
        seed,
        source=f"{spec.candidates} + {spec.qrels}",
        queries=queries,
        qrels=read_trec_qrels(spec.qrels),
        rank=lambda qids: ranked,
        texts=lambda ids: texts,
        candidate_qids={q for q, hits in ranked.items() if hits},
        protocol={"first_stage_source": "candidates file"},
    )


def load_trec_run(spec: DatasetSpec, max_queries: int | None, seed: int) -> RerankDataset:
    ranked = ranked_run(read_trec_run(spec.run))
    return _assemble(
        spec,
        max_queries,
        seed,
        source=f"{spec.run} + {spec.corpus} + {spec.queries} + {spec.qrels}",
        queries=read_queries(spec.queries),
        qrels=read_trec_qrels(spec.qrels),
        rank=lambda qids: ranked,
        texts=lambda ids: read_corpus(spec.corpus, ids),
        candidate_qids={q for q, h in ranked.items() if h},
        protocol={"first_stage_source": "trec run"},
    )


def load_beir(spec: DatasetSpec, max_queries: int | None, seed: int) -> RerankDataset:
    root = Path(spec.beir)
    qrels = read_beir_qrels(root / "qrels" / f"{spec.split}.tsv")
    queries = {q: t for q, t in read_queries(root / "queries.jsonl").items() if q in qrels}  # BEIR: split's queries
    corpus = read_corpus(root / "corpus.jsonl")
    ids = list(corpus)
    return _assemble(
        spec,
        max_queries,
        seed,
        source=f"beir:{root} ({spec.split})",
        queries=queries,
        qrels=qrels,
        rank=lambda qids: bm25_rank(ids, [corpus[d] for d in ids], {q: queries[q] for q in qids}, spec.top_k, True),
        texts=lambda wanted: corpus,
        protocol=_bm25_protocol(True),
    )


def load_ir_datasets(spec: DatasetSpec, max_queries: int | None, seed: int) -> RerankDataset:
    import ir_datasets

    try:
        ds = ir_datasets.load(spec.ir_datasets)
    except KeyError:
        raise DatasetError(f"unknown ir_datasets id {spec.ir_datasets!r}") from None
    try:
        return load_ir_dataset(ds, spec, max_queries, seed, dataset_id=spec.ir_datasets)
    except DatasetError:
        raise
    except Exception as exc:  # downloads fail here (no network): say which id and what to do
        home = ir_datasets.util.home_path()
        raise DatasetError(
            f"ir_datasets id {spec.ir_datasets!r}: its data could not be read ({type(exc).__name__}: {exc}). "
            f"ir_datasets downloads a dataset on first use; without network access it must be fetched beforehand "
            f"(e.g. `ir_datasets export {spec.ir_datasets} docs > /dev/null`, likewise queries, qrels, "
            f"scoreddocs) into {home} (IR_DATASETS_HOME), or use local files (candidates, run, beir)"
        ) from exc
