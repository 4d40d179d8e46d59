"""Training and evaluation records: read, validate, normalise and batch them.

Three record shapes are accepted (mixed freely in one data set):

* labeled pairs ``{"query", "document", "label"}`` (label 0/1, or a float in [0, 1]; optional teacher
  ``"score"`` for MSE distillation);
* triplets ``{"query", "positive", "negative"}``, which stand for two labeled pairs (1 and 0);
* groups ``{"query", "pos": [...], "neg": [...], "pos_scores"?, "neg_scores"?}``: FlagEmbedding's reranker
  fine-tuning format, with optional teacher scores aligned with ``pos``/``neg``.

Every record becomes a :class:`Group` (a query with its positive and negative documents); pointwise losses see
the groups flattened to pairs, listwise/margin losses see each group as one example of ``group_size`` documents
(one positive first, then sampled negatives). Batch order and negative sampling depend only on
``(seed, epoch)``, so an interrupted run that resumes at ``(epoch, batch)`` sees exactly the same batches.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


class DataFormatError(ValueError):
    """A training or evaluation record is malformed; the message names the record and the field."""


@dataclass
class Group:
    """A query with its judged documents; ``labels`` and ``teacher`` are aligned with ``documents``."""

    query: str
    documents: list[str]
    labels: list[float]
    teacher: list[float] | None = None
    source: str = ""  # "record 3" / "line 4 of x.jsonl", for error messages

    @property
    def positives(self) -> list[int]:
        return [i for i, y in enumerate(self.labels) if y > 0.5]

    @property
    def negatives(self) -> list[int]:
        return [i for i, y in enumerate(self.labels) if y <= 0.5]


@dataclass
class Batch:
    """What the trainer scores: pairs in order, plus what the loss needs.

    Pointwise batches: ``labels``/``teacher`` have one entry per pair. Grouped batches (``group_size`` set):
    pairs are ``n_groups * group_size`` long, each group's positive first.
    """

    pairs: list[tuple[str, str]]
    labels: np.ndarray  # float32, one per pair
    teacher: np.ndarray | None = None  # float32, one per pair (distillation targets)
    group_size: int | None = None
    n_examples: int = 0  # pairs (pointwise) or groups (grouped): the loss averages over these
    meta: dict[str, Any] = field(default_factory=dict)

    def split(self, parts: int) -> list[Batch]:
        """At most ``parts`` consecutive batches of whole examples (pairs, or groups), sizes differing by at most
        one; their example-weighted mean loss is this batch's mean loss."""
        per = self.group_size or 1
        chunks = [c for c in np.array_split(np.arange(self.n_examples), min(parts, self.n_examples)) if len(c)]
        out = []
        for c in chunks:
            lo, hi = int(c[0]) * per, (int(c[-1]) + 1) * per
            teacher = self.teacher[lo:hi] if self.teacher is not None else None
            out.append(Batch(self.pairs[lo:hi], self.labels[lo:hi], teacher, self.group_size, len(c), self.meta))
        return out


# -- reading -----------------------------------------------------------------------------------------------


