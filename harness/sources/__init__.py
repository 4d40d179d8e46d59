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
import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..metrics import trec_order
from .registry import SOURCES
from .types import Candidate, RerankDataset

if TYPE_CHECKING:
    from ..suite import DatasetSpec

BM25_PARAMS = {"method": "lucene", "k1": 0.9, "b": 0.4}
BM25_TOKENIZER = {"lower": True, "token_pattern": r"(?u)\b\w\w+\b", "stopwords": "en", "stemmer": None}

Ranked = dict[str, list[tuple[str, float]]]  # qid -> [(docid, score)] in trec_eval order


class DatasetError(ValueError):
    pass


# --- readers -----------------------------------------------------------------------------------------------------
def _not_utf8(path: Path, exc: UnicodeDecodeError) -> DatasetError:
    return DatasetError(f"{path}: not UTF-8 text (byte {exc.start} of a block: {exc.reason}); convert it to UTF-8")


def _lines(path: Path) -> Iterable[tuple[int, str]]:
    with open(path, encoding="utf-8") as f:
        try:
            for n, line in enumerate(f, 1):
                if line.strip():
                    yield n, line.rstrip("\n")
        except UnicodeDecodeError as exc:
            raise _not_utf8(path, exc) from None


def _judge(qrels: dict, where: dict, path: Path, n: int, qid: str, docid: str, grade: int) -> None:
    """Record one judgment; the same (qid, docid) judged twice with different grades is refused."""
    old = qrels.setdefault(qid, {}).get(docid)
    if old is not None and old != grade:
        raise DatasetError(f"{path}:{n}: query {qid} document {docid} is judged {grade} here and {old} on line "
                           f"{where[qid, docid]}: conflicting judgments")  # fmt: skip
    qrels[qid][docid] = grade
    where.setdefault((qid, docid), n)


def read_trec_qrels(path: Path) -> dict[str, dict[str, int]]:
    """TREC qrels ``qid iteration docid grade``."""
    qrels: dict[str, dict[str, int]] = {}
    where: dict[tuple[str, str], int] = {}
    for n, line in _lines(path):
        cols = line.split()
        try:
            if len(cols) != 4:
                raise ValueError
            grade = int(cols[3])
        except ValueError:
            raise DatasetError(f"{path}:{n}: expected a TREC qrels line 'qid 0 docid grade', got {line!r}") from None
        _judge(qrels, where, path, n, cols[0], cols[2], grade)
    return qrels


def read_beir_qrels(path: Path) -> dict[str, dict[str, int]]:
    """BEIR qrels TSV ``query-id<TAB>corpus-id<TAB>score`` (the header line is skipped)."""
    qrels: dict[str, dict[str, int]] = {}
    where: dict[tuple[str, str], int] = {}
    for n, line in _lines(path):
        cols = line.split("\t")
        if n == 1 and (len(cols) < 3 or not cols[2].strip().lstrip("-").isdigit()):
            continue  # header
        if len(cols) != 3 or not cols[2].strip().lstrip("-").isdigit():
            raise DatasetError(f"{path}:{n}: expected 'query-id<TAB>corpus-id<TAB>score', got {line!r}")
        _judge(qrels, where, path, n, cols[0].strip(), cols[1].strip(), int(cols[2]))
    return qrels


def read_trec_run(path: Path) -> dict[str, dict[str, float]]:
    """TREC run ``qid Q0 docid rank score tag``; the rank column is ignored, like trec_eval does."""
    run: dict[str, dict[str, float]] = {}
    for n, line in _lines(path):
        cols = line.split()
        try:
            if len(cols) != 6:
                raise ValueError
            score = float(cols[4])
        except ValueError:
            raise DatasetError(f"{path}:{n}: expected a TREC run line 'qid Q0 docid rank score tag', got {line!r}") \
                from None
        if not math.isfinite(score):
            raise DatasetError(f"{path}:{n}: score must be a finite number, got {cols[4]!r}")
        run.setdefault(cols[0], {})[cols[2]] = score
    return run


