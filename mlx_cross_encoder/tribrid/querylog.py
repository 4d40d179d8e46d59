"""TriBridRAG's query log (``data/logs/queries.jsonl``; writer ``server/observability/query_log.py``, reader
``server/training/triplet_miner.py``) and triplet JSONL (``server/training/reranker_trainer.py load_triplets``).

Query events: ``kind`` (or ``type``) in chat / search / query with ``event_id``, ``query`` (or ``query_raw``),
``top_paths`` (a list of corpus-relative paths; anything else reads as ``[]``), ``corpus_id`` / ``corpus_ids``.
Feedback events: ``kind``/``type`` == "feedback" with optional ``event_id``, ``signal``, ``doc_id``. Reading is
never fatal: malformed lines, unknown kinds and unknown signals are counted in :class:`LogStats`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, Field

#: the signals TriBridRAG's /api/feedback accepts
KNOWN_SIGNALS = frozenset({"thumbsup", "thumbsdown", "click", "noclick", "note", *(f"star{i}" for i in range(1, 6))})
QUERY_KINDS = frozenset({"chat", "search", "query"})


class QueryEvent(BaseModel):
    event_id: str
    query: str
    top_paths: tuple[str, ...] = ()


class FeedbackEvent(BaseModel):
    event_id: str | None = None
    signal: str | None = None
    doc_id: str | None = None


class LogStats(BaseModel):
    lines: int = 0
    malformed_lines: int = 0
    query_events: int = 0
    feedback_events: int = 0
    out_of_scope: int = 0
    unknown_kind: int = 0
    incomplete_query_events: int = 0
    unknown_signals: dict[str, int] = Field(default_factory=dict)


class QueryLog(BaseModel):
    """Query events by event_id (a later event with the same id replaces the earlier, as in TriBridRAG) and
    feedback events in file order."""

    queries: dict[str, QueryEvent] = Field(default_factory=dict)
    feedback: list[FeedbackEvent] = Field(default_factory=list)
    stats: LogStats = Field(default_factory=LogStats)


def iter_jsonl(path: Path, stats: LogStats) -> Iterator[dict]:
    """JSON objects of a JSONL file; blank lines skipped, other non-objects counted as malformed."""
    if not path.exists():
        return
    with path.open("r", encoding="utf-8", errors="replace") as f:
        for line in f:
            ln = line.strip()
            if not ln:
                continue
            stats.lines += 1
            try:
                obj = json.loads(ln)
            except ValueError:
                stats.malformed_lines += 1
                continue
            if not isinstance(obj, dict):
                stats.malformed_lines += 1
                continue
            yield obj


def _in_scope(obj: dict, corpus_id: str | None) -> bool:
    if not corpus_id:
        return True
    cid = str(corpus_id).strip()
    one, many = obj.get("corpus_id"), obj.get("corpus_ids")
    if isinstance(one, str) and one.strip() == cid:
        return True
    return isinstance(many, list) and any(isinstance(x, str) and x.strip() == cid for x in many)


def read_query_log(path, corpus_id: str | None = None) -> QueryLog:
    """Parse a TriBridRAG query log the way ``mine_triplets_from_query_log`` does (see the module docstring)."""
    log = QueryLog()
    st = log.stats
    for obj in iter_jsonl(Path(path), st):
        kind = str(obj.get("kind") or obj.get("type") or "").strip().lower()
        if kind in QUERY_KINDS:
            if not _in_scope(obj, corpus_id):
                st.out_of_scope += 1
                continue
            event_id, query = obj.get("event_id"), obj.get("query") or obj.get("query_raw")
            top = obj.get("top_paths")
            if not isinstance(event_id, str) or not isinstance(query, str):
                st.incomplete_query_events += 1
                continue
            if not isinstance(top, list) or not all(isinstance(p, str) for p in top):
                top = []
            log.queries[event_id] = QueryEvent(event_id=event_id, query=query, top_paths=tuple(top))
            st.query_events += 1
        elif kind == "feedback":
            fb = FeedbackEvent(
                **{k: obj.get(k) if isinstance(obj.get(k), str) else None for k in ("event_id", "signal", "doc_id")}
            )
            if fb.signal is not None and fb.signal.strip().lower() not in KNOWN_SIGNALS:
                st.unknown_signals[fb.signal] = st.unknown_signals.get(fb.signal, 0) + 1
            log.feedback.append(fb)
            st.feedback_events += 1
        else:
            st.unknown_kind += 1
    return log


class Triplet(BaseModel):
    """One line of TriBridRAG's triplet JSONL: corpus-relative paths, not text."""

    query: str
    positive: str
    negative: str


def read_triplets(path, stats: LogStats | None = None) -> list[Triplet]:
    """TriBridRAG's ``load_triplets``: string fields, stripped, none empty; other lines counted as malformed."""
    stats = stats if stats is not None else LogStats()
    out = []
    for obj in iter_jsonl(Path(path), stats):
        vals = [obj.get(k) for k in ("query", "positive", "negative")]
        if not all(isinstance(v, str) and v.strip() for v in vals):
            stats.malformed_lines += 1
            continue
        out.append(Triplet(query=vals[0].strip(), positive=vals[1].strip(), negative=vals[2].strip()))
    return out


def write_triplets(triplets: list[Triplet], path, mode: str = "replace") -> None:
    """TriBridRAG's output: one ``{"query","positive","negative"}`` JSON object per line (replace or append)."""
    if mode not in ("replace", "append"):
        raise ValueError(f"mode must be 'replace' or 'append', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w" if mode == "replace" else "a", encoding="utf-8") as out:
        for t in triplets:
            out.write(json.dumps(t.model_dump(), ensure_ascii=False) + "\n")
