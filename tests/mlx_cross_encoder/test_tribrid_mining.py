"""TriBridRAG's query log (its real JSONL event shapes, written here) mined by both miners, materialized from a
corpus root, turned into pairs; malformed lines, unknown signals, missing files and path escapes counted."""

from __future__ import annotations

import json

import pytest

from mlx_cross_encoder.tribrid.corpus import materialize, triplets_to_pairs
from mlx_cross_encoder.tribrid.mining import mine, mine_improved, mine_tribrid
from mlx_cross_encoder.tribrid.querylog import Triplet, read_query_log, read_triplets, write_triplets


def search(eid, query, paths, **extra):
    return {
        "kind": "search",
        "event_id": eid,
        "query": query,
        "top_paths": paths,
        "reranker_mode": "none",
        "rerank_ok": True,
        "rerank_applied": False,
        "rerank_skipped_reason": None,
        "rerank_error": None,
        "rerank_candidates_reranked": 0,
        "ts": "2026-01-01T00:00:00Z",
        **extra,
    }


def feedback(eid, signal, doc_id=None):
    obj = {"type": "feedback", "kind": "feedback", "ts": "2026-01-01T00:00:01Z", "event_id": eid, "signal": signal}
    if doc_id is not None:
        obj["doc_id"] = doc_id
    return obj


@pytest.fixture
def log_path(tmp_path):
    chat = search("e2", "q2", ["b.md", "../secret.txt", "/etc/passwd", "a.md"], corpus_ids=["c"])
    chat.update(kind="chat", conversation_id="conv")
    lines = [
        json.dumps(search("e1", "q1", ["a.md", "b.md", "c.md"], corpus_id="c"), sort_keys=True),
        "not json {",
        "[1, 2]",
        "",
        json.dumps(chat, sort_keys=True),
        json.dumps(search("e3", "q3", ["missing.md", "a.md"])),
        json.dumps(feedback("e1", "click", "b.md")),
        json.dumps(feedback("e1", "thumbsup")),
        json.dumps(feedback("e1", "sparkle")),
        json.dumps(feedback("e1", "thumbsdown", "c.md")),
        json.dumps(feedback("e2", "star5")),
        json.dumps(feedback("e3", "click", "missing.md")),
        json.dumps(feedback("e9", "click", "a.md")),
        json.dumps(feedback("e1", "click", "b.md")),
        json.dumps(feedback("e2", "noclick", "a.md")),
        json.dumps(feedback("e1", "star3")),
        json.dumps(search("e4", "q4", ["x.md", "y.md", "z.md"])),
        json.dumps(feedback("e4", "Click", "z.md")),  # positive signal, but only "click" exactly reads doc_id
    ]
    path = tmp_path / "data" / "logs" / "queries.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "corpus"
    root.mkdir()
    for name in ("a", "b", "c"):
        (root / f"{name}.md").write_text(f"  text of {name} " + name * 3000)
    (tmp_path / "secret.txt").write_text("outside the corpus")
    return root


def T(q, p, n):
    return Triplet(query=q, positive=p, negative=n)


TRIBRID = [
    T("q1", "b.md", "a.md"),
    T("q1", "a.md", "b.md"),
    T("q2", "b.md", "../secret.txt"),
    T("q3", "missing.md", "a.md"),
    T("q4", "x.md", "y.md"),
]
IMPROVED = [
    T("q1", "b.md", "c.md"),
    T("q1", "a.md", "c.md"),
    T("q2", "b.md", "a.md"),
    T("q2", "b.md", "../secret.txt"),
    T("q3", "missing.md", "a.md"),
    T("q4", "z.md", "x.md"),
    T("q4", "z.md", "y.md"),
]


def test_log_counts_malformed_lines_and_unknown_signals(log_path):
    log = read_query_log(log_path)
    assert log.stats.malformed_lines == 2
    assert log.stats.unknown_signals == {"sparkle": 1}
    assert set(log.queries) == {"e1", "e2", "e3", "e4"} and log.stats.feedback_events == 11


def test_tribrid_miner_reproduces_its_rules(log_path):
    triplets, stats = mine_tribrid(read_query_log(log_path))
    assert triplets == TRIBRID
    assert stats.unknown_event_id == 1 and stats.ignored_signals == 4  # sparkle, thumbsdown, noclick, star3
    scoped, _ = mine(read_query_log(log_path, corpus_id="c"), "tribrid")
    assert scoped == TRIBRID[:3]  # e3 has no corpus_id
    assert mine_tribrid(read_query_log(log_path), max_triplets=1)[0] == TRIBRID[:1]


def test_improved_miner_uses_negative_feedback(log_path):
    triplets, _ = mine_improved(read_query_log(log_path), negatives_per_positive=2)
    assert triplets == IMPROVED
    wide, _ = mine_improved(read_query_log(log_path), negatives_per_positive=3)
    assert T("q2", "b.md", "/etc/passwd") in wide and len(wide) == 8
    with pytest.raises(ValueError, match="unknown miner"):
        mine(read_query_log(log_path), "best")


def test_triplet_jsonl_round_trip(tmp_path):
    path = tmp_path / "triplets.jsonl"
    write_triplets(TRIBRID, path)
    with path.open("a") as f:
        f.write('{"query": "q", "positive": "", "negative": "x"}\nbroken\n')
    assert json.loads(path.read_text().splitlines()[0]) == {"query": "q1", "positive": "b.md", "negative": "a.md"}
    assert read_triplets(path) == TRIBRID


def test_materialize_refuses_escapes_and_counts_missing(log_path, corpus):
    triplets, _ = mine_tribrid(read_query_log(log_path))
    texts, stats = materialize(triplets, corpus, snippet_chars=50)
    assert [(t.query, t.positive_text[:9], t.negative_text[:9]) for t in texts] == [
        ("q1", "text of b", "text of a"),
        ("q1", "text of a", "text of b"),
    ]
    assert len(texts[0].positive_text) == 48  # the first 50 characters, then stripped
    assert stats.refused_paths == 1 and stats.missing_positive == 2 and stats.triplets_out == 2
    absolute = [T("q", str(corpus / "a.md"), "b.md")]
    assert materialize(absolute, corpus)[1].refused_paths == 1


def test_chunk_level_text(corpus):
    (corpus / "code.py").write_text("line1\nline2\nline3\nline4\n")
    texts, _ = materialize([T("q", "code.py:2-3:6", "a.md")], corpus, chunks=True)
    assert texts[0].positive_text == "line2\nline3"
    assert materialize([T("q", "code.py:2-3:6", "a.md")], corpus)[1].missing_positive == 1


def test_pairs_two_per_triplet_deduplicated(log_path, corpus):
    texts, _ = materialize(mine_improved(read_query_log(log_path), 2)[0][:2], corpus)
    rows = triplets_to_pairs(texts)
    assert [(r["query"], r["document"][:9], r["label"]) for r in rows] == [
        ("q1", "text of b", 1),
        ("q1", "text of c", 0),
        ("q1", "text of a", 1),
    ]