def _jsonl(path: Path) -> Iterable[tuple[int, dict]]:
    for n, line in _lines(path):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{n}: invalid JSON ({exc.msg})") from None
        if not isinstance(obj, dict) or "_id" not in obj:
            raise DatasetError(f"{path}:{n}: expected a JSON object with an '_id'")
        yield n, obj


def doc_text(title: str | None, text: str | None) -> str:
    """BEIR's document text: ``(title + " " + text).strip()``."""
    return f"{title or ''} {text or ''}".strip()


def read_corpus(path: Path, needed: set[str] | None = None) -> dict[str, str]:
    """docid -> text from a JSONL (``.jsonl``/``.json``) or TSV corpus; only ``needed`` ids when given."""
    out: dict[str, str] = {}
    if path.suffix in (".jsonl", ".json"):
        for n, obj in _jsonl(path):
            docid = str(obj["_id"])
            for key in ("title", "text"):
                if obj.get(key) is not None and not isinstance(obj[key], str):
                    raise DatasetError(f"{path}:{n}: document {docid}: {key} must be a string, got {obj[key]!r}")
            if needed is None or docid in needed:
                out[docid] = doc_text(obj.get("title"), obj.get("text"))
    else:
        for n, line in _lines(path):
            cols = line.split("\t")
            if len(cols) < 2:
                raise DatasetError(f"{path}:{n}: expected 'docid<TAB>text', got {line[:80]!r}")
            if needed is None or cols[0] in needed:
                out[cols[0]] = " ".join(c.strip() for c in cols[1:] if c.strip())
    return out


def read_queries(path: Path) -> dict[str, str]:
    """qid -> text from a TSV ``qid<TAB>text`` or JSONL ``{"_id", "text"}`` file."""
    if path.suffix in (".jsonl", ".json"):
        return {str(obj["_id"]): str(obj.get("text", "")) for _, obj in _jsonl(path)}
    out = {}
    for n, line in _lines(path):
        qid, sep, text = line.partition("\t")
        if not sep:
            raise DatasetError(f"{path}:{n}: expected 'qid<TAB>text', got {line[:80]!r}")
        out[qid.strip()] = text.strip()
    return out


