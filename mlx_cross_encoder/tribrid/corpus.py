"""Triplets of corpus-relative paths -> text -> labeled pairs, as TriBridRAG's ``materialize_triplets``
(``server/training/reranker_trainer.py``: ``_resolve_doc_path`` refuses absolute paths and anything resolving
outside the corpus root; ``_read_text`` keeps the first ``snippet_chars`` characters, read with errors ignored,
then stripped). Skips are counted, never fatal. ``chunk_text`` reads a TriBridRAG chunk id
``{file_path}:{start}-{end}:{char_start}`` (``server/indexing/chunker.py``) as that file's lines start..end.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from .querylog import Triplet

SNIPPET_CHARS = 2000
_CHUNK = re.compile(r"^(?P<path>.+):(?P<start>\d+)-(?P<end>\d+):(?P<char>\d+)$")


class MaterializeStats(BaseModel):
    triplets_in: int = 0
    triplets_out: int = 0
    refused_paths: int = 0
    missing_positive: int = 0
    missing_negative: int = 0
    empty_positive: int = 0
    empty_negative: int = 0


class TextTriplet(BaseModel):
    query: str
    positive_text: str
    negative_text: str


def resolve_doc_path(corpus_root, doc_id: str) -> Path | None:
    """The file of a corpus-relative path; None for an empty, absolute or escaping path."""
    p = Path(str(doc_id or "").strip())
    if not str(doc_id or "").strip() or p.is_absolute():
        return None
    root = Path(corpus_root).resolve()
    resolved = (root / p).resolve()
    try:
        resolved.relative_to(root)
    except ValueError:
        return None
    return resolved


def read_snippet(path: Path, snippet_chars: int) -> str:
    try:
        raw = path.read_text(encoding="utf-8", errors="ignore")
    except OSError:
        return ""
    return raw[: max(0, snippet_chars)]


def chunk_text(corpus_root, chunk_id: str, snippet_chars: int = SNIPPET_CHARS) -> str | None:
    """Lines start..end (1-based, inclusive) of a chunk id's file; None if not a chunk id or unreadable."""
    m = _CHUNK.match(chunk_id)
    path = resolve_doc_path(corpus_root, m.group("path")) if m else None
    if path is None or not path.is_file():
        return None
    lines = read_snippet(path, 1 << 62).splitlines(keepends=True)
    return "".join(lines[int(m.group("start")) - 1 : int(m.group("end"))])[:snippet_chars]


def _text(corpus_root, doc: str, snippet_chars: int, chunks: bool) -> str | None:
    if chunks:
        text = chunk_text(corpus_root, doc, snippet_chars)
        if text is not None:
            return text.strip()
    path = resolve_doc_path(corpus_root, doc)
    if path is None or not path.is_file():
        return None
    return read_snippet(path, snippet_chars).strip()


def materialize(
    triplets: list[Triplet], corpus_root, snippet_chars: int = SNIPPET_CHARS, chunks: bool = False
) -> tuple[list[TextTriplet], MaterializeStats]:
    st = MaterializeStats(triplets_in=len(triplets))
    out = []
    for t in triplets:
        if resolve_doc_path(corpus_root, t.positive) is None or resolve_doc_path(corpus_root, t.negative) is None:
            if not (chunks and _CHUNK.match(t.positive) and _CHUNK.match(t.negative)):
                st.refused_paths += 1
                continue
        pos = _text(corpus_root, t.positive, snippet_chars, chunks)
        neg = _text(corpus_root, t.negative, snippet_chars, chunks)
        if pos is None:
            st.missing_positive += 1
        elif neg is None:
            st.missing_negative += 1
        elif not pos:
            st.empty_positive += 1
        elif not neg:
            st.empty_negative += 1
        else:
            out.append(TextTriplet(query=t.query, positive_text=pos, negative_text=neg))
    st.triplets_out = len(out)
    return out, st


def triplets_to_pairs(triplets: list[TextTriplet]) -> list[dict]:
    """Each triplet -> (query, positive, 1) and (query, negative, 0); duplicates dropped, first kept (the
    trainers' ``{"query", "document", "label"}`` rows)."""
    seen: set = set()
    out = []
    for t in triplets:
        for doc, label in ((t.positive_text, 1), (t.negative_text, 0)):
            key = (t.query, doc, label)
            if key not in seen:
                seen.add(key)
                out.append({"query": t.query, "document": doc, "label": label})
    return out
