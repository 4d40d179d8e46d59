"""Inputs: one rule for every backend, never silently wrong. Each rule on a bad file: refused with the file and
the entry or line named, or (empty texts) dropped at load for every backend and counted in the protocol."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from harness.backends import BackendError, require_safetensors
from harness.sources import DatasetError, load_dataset, read_beir_qrels, read_candidates, read_trec_qrels, read_trec_run
from harness.suite import DatasetSpec, RerankerSpec, SuiteError, load_suite


def hit(qid, docid, content="text", score=1.0):
    return {"qid": qid, "docid": docid, "content": content, "score": score}


def candidates(tmp_path: Path, entries) -> Path:
    path = tmp_path / "cands.json"
    path.write_text(json.dumps(entries, allow_nan=True))
    return path


def test_a_docid_reused_with_another_text_is_refused(tmp_path):
    # d0, d1 in every query, each time another passage: scores looked up by docid would mix the queries' texts
    path = candidates(
        tmp_path,
        [
            {"query": "q1", "hits": [hit(1, "d0", "apples"), hit(1, "d1", "pears")]},
            {"query": "q2", "hits": [hit(2, "d0", "cars"), hit(2, "d1", "boats")]},
        ],
    )
    with pytest.raises(
        DatasetError,
        match=r"cands\.json: entry 1, hit 0: docid 'd0' has another content than at "
        r"entry 0, hit 0",
    ):
        read_candidates(path)


def test_a_docid_shared_by_queries_with_the_same_text_is_one_document(tmp_path):
    path = candidates(
        tmp_path, [{"query": "q1", "hits": [hit(1, "d0", "apples")]}, {"query": "q2", "hits": [hit(2, "d0", "apples")]}]
    )
    queries, ranked, texts = read_candidates(path)
    assert texts == {"d0": "apples"} and set(ranked) == {"1", "2"}


@pytest.mark.parametrize("content, shown", [(None, "null"), (12345, "12345"), (["a"], r"\['a'\]")])
def test_content_that_is_not_a_string_is_refused(tmp_path, content, shown):
    path = candidates(tmp_path, [{"query": "q1", "hits": [hit(1, "a"), hit(1, "b", content)]}])
    with pytest.raises(DatasetError, match=rf"cands\.json: entry 0, hit 1: content must be a string, got {shown}"):
        read_candidates(path)


@pytest.mark.parametrize("score", [math.nan, math.inf, -math.inf, "high", True])
def test_a_score_that_is_not_a_finite_number_is_refused(tmp_path, score):
    path = candidates(tmp_path, [{"query": "q1", "hits": [hit(1, "a", score=score)]}])
    with pytest.raises(DatasetError, match=r"cands\.json: entry 0, hit 0: score must be a finite number"):
        read_candidates(path)


def test_a_trec_run_score_that_is_not_finite_is_refused(tmp_path):
    path = tmp_path / "run.trec"
    path.write_text("1 Q0 a 1 2.5 t\n1 Q0 b 2 nan t\n")
    with pytest.raises(DatasetError, match=r"run\.trec:2: score must be a finite number, got 'nan'"):
        read_trec_run(path)


def test_conflicting_duplicate_qrels_are_refused_and_repeats_are_fine(tmp_path):
    path = tmp_path / "qrels.txt"
    path.write_text("1 0 a 2\n1 0 b 0\n1 0 a 2\n")  # the same judgment twice: fine
    assert read_trec_qrels(path) == {"1": {"a": 2, "b": 0}}
    path.write_text("1 0 a 2\n1 0 b 0\n1 0 a 0\n")
    with pytest.raises(DatasetError, match=r"qrels\.txt:3: query 1 document a is judged 0 here and 2 on line 1"):
        read_trec_qrels(path)
    beir = tmp_path / "test.tsv"
    beir.write_text("query-id\tcorpus-id\tscore\n1\ta\t1\n1\ta\t0\n")
    with pytest.raises(DatasetError, match=r"test\.tsv:3: query 1 document a is judged 0 here and 1 on line 2"):
        read_beir_qrels(beir)


def test_empty_queries_and_documents_are_dropped_for_every_backend_and_counted(tmp_path):
    path = candidates(
        tmp_path,
        [
            {"query": "q1", "hits": [hit(1, "a", "apples"), hit(1, "b", "   "), hit(1, "c", "cherries", 0.5)]},
            {"query": " ", "hits": [hit(2, "d", "dates")]},
        ],
    )
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("1 0 a 1\n2 0 d 1\n")
    ds = load_dataset(DatasetSpec(name="x", source_kind="candidates", candidates=path, qrels=qrels))
    assert list(ds.queries) == ["1"] and [c.docid for c in ds.candidates["1"]] == ["a", "c"]
    assert ds.protocol["dropped_empty_queries"] == 1 and ds.protocol["dropped_empty_documents"] == 1
    assert all(c.text.strip() for cands in ds.candidates.values() for c in cands)  # no backend sees an empty text


def test_non_utf8_files_are_a_one_line_error_naming_the_file(tmp_path):
    latin = "1 0 caf\u00e9 1\n".encode("latin-1")
    (tmp_path / "qrels.txt").write_bytes(latin)
    with pytest.raises(DatasetError, match=r"qrels\.txt: not UTF-8 text") as info:
        read_trec_qrels(tmp_path / "qrels.txt")
    assert "\n" not in str(info.value)
    (tmp_path / "cands.json").write_bytes('[{"query": "caf\u00e9", "hits": []}]'.encode("latin-1"))
    with pytest.raises(DatasetError, match=r"cands\.json: not UTF-8 text"):
        read_candidates(tmp_path / "cands.json")
    (tmp_path / "suite.yaml").write_bytes("name: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(SuiteError, match=r"suite\.yaml: not UTF-8 text") as info:
        load_suite(tmp_path / "suite.yaml")
    assert "\n" not in str(info.value)


def test_pickle_only_model_folders_are_refused_for_every_backend(tmp_path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["BertForSequenceClassification"]}))
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x02pickle")
    with pytest.raises(BackendError, match=r"only pickled weights \(pytorch_model\.bin\).*never unpickle"):
        require_safetensors(folder)
    from harness.run.prepare import prepare_reranker

    for backend in ("torch", "mlx"):  # refused in the parent, before any worker or library loads it
        prepared = prepare_reranker(RerankerSpec(name="p", backend=backend, model=str(folder)))
        assert "only pickled weights" in prepared.error
