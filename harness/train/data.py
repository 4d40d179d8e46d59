"""A suite's ``train:`` section, its data: labeled pairs, the dev split by query, and the held-out check.

``harness run`` on a suite with a ``train:`` section (validated by ``harness.suite``, documented in
docs/suites.md) does, before measuring anything (the jobs themselves: :mod:`harness.train.plan`):

1. **Data** (:func:`build_training_data`): every source becomes labeled pairs. A candidate list + qrels gives its
   *judged* pairs (candidates with a judgment for their query; unjudged candidates are not used), label 1 when
   the grade >= ``label_threshold``, else 0. A JSONL file gives its records (pairs, triplets, FlagEmbedding
   groups; ``mlx_cross_encoder.training.data``). Pairs are deduplicated on (query, document): the same
   judged pair in several candidate lists (or JSONL files) is kept once, from the first source that has it.
2. **Dev split by query** (:func:`split_queries`): queries (by normalized text, :func:`normalize_query`) are
   ordered by sha256("<seed>:<query>") and the first ``round(fraction * n)`` (at least one when the fraction
   is > 0) are the dev queries; all their pairs are dev pairs, the others' are training pairs. Deterministic
   and the same on every machine. The trainers evaluate the dev queries every ``eval_steps`` and keep the best
   checkpoint by dev nDCG@10 (graded gains; binary measures at ``label_threshold``).
3. **Held-out check** (:func:`check_held_out`): no query of the training sources (train or dev split) may be
   a query of a suite dataset, compared by normalized query text and, for sources with query ids, by qid.
   An overlap refuses the run (``SuiteError``) before anything is trained.
4. **Sampling** (:func:`sample_pairs`, :func:`sample_dev_docs`): per model, ``max_pairs`` training pairs
   chosen deterministically (sha256 of seed, query and document; all when null) and ``dev_max_docs`` judged
   documents per dev query (stratified: positives and negatives in their proportion, at least one positive
   when the query has one).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..suite import DatasetSpec, SuiteError, TrainSpec


class TrainDataError(ValueError):
    """A training source cannot be read or gives no usable pairs."""


# --- pairs ---------------------------------------------------------------------------------------------------------
def normalize_query(text: str) -> str:
    """What counts as "the same query": Unicode NFKC, case-folded, whitespace collapsed, surrounding punctuation
    dropped (``"What is X?"`` == ``"what is  x"``)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = " ".join(text.split())
    return re.sub(r"^[\W_]+|[\W_]+$", "", text)


@dataclass
class Pair:
    query_key: str  # normalize_query(query): the dev split and the held-out check go by it
    query: str
    document: str
    label: float  # what the trainers learn: 1/0 from grade >= label_threshold, or the JSONL label
    grade: int  # relevance grade for the dev metric (JSONL: label_threshold when label > 0.5, else 0)
    source: int  # index in train.data
    qid: str | None = None
    docid: str | None = None
    teacher: float | None = None
    judged: bool = True  # False: an unjudged candidate (label 0, grade 0: trec_eval's convention)

    def record(self, teacher: bool = True) -> dict[str, Any]:
        rec: dict[str, Any] = {"query": self.query, "document": self.document, "label": self.label, "grade": self.grade}
        if teacher and self.teacher is not None:
            rec["score"] = self.teacher
        return rec


def judged_pairs(
    candidates: Path, qrels: Path, label_threshold: int, source: int = 0, unjudged: bool = False
) -> list[Pair]:
    """The judged pairs of a candidate-list JSON (``harness.datasets.read_candidates`` format) and TREC qrels, in
    the file's order: candidates whose (qid, docid) has a grade; label = grade >= ``label_threshold``. With
    ``unjudged``, every candidate of a judged query: the unjudged ones as negatives (label 0, grade 0,
    ``judged=False``), as the test's metric counts them."""
    from ..sources import read_candidates, read_trec_qrels

    queries, ranked, texts = read_candidates(candidates)
    judgments = read_trec_qrels(qrels)
    out = []
    for qid, query in queries.items():
        judged = judgments.get(qid, {})
        for docid, _ in ranked.get(qid, []):
            if docid not in judged and unjudged and judged:
                out.append(Pair(normalize_query(query), query, texts[docid], 0.0, 0, source, qid, docid, judged=False))
            elif docid in judged:
                grade = int(judged[docid])
                out.append(
                    Pair(
                        normalize_query(query),
                        query,
                        texts[docid],
                        1.0 if grade >= label_threshold else 0.0,
                        grade,
                        source,
                        qid=qid,
                        docid=docid,
                    )
                )
    return out


