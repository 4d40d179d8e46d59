"""Triplet miners over a :class:`~.querylog.QueryLog`.

``mine_tribrid`` reproduces TriBridRAG's ``mine_triplets_from_query_log`` (``server/training/triplet_miner.py``):
for each feedback event with an event_id and a signal in {thumbsup, star4, star5, click} (case-insensitive) whose
query event is known, positive = the ``doc_id`` when the signal is exactly "click" and a doc_id is given, else
``top_paths[0]``; negative = the first other ``top_paths`` entry; (query, positive, negative) deduplicated.

``mine_improved`` also uses negative feedback: thumbsdown, noclick, star1 and star2 mark their ``doc_id`` (else
``top_paths[0]``) as a negative of that event; each positive is paired with the event's explicit negatives first,
then the other shown paths in rank order, up to ``negatives_per_positive`` negatives. A doc that is a positive
of the event is never its negative.
"""

from __future__ import annotations

from pydantic import BaseModel

from .querylog import QueryLog, Triplet

TRIBRID_POSITIVE = frozenset({"thumbsup", "star4", "star5", "click"})
IMPROVED_NEGATIVE = frozenset({"thumbsdown", "noclick", "star1", "star2"})
MINERS = ("tribrid", "improved")


class MineStats(BaseModel):
    feedback_with_event_id: int = 0
    ignored_signals: int = 0
    unknown_event_id: int = 0
    no_negative: int = 0
    triplets: int = 0


def _dedup(triplets, used, q, pos, neg, out) -> None:
    key = (q, pos, neg)
    if q and pos and neg and key not in used:
        used.add(key)
        out.append(Triplet(query=q, positive=pos, negative=neg))


def mine_tribrid(log: QueryLog, max_triplets: int | None = None) -> tuple[list[Triplet], MineStats]:
    out: list[Triplet] = []
    used: set = set()
    st = MineStats()
    for fb in log.feedback:
        if not fb.event_id or not fb.signal:
            continue
        st.feedback_with_event_id += 1
        if fb.signal.strip().lower() not in TRIBRID_POSITIVE:
            st.ignored_signals += 1
            continue
        q = log.queries.get(fb.event_id)
        if q is None:
            st.unknown_event_id += 1
            continue
        pos = fb.doc_id if (fb.signal == "click" and fb.doc_id) else (q.top_paths[0] if q.top_paths else None)
        neg = next((p for p in q.top_paths if p != pos), None) if pos else None
        if not pos or not neg:
            st.no_negative += 1
            continue
        _dedup(None, used, q.query, pos, neg, out)
        if max_triplets is not None and len(out) >= max_triplets:
            break
    st.triplets = len(out)
    return out, st


def mine_improved(
    log: QueryLog, negatives_per_positive: int = 4, max_triplets: int | None = None
) -> tuple[list[Triplet], MineStats]:
    if negatives_per_positive < 1:
        raise ValueError(f"negatives_per_positive must be >= 1, got {negatives_per_positive}")
    st = MineStats()
    pos_of: dict[str, list[str]] = {}
    neg_of: dict[str, list[str]] = {}
    for fb in log.feedback:
        if not fb.event_id or not fb.signal:
            continue
        st.feedback_with_event_id += 1
        sig = fb.signal.strip().lower()
        q = log.queries.get(fb.event_id)
        if sig not in TRIBRID_POSITIVE and sig not in IMPROVED_NEGATIVE:
            st.ignored_signals += 1
            continue
        if q is None:
            st.unknown_event_id += 1
            continue
        doc = fb.doc_id or (q.top_paths[0] if q.top_paths else None)
        if doc:
            bucket = pos_of if sig in TRIBRID_POSITIVE else neg_of
            if doc not in bucket.setdefault(fb.event_id, []):
                bucket[fb.event_id].append(doc)
    out: list[Triplet] = []
    used: set = set()
    for event_id, positives in pos_of.items():
        q = log.queries[event_id]
        pool = [d for d in [*neg_of.get(event_id, []), *q.top_paths] if d not in positives]
        negatives = list(dict.fromkeys(pool))[:negatives_per_positive]
        if not negatives:
            st.no_negative += 1
        for pos in positives:
            for neg in negatives:
                _dedup(None, used, q.query, pos, neg, out)
                if max_triplets is not None and len(out) >= max_triplets:
                    st.triplets = len(out)
                    return out, st
    st.triplets = len(out)
    return out, st


def mine(log: QueryLog, miner: str = "tribrid", **options) -> tuple[list[Triplet], MineStats]:
    if miner == "tribrid":
        return mine_tribrid(log, **options)
    if miner == "improved":
        return mine_improved(log, **options)
    raise ValueError(f"unknown miner {miner!r} (known: {', '.join(MINERS)})")
