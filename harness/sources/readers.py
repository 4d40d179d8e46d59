"""File readers of the dataset sources: TREC qrels and runs, BEIR qrels, corpora, queries, candidate lists.

Every reader refuses what would be silently wrong (see harness.sources' conventions) with the file and the line or
entry named: conflicting judgments, non-finite scores, non-string texts, a docid with two texts, non-UTF-8 text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

from ..metrics import trec_order

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
        raise DatasetError(
            f"{path}:{n}: query {qid} document {docid} is judged {grade} here and {old} on line "
            f"{where[qid, docid]}: conflicting judgments"
        )
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
            raise DatasetError(
                f"{path}:{n}: expected a TREC run line 'qid Q0 docid rank score tag', got {line!r}"
            ) from None
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
                raise DatasetError(
                    f"{path}: entry {i}, hit {j}: docid {docid!r} has another content than at "
                    f"{first_seen[docid]}; a docid must name one document in the whole file"
                )
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
        raise DatasetError(
            f"{where}: content must be a string, got {'null' if h['content'] is None else repr(h['content'])}"
        )
    field = "score" if "score" in h else "rank"
    value = h[field]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DatasetError(f"{where}: {field} must be a finite number, got {value!r}")
    return str(h["docid"]), h["content"], float(value) if field == "score" else -float(value)