def read_candidates(path: Path) -> tuple[dict[str, str], Ranked, dict[str, str]]:
    """(queries, ranked (docid, score) lists, texts) from a candidate-list JSON file.

    One rule for every backend: a docid names one document in the whole file (the same docid with another text,
    in this query or another, is refused: scores are looked up by docid); ``content`` must be a string and
    ``score`` a finite number (``rank`` when no score): anything else is refused naming the entry and hit."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, exc) from None
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(data, list):
        raise DatasetError(f"{path}: expected a list of {{'query', 'hits'}} objects")
    queries, ranked, texts, first_seen = {}, {}, {}, {}
    for i, entry in enumerate(data):
        hits = entry.get("hits") if isinstance(entry, dict) else None
        if not isinstance(hits, list) or not isinstance(entry.get("query"), str):
            raise DatasetError(f"{path}: entry {i}: expected {{'query': str, 'hits': [...]}}")
        qids = {str(h.get("qid")) for h in hits if isinstance(h, dict)}
        qids |= {str(entry["qid"])} if "qid" in entry else set()
        if len(qids) != 1:
            problem = f"hits of several qids {sorted(qids)}" if qids else "no qid (empty hits)"
            raise DatasetError(f"{path}: entry {i}: {problem}")
        qid = qids.pop()
        if qid in queries:
            raise DatasetError(f"{path}: entry {i}: query {qid} appears twice")
        queries[qid], scores = entry["query"], {}
        for j, h in enumerate(hits):
            docid, content, score = _hit(path, i, j, h)
            if docid in texts and texts[docid] != content:
                raise DatasetError(f"{path}: entry {i}, hit {j}: docid {docid!r} has another content than at "
                                   f"{first_seen[docid]}; a docid must name one document in the whole file")  # fmt: skip
            texts.setdefault(docid, content)
            first_seen.setdefault(docid, f"entry {i}, hit {j}")
            scores.setdefault(docid, score)  # a repeated docid (same text) keeps its first (best) hit
        ranked[qid] = [(d, scores[d]) for d in trec_order(scores)]
    return queries, ranked, texts


def _hit(path: Path, i: int, j: int, h) -> tuple[str, str, float]:
    """(docid, content, score) of one hit, or a DatasetError naming the entry, hit and field."""
    where = f"{path}: entry {i}, hit {j}"
    if not isinstance(h, dict) or "docid" not in h or "content" not in h or ("score" not in h and "rank" not in h):
        raise DatasetError(f"{where}: needs docid, content and score (or rank)")
    if not isinstance(h["content"], str):
        raise DatasetError(f"{where}: content must be a string, got {'null' if h['content'] is None else repr(h['content'])}")
    field = "score" if "score" in h else "rank"
    value = h[field]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DatasetError(f"{where}: {field} must be a finite number, got {value!r}")
    return str(h["docid"]), h["content"], float(value) if field == "score" else -float(value)


# --- first stage -------------------------------------------------------------------------------------------------
def _ranked(run: dict[str, dict[str, float]]) -> Ranked:
    return {q: [(d, docs[d]) for d in trec_order(docs)] for q, docs in run.items()}


def bm25_rank(doc_ids: list[str], doc_texts: list[str], queries: dict[str, str], k: int,
              exclude_identical_ids: bool = False) -> Ranked:
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
            extras[qid] = sorted((d for d, g in qrels[qid].items() if g >= level and d not in have),
                                 key=lambda d: (-qrels[qid][d], d))
    needed = {d for hits in firsts.values() for d, _ in hits}
    found = texts(needed | {d for ds in extras.values() for d in ds})
    lost = sorted(needed - set(found))
    if lost:
        raise DatasetError(f"{source}: no text for {len(lost)} candidate documents, e.g. {lost[:5]}")
    candidates_ids: dict[str, list[tuple[str, float]]] = {}
    added = missing = 0
    empty_docs = 0
    for qid, hits in firsts.items():
        kept_hits = [(d, s) for d, s in hits if found[d].strip()]  # empty documents: dropped for every backend
        empty_docs += len(hits) - len(kept_hits)
        hits = kept_hits
        extra = [d for d in extras.get(qid, []) if d in found and found[d].strip()]  # absent or empty: skipped
        missing += len(extras.get(qid, [])) - len(extra)
        floor = min((s for _, s in hits), default=1.0) - 1.0
        hits = hits + [(d, floor - i) for i, d in enumerate(extra)]  # below every candidate, in grade order
        added += len(extra)
        if hits:
            candidates_ids[qid] = hits

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
        n_judged_positives_added=added,
        n_judged_positives_not_in_corpus=missing,
        relevance_level=level,
        n_queries_available=len(available),
        n_queries=len(kept),
        n_pairs=sum(len(h) for h in candidates_ids.values()),
        dropped_unjudged=len(pool - judged),
        dropped_no_candidates=len(judged - pool) + (len(chosen) - len(kept)),
        dropped_empty_queries=len(empty_queries),
        dropped_empty_documents=empty_docs,
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


def _bm25_protocol(identical: bool) -> dict:
    return {"first_stage_source": "bm25s", "bm25": {**BM25_PARAMS, **BM25_TOKENIZER},
            "excluded_identical_ids": identical}


def load_dataset(spec: DatasetSpec, max_queries: int | None = None, seed: int = 0) -> RerankDataset:
    """Load ``spec`` with its source's loader (``harness.sources.registry``); ``max_queries`` overrides the spec's,
    ``seed`` picks the subset."""
    source = SOURCES.get(spec.source_kind)
    if source is None:
        raise DatasetError(f"dataset {spec.name!r}: unknown source kind {spec.source_kind!r}; known: "
                           f"{', '.join(SOURCES)}")  # fmt: skip
    module, function = source.loader.split(":")
    return getattr(importlib.import_module(module), function)(spec, max_queries, seed)


def load_candidates(spec: DatasetSpec, max_queries: int | None, seed: int) -> RerankDataset:
    queries, ranked, texts = read_candidates(spec.candidates)
    return _assemble(
        spec, max_queries, seed, source=f"{spec.candidates} + {spec.qrels}", queries=queries,
        qrels=read_trec_qrels(spec.qrels), rank=lambda qids: ranked, texts=lambda ids: texts,
        candidate_qids={q for q, hits in ranked.items() if hits},
        protocol={"first_stage_source": "candidates file"},
    )  # fmt: skip


def load_trec_run(spec: DatasetSpec, max_queries: int | None, seed: int) -> RerankDataset:
    ranked = _ranked(read_trec_run(spec.run))
    return _assemble(
        spec, max_queries, seed, source=f"{spec.run} + {spec.corpus} + {spec.queries} + {spec.qrels}",
        queries=read_queries(spec.queries), qrels=read_trec_qrels(spec.qrels), rank=lambda qids: ranked,
        texts=lambda ids: read_corpus(spec.corpus, ids), candidate_qids={q for q, h in ranked.items() if h},
        protocol={"first_stage_source": "trec run"},
    )  # fmt: skip


def load_beir(spec: DatasetSpec, max_queries: int | None, seed: int) -> RerankDataset:
    root = Path(spec.beir)
    qrels = read_beir_qrels(root / "qrels" / f"{spec.split}.tsv")
    queries = {q: t for q, t in read_queries(root / "queries.jsonl").items() if q in qrels}  # BEIR: split's queries
    corpus = read_corpus(root / "corpus.jsonl")
    ids = list(corpus)
    return _assemble(
        spec, max_queries, seed, source=f"beir:{root} ({spec.split})", queries=queries, qrels=qrels,
        rank=lambda qids: bm25_rank(ids, [corpus[d] for d in ids], {q: queries[q] for q in qids}, spec.top_k, True),
        texts=lambda wanted: corpus, protocol=_bm25_protocol(True),
    )  # fmt: skip


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


# --- ir_datasets -------------------------------------------------------------------------------------------------
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


def load_ir_dataset(ds, spec: DatasetSpec, max_queries: int | None = None, seed: int = 0,
                    dataset_id: str | None = None) -> RerankDataset:
    """Load an ir_datasets dataset object (from ``ir_datasets.load`` or ``ir_datasets.create_dataset``)."""
    dataset_id = dataset_id or spec.ir_datasets or "<ir_datasets object>"
    for part in ("queries", "qrels"):
        if not getattr(ds, f"has_{part}")():
            raise DatasetError(f"ir_datasets {dataset_id!r} has no {part}")
    queries = {q.query_id: _ir_query_text(q) for q in ds.queries_iter()}
    qrels: dict[str, dict[str, int]] = {}
    for r in ds.qrels_iter():
        qrels.setdefault(r.query_id, {})[r.doc_id] = int(r.relevance)
    common = dict(spec=spec, max_queries=max_queries, seed=seed, source=f"ir_datasets:{dataset_id}",
                  queries=queries, qrels=qrels)
    if ds.has_scoreddocs():
        judged = {q for q, docs in qrels.items() if docs}
        run: dict[str, dict[str, float]] = {}
        for sd in ds.scoreddocs_iter():
            if sd.query_id in judged:
                run.setdefault(sd.query_id, {})[sd.doc_id] = float(sd.score)
        ranked = _ranked(run)
        return _assemble(
            **common, rank=lambda qids: ranked, texts=lambda ids: _ir_doc_texts(ds, ids),
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
        rank=lambda qids: bm25_rank(ids, [corpus[d] for d in ids], {q: queries[q] for q in qids}, spec.top_k,
                                    identical),
        texts=lambda wanted: corpus, protocol=_bm25_protocol(identical),
    )