def read_records(source: Any) -> list[tuple[str, Any]]:
    """``[(where, record)]`` from a list of dicts, a ``.jsonl``/``.json`` path, or an iterable of dicts."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise DataFormatError(f"data file not found: {path}")
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DataFormatError(f"{path} is not valid JSON: {exc}") from exc
            if not isinstance(data, list):
                raise DataFormatError(f"{path} must hold a JSON list of records, got {type(data).__name__}")
            return [(f"record {i} of {path.name}", r) for i, r in enumerate(data)]
        out = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                out.append((f"line {lineno} of {path.name}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise DataFormatError(f"line {lineno} of {path}: not valid JSON ({exc.msg})") from exc
        return out
    if isinstance(source, dict) or isinstance(source, str):
        raise DataFormatError("data must be a list of records (dicts) or a path to a .jsonl/.json file")
    if not isinstance(source, Iterable):
        raise DataFormatError(f"data must be a list of records or a file path, got {type(source).__name__}")
    return [(f"record {i}", r) for i, r in enumerate(source)]


def _text(rec: dict, key: str, where: str) -> str:
    value = rec[key]
    if not isinstance(value, str):
        raise DataFormatError(f"{where}: field {key!r} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise DataFormatError(f"{where}: field {key!r} is an empty string")
    return value


def _texts(rec: dict, key: str, where: str, allow_empty: bool) -> list[str]:
    value = rec[key]
    if not isinstance(value, list):
        raise DataFormatError(f"{where}: field {key!r} must be a list of strings, got {type(value).__name__}")
    if not value and not allow_empty:
        raise DataFormatError(f"{where}: field {key!r} is an empty list")
    for i, text in enumerate(value):
        if not isinstance(text, str) or not text.strip():
            raise DataFormatError(f"{where}: field {key!r}[{i}] must be a non-empty string, got {text!r:.60}")
    return list(value)


def _number(value: Any, key: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataFormatError(f"{where}: field {key!r} must be a finite number, got {value!r:.60}")
    return float(value)


def _scores(rec: dict, key: str, n: int, where: str) -> list[float] | None:
    if key not in rec or rec[key] is None:
        return None
    value = rec[key]
    if not isinstance(value, list) or len(value) != n:
        got = f"{len(value)} values" if isinstance(value, list) else type(value).__name__
        raise DataFormatError(f"{where}: field {key!r} must be a list of {n} numbers (one per document), got {got}")
    return [_number(v, f"{key}[{i}]", where) for i, v in enumerate(value)]


def parse_record(rec: Any, where: str = "record") -> Group:
    """One record (pair, triplet or group) as a :class:`Group`; :class:`DataFormatError` names what is wrong."""
    if not isinstance(rec, dict):
        raise DataFormatError(f"{where}: must be a JSON object (dict), got {type(rec).__name__}")
    if "query" not in rec:
        raise DataFormatError(f"{where}: missing field 'query' (keys: {', '.join(map(str, rec)) or 'none'})")
    query = _text(rec, "query", where)
    if "pos" in rec or "neg" in rec:
        for key in ("pos", "neg"):
            if key not in rec:
                raise DataFormatError(f"{where}: group record has {'pos' if key == 'neg' else 'neg'!r} but no {key!r}")
        pos = _texts(rec, "pos", where, allow_empty=False)
        neg = _texts(rec, "neg", where, allow_empty=True)
        pos_scores = _scores(rec, "pos_scores", len(pos), where)
        neg_scores = _scores(rec, "neg_scores", len(neg), where)
        if (pos_scores is None) != (neg_scores is None):
            raise DataFormatError(f"{where}: give both 'pos_scores' and 'neg_scores' or neither")
        teacher = pos_scores + neg_scores if pos_scores is not None else None
        return Group(query, pos + neg, [1.0] * len(pos) + [0.0] * len(neg), teacher, where)
    if "positive" in rec or "negative" in rec:
        for key in ("positive", "negative"):
            if key not in rec:
                raise DataFormatError(f"{where}: triplet record is missing field {key!r}")
        return Group(query, [_text(rec, "positive", where), _text(rec, "negative", where)], [1.0, 0.0], None, where)
    if "document" in rec:
        if "label" not in rec:
            raise DataFormatError(f"{where}: pair record is missing field 'label' (0/1 or a float in [0, 1])")
        label = _number(rec["label"], "label", where)
        if not 0.0 <= label <= 1.0:
            raise DataFormatError(f"{where}: field 'label' must be in [0, 1], got {label}")
        teacher = [_number(rec["score"], "score", where)] if rec.get("score") is not None else None
        return Group(query, [_text(rec, "document", where)], [label], teacher, where)
    raise DataFormatError(
        f"{where}: cannot tell the record's shape from its keys ({', '.join(map(str, rec))}); expected "
        "{query, document, label}, {query, positive, negative} or {query, pos, neg[, pos_scores, neg_scores]}"
    )


def load_groups(source: Any) -> list[Group]:
    """All records of ``source`` as groups, in order (pairs stay one-document groups; see :func:`merge_by_query`)."""
    groups = [parse_record(rec, where) for where, rec in read_records(source)]
    if not groups:
        raise DataFormatError("no records: the data set is empty")
    return groups


def merge_by_query(groups: Sequence[Group]) -> list[Group]:
    """Groups of the same query text merged into one (first-seen order), e.g. labeled pairs into rankings."""
    merged: dict[str, Group] = {}
    for g in groups:
        if g.query not in merged:
            merged[g.query] = Group(g.query, [], [], [] if g.teacher is not None else None, g.source)
        m = merged[g.query]
        if (m.teacher is None) != (g.teacher is None):
            raise DataFormatError(f"{g.source}: teacher scores are given for some records of this query but not all")
        m.documents += g.documents
        m.labels += g.labels
        if g.teacher is not None:
            m.teacher += g.teacher
    return list(merged.values())


# -- batching ----------------------------------------------------------------------------------------------

from .settings import GROUPED_LOSSES, POINTWISE_LOSSES  # noqa: E402  (re-exported: the trainers import them here)


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(epoch)])


class Batcher:
    """Deterministic batches for one loss: ``batches(epoch)`` depends only on ``(seed, epoch)``."""

    def __init__(
        self,
        groups: Sequence[Group],
        loss: str,
        batch_size: int,
        group_size: int = 8,
        seed: int = 0,
        shuffle: bool = True,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.loss, self.batch_size, self.seed, self.shuffle = loss, batch_size, seed, shuffle
        if loss in POINTWISE_LOSSES:
            self.items: list[tuple[str, str, float, float | None]] = []
            for g in groups:
                if loss == "mse" and g.teacher is None:
                    raise DataFormatError(f"{g.source}: loss 'mse' needs teacher scores ('score' or pos/neg_scores)")
                for i, doc in enumerate(g.documents):
                    self.items.append((g.query, doc, g.labels[i], g.teacher[i] if g.teacher else None))
            self.group_size = None
        elif loss in GROUPED_LOSSES:
            if group_size < 2:
                raise ValueError(f"group_size must be >= 2 for loss {loss!r}, got {group_size}")
            self.group_size = group_size
            self.groups = []
            for g in merge_by_query(groups):
                if loss == "listwise_kl":  # any documents of the query; the teacher says how they rank
                    if g.teacher is None or len(g.documents) < 2:
                        raise DataFormatError(
                            f"{g.source}: loss 'listwise_kl' needs teacher scores and at least two documents per "
                            f"query; query {g.query!r:.60} has {len(g.documents)}"
                            + ("" if g.teacher is not None else " and no teacher scores")
                        )
                    self.groups.append(g)
                    continue
                if not g.positives or not g.negatives:
                    raise DataFormatError(
                        f"{g.source}: loss {loss!r} needs at least one positive and one negative document per "
                        f"query; query {g.query!r:.60} has {len(g.positives)} positive, {len(g.negatives)} negative"
                    )
                if loss == "margin_mse" and g.teacher is None:
                    raise DataFormatError(f"{g.source}: loss 'margin_mse' needs teacher scores (pos/neg_scores)")
                self.groups.append(g)
        else:
            raise ValueError(f"unknown loss {loss!r}; use one of {POINTWISE_LOSSES + GROUPED_LOSSES}")

    def __len__(self) -> int:
        n = len(self.items) if self.group_size is None else len(self.groups)
        return math.ceil(n / self.batch_size)

    @property
    def n_examples(self) -> int:
        return len(self.items) if self.group_size is None else len(self.groups)

    def batches(self, epoch: int) -> Iterator[Batch]:
        rng = epoch_rng(self.seed, epoch)
        order = rng.permutation(self.n_examples) if self.shuffle else np.arange(self.n_examples)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            yield self._pointwise(idx) if self.group_size is None else self._grouped(idx, rng)

    def _pointwise(self, idx) -> Batch:
        items = [self.items[i] for i in idx]
        labels = np.array([it[2] for it in items], dtype=np.float32)
        teacher = np.array([it[3] for it in items], dtype=np.float32) if self.loss == "mse" else None
        return Batch([(it[0], it[1]) for it in items], labels, teacher, None, len(items))

    def _grouped(self, idx, rng: np.random.Generator) -> Batch:
        """Per group: one positive (sampled), then ``group_size - 1`` negatives (sampled, with replacement
        only when the group has too few), as FlagEmbedding's reranker training does."""
        pairs, labels, teacher = [], [], []
        k = self.group_size - 1
        for i in idx:
            g = self.groups[i]
            if self.loss == "listwise_kl":  # group_size documents of the query's list, any labels
                n = len(g.documents)
                members = [int(j) for j in rng.choice(n, size=self.group_size, replace=n < self.group_size)]
            else:
                pos = g.positives[int(rng.integers(len(g.positives)))]
                negs = g.negatives
                chosen = rng.choice(len(negs), size=k, replace=len(negs) < k)
                members = [pos] + [negs[j] for j in chosen]
            pairs += [(g.query, g.documents[m]) for m in members]
            labels += [g.labels[m] for m in members]
            if g.teacher is not None:
                teacher += [g.teacher[m] for m in members]
        teacher_arr = np.array(teacher, dtype=np.float32) if self.loss in ("margin_mse", "listwise_kl") else None
        return Batch(pairs, np.array(labels, dtype=np.float32), teacher_arr, self.group_size, len(idx))


# -- evaluation data ---------------------------------------------------------------------------------------


def eval_rankings(source: Any) -> tuple[dict[str, str], dict[str, list[str]], dict[str, dict[str, float]]]:
    """Dev data as ``(queries, documents, qrels)`` keyed by generated ids (``q0``, ``q0-d3``).

    Records of the same query are merged into one ranking; labels become relevance grades.
    """
    groups = merge_by_query(
        source if isinstance(source, list) and source and isinstance(source[0], Group) else load_groups(source)
    )
    queries, docs, qrels = {}, {}, {}
    for qi, g in enumerate(groups):
        qid = f"q{qi}"
        queries[qid] = g.query
        docs[qid] = list(g.documents)
        qrels[qid] = {f"{qid}-d{di}": float(y) for di, y in enumerate(g.labels)}
    return queries, docs, qrels
