"""The judged_pool dataset source: each query's judged documents, in corpus order, are its candidates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.sources import DatasetError, load_dataset
from harness.suite import DatasetSpec, SuiteError, suite_from_dict

# corpus order differs from docid order and from the qrels' order, so each order rule is observable
CORPUS = ["b-2\tsecond of b", "a-9\tfirst of a", "x\tnever judged", "a-1\tsecond of a", "b-7\tfirst of b"]
QRELS = ["q1 0 a-1 2", "q1 0 a-9 0", "q2 0 b-7 1", "q2 0 b-2 0", "q3 0 a-1 1"]
QUERIES = ["q1\tquery one", "q2\tquery two", "q3\tquery three", "q4\tnever judged"]


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path):
    return {
        "judged_pool": write(tmp_path / "qrels.txt", QRELS),
        "corpus": write(tmp_path / "corpus.tsv", CORPUS),
        "queries": write(tmp_path / "queries.tsv", QUERIES),
    }


def pool(files, **kw):
    return load_dataset(DatasetSpec(name="pool", source_kind="judged_pool", **files, **kw))


def expected_pool(files) -> dict[str, list[str]]:
    """The reference, written from the files directly: judged docids per query, in corpus line order."""
    order = [line.split("\t")[0] for line in files["corpus"].read_text().splitlines()]
    judged: dict[str, set[str]] = {}
    for line in files["judged_pool"].read_text().splitlines():
        qid, _, docid, _ = line.split()
        judged.setdefault(qid, set()).add(docid)
    return {q: [d for d in order if d in docs] for q, docs in judged.items()}


def test_candidates_are_the_judged_documents_in_corpus_order(files):
    ds = pool(files)
    assert {q: [c.docid for c in cs] for q, cs in ds.candidates.items()} == expected_pool(files)
    assert ds.candidates["q1"][0].text == "first of a"
    assert ds.qrels == {"q1": {"a-1": 2, "a-9": 0}, "q2": {"b-7": 1, "b-2": 0}, "q3": {"a-1": 1}}
    assert set(ds.queries) == {"q1", "q2", "q3"}  # q4 has no judgment, hence no candidate
    assert ds.first_stage == "judged-pool" and ds.protocol["source_kind"] == "judged_pool"
    for cs in ds.candidates.values():  # the first-stage row ranks them in corpus order
        assert [c.score for c in cs] == sorted((c.score for c in cs), reverse=True)
        assert len({c.score for c in cs}) == len(cs)


def test_top_k_cuts_the_pool_in_corpus_order(files):
    ds = pool(files, top_k=1)
    assert {q: [c.docid for c in cs] for q, cs in ds.candidates.items()} == {
        q: docs[:1] for q, docs in expected_pool(files).items()
    }


def test_equals_a_run_file_listing_the_pool_in_corpus_order(files, tmp_path):
    """What suites did before: a TREC run written from the corpus; same candidates, same dataset fingerprint."""
    run = [
        f"{q} Q0 {d} {i + 1} {100 - i} corpus-order"
        for q, docs in expected_pool(files).items()
        for i, d in enumerate(docs)
    ]
    old = load_dataset(
        DatasetSpec(
            name="pool",
            source_kind="trec_run",
            run=write(tmp_path / "pool.run", run),
            corpus=files["corpus"],
            queries=files["queries"],
            qrels=files["judged_pool"],
        )
    )
    new = pool(files)
    assert {q: [c.docid for c in cs] for q, cs in new.candidates.items()} == {
        q: [c.docid for c in cs] for q, cs in old.candidates.items()
    }
    assert new.fingerprint() == old.fingerprint()


def test_a_judged_document_missing_from_the_corpus_is_refused_naming_file_line_and_document(files):
    write(files["corpus"], [line for line in CORPUS if not line.startswith("b-7")])
    expected = f"{files['judged_pool']}:3: query q2 judges document b-7, which is not in the corpus {files['corpus']}"
    with pytest.raises(DatasetError, match=re.escape(expected)):
        pool(files)


def suite(tmp_path, **dataset):
    data = {
        "name": "s",
        "datasets": [{"name": "pool", **dataset}],
        "rerankers": [{"name": "r", "backend": "torch", "model": "local:minilm-l6-seeded-head"}],
    }
    return suite_from_dict(data, tmp_path, source="s.yaml")


def test_suite_needs_corpus_and_queries_and_refuses_qrels_and_another_first_stage(files, tmp_path):
    names = {k: v.name for k, v in files.items()}
    spec = suite(tmp_path, **names).datasets[0]
    assert spec.source_kind == "judged_pool" and spec.first_stage == "judged-pool"
    assert spec.judged_pool == files["judged_pool"].resolve()
    with pytest.raises(SuiteError) as info:
        suite(tmp_path, judged_pool=names["judged_pool"], qrels=names["judged_pool"], first_stage="bm25")
    assert info.value.errors == [
        "s.yaml: datasets[0].qrels: not used with judged_pool (which provides its own)",
        "s.yaml: datasets[0].corpus: missing (required with judged_pool)",
        "s.yaml: datasets[0].queries: missing (required with judged_pool)",
        "s.yaml: datasets[0].first_stage: must be judged-pool with judged_pool (the source gives the order), "
        "got 'bm25'",
    ]
    with pytest.raises(SuiteError, match=r"datasets\[0\]\.judged_pool: no such file: "):
        suite(tmp_path, judged_pool="missing.txt", corpus=names["corpus"], queries=names["queries"])