def jsonl_pairs(path: Path, label_threshold: int, source: int = 0) -> list[Pair]:
    """Pairs of a JSONL file of pair / triplet / group records (``mlx_cross_encoder.training.data``)."""
    from mlx_cross_encoder.training.data import DataFormatError, load_groups

    try:
        groups = load_groups(path)
    except DataFormatError as exc:
        raise TrainDataError(str(exc)) from None
    out = []
    for g in groups:
        for i, (doc, label) in enumerate(zip(g.documents, g.labels)):
            teacher = g.teacher[i] if g.teacher is not None else None
            out.append(
                Pair(
                    normalize_query(g.query),
                    g.query,
                    doc,
                    float(label),
                    label_threshold if label > 0.5 else 0,
                    source,
                    teacher=teacher,
                )
            )
    return out


def _hash(*parts: Any) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()


def split_queries(keys: Iterable[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(train, dev) query keys: ordered by sha256("<seed>:<key>"), the first ``round(fraction * n)`` are dev (at
    least one when ``fraction > 0``, never all of them). Both lists are returned sorted."""
    keys = sorted(set(keys))
    n_dev = round(fraction * len(keys))
    if fraction > 0:
        n_dev = max(n_dev, 1)
    if keys and n_dev >= len(keys):
        raise TrainDataError(
            f"the dev split (fraction {fraction:g}) leaves no training query: {len(keys)} queries in all"
        )
    order = sorted(keys, key=lambda k: hashlib.sha256(f"{seed}:{k}".encode()).hexdigest())
    return sorted(order[n_dev:]), sorted(order[:n_dev])


def sample_pairs(pairs: list[Pair], n: int | None, seed: int) -> list[Pair]:
    """``n`` pairs chosen by sha256(seed, query, document) (all when ``n`` is None), kept in their input order.
    Nested: the pairs of a smaller sample are in every larger one with the same seed."""
    if n is None or n >= len(pairs):
        return list(pairs)
    chosen = {id(p) for p in sorted(pairs, key=lambda p: _hash(seed, p.query_key, p.document))[:n]}
    return [p for p in pairs if id(p) in chosen]


def sample_dev_docs(pairs: list[Pair], max_docs: int | None, seed: int) -> list[Pair]:
    """At most ``max_docs`` documents per dev query, positives and negatives in proportion (at least one of each
    kind the query has, when ``max_docs`` allows), chosen by sha256; input order kept."""
    if max_docs is None:
        return list(pairs)
    by_query: dict[str, list[Pair]] = {}
    for p in pairs:
        by_query.setdefault(p.query_key, []).append(p)
    keep: set[int] = set()
    for key, group in by_query.items():
        if len(group) <= max_docs:
            keep |= {id(p) for p in group}
            continue
        pos = sorted((p for p in group if p.label > 0.5), key=lambda p: _hash(seed, key, p.document))
        neg = sorted((p for p in group if p.label <= 0.5), key=lambda p: _hash(seed, key, p.document))
        n_pos = round(max_docs * len(pos) / len(group))
        n_pos = min(len(pos), max(n_pos, 1 if pos else 0), max_docs - (1 if neg and max_docs > 1 else 0))
        keep |= {id(p) for p in pos[:n_pos] + neg[: max_docs - n_pos]}
    return [p for p in pairs if id(p) in keep]


@dataclass
class TrainingData:
    """The deduplicated pool of a train section, split by query."""

    pairs: list[Pair]  # train + dev, deduplicated, in source order
    train_keys: list[str]
    dev_keys: list[str]
    queries: dict[str, dict[str, Any]]  # query key -> {"text", "qids"}
    sources: list[dict[str, Any]]  # per source: path(s), pairs read, pairs kept after deduplication
    teacher: dict[str, Any] | None = None  # the teacher run's coverage (add_teacher_scores)

    @property
    def train_pool(self) -> list[Pair]:
        keys = set(self.train_keys)
        return [p for p in self.pairs if p.query_key in keys]

    @property
    def dev_pool(self) -> list[Pair]:
        keys = set(self.dev_keys)
        return [p for p in self.pairs if p.query_key in keys]


def add_teacher_scores(pairs: list[Pair], run_file: Path) -> dict[str, Any]:
    """Set ``Pair.teacher`` from a TREC run of teacher scores (``qid Q0 docid rank score tag``) by (qid, docid);
    pairs without a qid/docid or without a line in the run keep ``teacher=None``. Returns the coverage."""
    from ..sources import read_trec_run

    run = read_trec_run(run_file)
    covered = 0
    for p in pairs:
        score = run.get(p.qid or "", {}).get(p.docid or "")
        if score is not None:
            p.teacher, covered = score, covered + 1
    return {"file": str(run_file), "pairs": len(pairs), "with_teacher": covered}


def build_training_data(train: TrainSpec, unjudged: bool = False) -> TrainingData:
    """Read every source, deduplicate on (query, document), split by query (see the module docstring). With
    ``unjudged``, candidate lists give all their candidates (unjudged ones as negatives, ``Pair.judged`` False)."""
    pairs: list[Pair] = []
    seen: set[tuple[str, str]] = set()
    sources, queries = [], {}
    for i, src in enumerate(train.sources):
        try:
            if src.kind == "tribrid_triplets":
                from .tribrid_data import tribrid_pairs

                read = tribrid_pairs(src.tribrid_triplets, src.corpus_root, train.label_threshold, i)
            elif src.kind == "candidates":
                read = judged_pairs(src.candidates, src.qrels, train.label_threshold, i, unjudged)
            else:
                read = jsonl_pairs(src.jsonl, train.label_threshold, i)
        except TrainDataError:
            raise
        except (OSError, ValueError) as exc:
            raise TrainDataError(f"train.data[{i}] ({src.describe()}): {exc}") from exc
        kept = 0
        for p in read:
            key = (p.query_key, p.document)
            if key in seen:
                continue
            seen.add(key)
            pairs.append(p)
            kept += 1
            q = queries.setdefault(p.query_key, {"text": p.query, "qids": set()})
            if p.qid is not None:
                q["qids"].add(p.qid)
        if not read:
            raise TrainDataError(
                f"train.data[{i}] ({src.describe()}): no judged pairs (do the qrels belong to these candidates?)"
                if src.kind == "candidates"
                else f"train.data[{i}] ({src.describe()}): no records"
            )
        sources.append(
            {
                "source": src.describe(),
                "kind": src.kind,
                "pairs_read": len(read),
                "pairs_kept": kept,
                "queries": len({p.query_key for p in read}),
            }
        )
    for p in pairs:  # one text per query key (its first spelling), so the trainers group a query's pairs together
        p.query = queries[p.query_key]["text"]
    train_keys, dev_keys = split_queries(queries, train.dev.fraction, train.dev.seed)
    data = TrainingData(pairs, train_keys, dev_keys, queries, sources)
    if train.teacher is not None:
        data.teacher = add_teacher_scores(pairs, train.teacher)
    return data


# --- held-out check ------------------------------------------------------------------------------------------------
def dataset_queries(spec: DatasetSpec) -> dict[str, str]:
    """qid -> text of every query a suite dataset's source holds (judged or not; before any subset)."""
    from ..sources import read_candidates, read_queries

    kind = spec.source_kind
    if kind == "candidates":
        return read_candidates(spec.candidates)[0]
    if kind in ("trec_run", "judged_pool"):  # both name the collection's queries file
        return read_queries(spec.queries)
    if kind == "beir":
        from ..sources import read_beir_qrels

        split = read_beir_qrels(Path(spec.beir) / "qrels" / f"{spec.split}.tsv")
        return {q: t for q, t in read_queries(Path(spec.beir) / "queries.jsonl").items() if q in split}
    if kind == "ir_datasets":
        import ir_datasets

        from ..sources import _ir_query_text

        return {q.query_id: _ir_query_text(q) for q in ir_datasets.load(spec.ir_datasets).queries_iter()}
    raise ValueError(f"unknown source kind {kind!r}")  # suite validation prevents it


def check_held_out(data: TrainingData, datasets: list[DatasetSpec], source: str = "train") -> dict[str, Any]:
    """Raise SuiteError when a training (or dev) query is a query of a suite dataset, by normalized text or qid;
    returns what was checked (for the results file)."""
    by_qid = {qid: key for key, q in data.queries.items() for qid in q["qids"]}
    problems, checked = [], {}
    for ds in datasets:
        try:
            queries = dataset_queries(ds)
        except Exception as exc:
            raise SuiteError(
                f"{source}: cannot read the queries of dataset {ds.name} to check that the training data "
                f"hold none of them: {type(exc).__name__}: {exc}"
            ) from exc
        checked[ds.name] = len(queries)
        hits = []
        for qid, text in queries.items():
            key = normalize_query(text)
            if key in data.queries:
                hits.append(f"{qid} {text!r} (same text)")
            elif qid in by_qid:
                hits.append(f"{qid} {text!r} (same qid as training query {data.queries[by_qid[qid]]['text']!r})")
        if hits:
            shown = "; ".join(hits[:5]) + (f"; and {len(hits) - 5} more" if len(hits) > 5 else "")
            problems.append(
                f"{source}: the training data hold {len(hits)} queries of evaluation dataset {ds.name}: "
                f"{shown}. Training and dev queries must be held out from every evaluated dataset: "
                "remove that source from train.data (or the dataset from datasets)"
            )
    if problems:
        raise SuiteError(problems)
    return {"datasets": checked, "by": "normalized query text and qid", "overlap": 0}
