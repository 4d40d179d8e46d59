"""The harness reads TriBridRAG triplet JSONL as training data (train.data kind tribrid_triplets + corpus_root):
TriBridRAG's load_triplets / materialize_triplets rules, two labeled pairs per triplet, deduplicated, the
held-out check by query text, clear errors naming the file and field. Expected pairs are written out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.suite import SuiteError, suite_from_dict
from harness.train.data import TrainDataError, build_training_data, check_held_out

DOCS = {
    "a/oauth.txt": "OAuth tokens are refreshed by the client.\n",
    "a/grid.txt": "  The power grid balances load.  ",
    "b/river.txt": "Rivers carry sediment to the sea.",
    "b/empty.txt": "   \n",
    "c/long.txt": "x" * 2500,
}


def write_corpus(root: Path) -> Path:
    for rel, text in DOCS.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    (root.parent / "outside.txt").write_text("secret")
    return root


def triplet(q, p, n):
    return json.dumps({"query": q, "positive": p, "negative": n})


LINES = [
    triplet("how are oauth tokens refreshed", "a/oauth.txt", "a/grid.txt"),
    triplet("how are oauth tokens refreshed", "a/oauth.txt", "b/river.txt"),  # the positive pair again: kept once
    triplet("how are oauth tokens refreshed", "a/oauth.txt", "a/grid.txt"),  # a duplicate triplet
    "{not json",  # malformed
    json.dumps({"query": "q", "positive": "a/oauth.txt"}),  # no negative: malformed
    triplet("rivers", "b/river.txt", "../outside.txt"),  # escape: refused
    triplet("rivers", "/etc/hostname", "a/grid.txt"),  # absolute: refused
    triplet("rivers", "b/missing.txt", "a/grid.txt"),  # missing positive
    triplet("rivers", "b/river.txt", "b/empty.txt"),  # empty negative
    triplet("  long one ", "c/long.txt", "a/grid.txt"),  # text cut at 2000 characters; query stripped
]


@pytest.fixture
def folder(tmp_path):
    write_corpus(tmp_path / "corpus")
    (tmp_path / "triplets.jsonl").write_text("\n".join(LINES) + "\n")
    entries = [{"query": "held out query", "hits": [{"docid": "d1", "content": "text", "rank": 1, "score": 1.0}]}]
    (tmp_path / "test.json").write_text(json.dumps(entries))
    (tmp_path / "test.qrels").write_text("1 0 d1 1\n")
    return tmp_path


def suite(**source) -> dict:
    return {
        "name": "tribrid-source",
        "datasets": [{"name": "test", "candidates": "test.json", "qrels": "test.qrels"}],
        "train": {
            "data": [source or {"tribrid_triplets": "triplets.jsonl", "corpus_root": "corpus"}],
            "label_threshold": 2,
            "dev": {"fraction": 0.0},
            "models": [{"name": "m", "base": "local:minilm-l6-seeded-head"}],
        },
        "metrics": ["ndcg@10"],
    }


def test_triplets_become_two_labeled_pairs_each_deduplicated(folder, capsys):
    spec = suite_from_dict(suite(), folder, source="s.yaml")
    src = spec.train.sources[0]
    assert src.kind == "tribrid_triplets" and src.corpus_root == (folder / "corpus").resolve()
    data = build_training_data(spec.train)
    got = [(p.query, p.document, p.label, p.grade) for p in data.pairs]
    oauth, q = "OAuth tokens are refreshed by the client.", "how are oauth tokens refreshed"
    assert got == [
        (q, oauth, 1.0, 2),
        (q, "The power grid balances load.", 0.0, 0),
        (q, "Rivers carry sediment to the sea.", 0.0, 0),
        ("long one", "x" * 2000, 1.0, 2),
        ("long one", "The power grid balances load.", 0.0, 0),
    ]
    assert data.sources[0]["pairs_read"] == 5 and data.sources[0]["kind"] == "tribrid_triplets"
    err = capsys.readouterr().err
    assert "4 of 8 triplets used" in err  # 10 lines: 2 malformed, 8 triplets
    for what in ("malformed_lines 2", "refused_paths 2", "missing_positive 1", "empty_negative 1"):
        assert what in err
    check_held_out(data, spec.datasets)  # no overlap: passes


def test_a_triplet_query_of_an_evaluated_dataset_is_refused(folder):
    (folder / "triplets.jsonl").write_text(triplet("Held out query?", "a/oauth.txt", "a/grid.txt") + "\n")
    spec = suite_from_dict(suite(), folder, source="s.yaml")
    with pytest.raises(SuiteError, match="held out query.*same text"):
        check_held_out(build_training_data(spec.train), spec.datasets)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"tribrid_triplets": "triplets.jsonl"}, r"train\.data\[0\]\.corpus_root.*missing \(required with"),
        ({"tribrid_triplets": "triplets.jsonl", "corpus_root": "nowhere"}, r"corpus_root.*no such folder"),
        ({"tribrid_triplets": "nope.jsonl", "corpus_root": "corpus"}, r"tribrid_triplets.*no such file"),
        ({"jsonl": "triplets.jsonl", "corpus_root": "corpus"}, r"corpus_root.*only used with tribrid_triplets"),
        ({"tribrid_triplets": "triplets.jsonl", "jsonl": "triplets.jsonl"}, "needs exactly one source"),
    ],
)
def test_bad_sources_name_the_field(folder, source, message):
    with pytest.raises(SuiteError, match=message):
        suite_from_dict(suite(**source), folder, source="s.yaml")


def test_no_usable_triplet_is_an_error_naming_the_file(folder):
    (folder / "triplets.jsonl").write_text(triplet("rivers", "../outside.txt", "a/grid.txt") + "\n{bad\n")
    spec = suite_from_dict(suite(), folder, source="s.yaml")
    with pytest.raises(TrainDataError, match=r"triplets\.jsonl: no usable triplet \(1 read, malformed_lines 1, "):
        build_training_data(spec.train)
