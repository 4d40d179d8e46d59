"""harness.sources: every reader on tiny files written here, BM25 against the formula, ir_datasets offline."""

from __future__ import annotations

import json
import math
import re
import uuid
from pathlib import Path

import pytest

from harness.sources import (
    BM25_PARAMS,
    DatasetError,
    load_dataset,
    load_ir_dataset,
    select_queries,
)
from harness.sources.types import Candidate
from harness.suite import DatasetSpec

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "trec-dl"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- candidate lists -----------------------------------------------------------------------------------------------
def candidates_files(tmp_path: Path) -> tuple[Path, Path]:
    def hits(qid, rows):
        return [
            {"content": f"text of {d}", "qid": qid, "docid": d, "rank": r + 1, "score": s}
            for r, (d, s) in enumerate(rows)
        ]

    data = [
        {"query": "query one", "hits": hits(1, [("a", 9.0), ("b", 7.0), ("c", 7.0), ("d", 3.0)])},
        {"query": "query two", "hits": hits(2, [("e", 2.0), ("f", 1.0)])},
        {"query": "unjudged query", "hits": hits(3, [("g", 1.0)])},
    ]
    cands = write(tmp_path / "cands.json", json.dumps(data))
    qrels = write(tmp_path / "qrels.txt", "1 0 a 0\n1 0 c 3\n1 0 z 2\n2 0 f 1\n4 0 a 1\n")
    return cands, qrels


def test_candidate_lists(tmp_path):
    cands, qrels = candidates_files(tmp_path)
    ds = load_dataset(
        DatasetSpec(name="toy", source_kind="candidates", candidates=cands, qrels=qrels, top_k=3, relevance_level=2)
    )
    assert ds.queries == {"1": "query one", "2": "query two"}
    # trec_eval order: the 7.0 tie puts c (docid descending) before b; cut to top_k=3
    assert ds.candidates["1"] == [
        Candidate("a", "text of a", 9.0),
        Candidate("c", "text of c", 7.0),
        Candidate("b", "text of b", 7.0),
    ]
    assert [c.docid for c in ds.candidates["2"]] == ["e", "f"]
    assert ds.qrels == {"1": {"a": 0, "c": 3, "z": 2}, "2": {"f": 1}}
    assert ds.relevance_level == 2 and ds.first_stage == "bm25" and str(cands) in ds.source
    p = ds.protocol
    assert (p["n_queries"], p["n_pairs"], p["dropped_unjudged"], p["dropped_no_candidates"]) == (2, 5, 1, 1)
    assert (p["top_k"], p["relevance_level"], p["add_judged_positives"], p["max_queries"]) == (3, 2, False, None)
    assert p["first_stage"] == "bm25" and p["source_kind"] == "candidates"


def test_candidate_list_errors(tmp_path):
    qrels = write(tmp_path / "qrels.txt", "1 0 a 1\n")
    bad = write(tmp_path / "bad.json", json.dumps([{"query": "q", "hits": [{"qid": 1, "docid": "a", "score": 1}]}]))
    with pytest.raises(DatasetError, match="entry 0, hit 0: needs docid, content and score"):
        load_dataset(DatasetSpec(name="x", source_kind="candidates", candidates=bad, qrels=qrels))
    two = write(
        tmp_path / "two.json",
        json.dumps(
            [
                {
                    "query": "q",
                    "hits": [
                        {"qid": 1, "docid": "a", "content": "t", "score": 1},
                        {"qid": 2, "docid": "b", "content": "t", "score": 1},
                    ],
                }
            ]
        ),
    )
    with pytest.raises(DatasetError, match=r"hits of several qids \['1', '2'\]"):
        load_dataset(DatasetSpec(name="x", source_kind="candidates", candidates=two, qrels=qrels))
    broken_qrels = write(tmp_path / "broken.txt", "1 0 a\n")
    with pytest.raises(DatasetError, match=r"broken.txt:1: expected a TREC qrels line"):
        load_dataset(
            DatasetSpec(
                name="x", source_kind="candidates", candidates=candidates_files(tmp_path)[0], qrels=broken_qrels
            )
        )


def test_query_subset_is_seeded_deterministic_and_nested(tmp_path):
    qids = [str(i) for i in range(30)]
    data = [{"query": f"q{q}", "hits": [{"qid": q, "docid": f"d{q}", "content": "t", "score": 1.0}]} for q in qids]
    cands = write(tmp_path / "c.json", json.dumps(data))
    qrels = write(tmp_path / "q.txt", "".join(f"{q} 0 d{q} 1\n" for q in qids))
    spec = DatasetSpec(name="toy", source_kind="candidates", candidates=cands, qrels=qrels, max_queries=20)
    small = load_dataset(spec, max_queries=5, seed=1)
    assert len(small.queries) == 5 and small.protocol["max_queries"] == 5  # the argument overrides the spec
    assert set(small.queries) == set(select_queries(qids, 5, seed=1))
    assert set(small.queries) <= set(load_dataset(spec, max_queries=12, seed=1).queries)  # nested
    assert load_dataset(spec, max_queries=5, seed=1).fingerprint() == small.fingerprint()
    assert set(load_dataset(spec, max_queries=5, seed=2).queries) != set(small.queries)
    assert len(load_dataset(spec, seed=1).queries) == 20  # the spec's max_queries
    assert small.protocol["n_queries_available"] == 30
    # independent of the order the queries come in
    assert select_queries(list(reversed(qids)), 7, seed=4) == select_queries(qids, 7, seed=4)


# --- TREC run + corpus + queries -------------------------------------------------------------------------------------
def run_files(tmp_path: Path, corpus_name: str = "corpus.tsv") -> dict:
    run = write(
        tmp_path / "run.trec",
        "q1 Q0 d1 1 5.0 bm25\nq1 Q0 d2 2 4.0 bm25\nq1 Q0 d3 3 3.0 bm25\nq2 Q0 d3 1 2.5 bm25\nq2 Q0 d1 2 2.5 bm25\n",
    )
    if corpus_name.endswith(".tsv"):
        corpus = write(
            tmp_path / corpus_name, "d1\tfirst passage\nd2\tsecond passage\nd3\tthird\tpassage\nd4\tfourth passage\n"
        )
    else:
        rows = [
            ("d1", "One", "first passage"),
            ("d2", "", "second passage"),
            ("d3", "Three", "third passage"),
            ("d4", "Four", "fourth passage"),
        ]
        corpus = write(
            tmp_path / corpus_name, "\n".join(json.dumps({"_id": d, "title": t, "text": x}) for d, t, x in rows)
        )
    queries = write(tmp_path / "queries.tsv", "q1\tfirst query\nq2\tsecond query\nq3\tthird query\n")
    qrels = write(tmp_path / "qrels.txt", "q1 0 d2 1\nq1 0 d4 2\nq1 0 d9 3\nq2 0 d1 0\nq2 0 d4 1\nq3 0 d1 1\n")
    return dict(run=run, corpus=corpus, queries=queries, qrels=qrels)


def test_trec_run_with_tsv_corpus(tmp_path):
    ds = load_dataset(DatasetSpec(name="r", source_kind="trec_run", top_k=2, **run_files(tmp_path)))
    assert ds.queries == {"q1": "first query", "q2": "second query"}  # q3 is judged but not in the run
    assert ds.candidates["q1"] == [Candidate("d1", "first passage", 5.0), Candidate("d2", "second passage", 4.0)]
    assert [c.docid for c in ds.candidates["q2"]] == ["d3", "d1"]  # tie at 2.5: docid descending
    assert ds.candidates["q2"][0].text == "third passage"  # extra TSV columns joined with a space
    assert ds.protocol["dropped_no_candidates"] == 1 and ds.protocol["dropped_unjudged"] == 0


def test_trec_run_with_jsonl_corpus_and_judged_positives(tmp_path):
    files = run_files(tmp_path, "corpus.jsonl")
    ds = load_dataset(
        DatasetSpec(name="r", source_kind="trec_run", top_k=2, add_judged_positives=True, relevance_level=1, **files)
    )
    assert ds.candidates["q1"][0].text == "One first passage"  # BEIR join: title + " " + text
    assert ds.candidates["q1"][1].text == "second passage"  # empty title: no leading space
    # q1: d4 (grade 2) was missed by the run: appended below the lowest candidate; q2: d4 (grade 1) too
    assert ds.candidates["q1"][2] == Candidate("d4", "Four fourth passage", 3.0)
    assert [c.docid for c in ds.candidates["q2"]] == ["d3", "d1", "d4"]
    assert ds.protocol["n_judged_positives_added"] == 2 and ds.protocol["n_pairs"] == 6
    assert ds.protocol["n_judged_positives_not_in_corpus"] == 1  # d9 is judged but not in the corpus
    level2 = load_dataset(
        DatasetSpec(name="r", source_kind="trec_run", top_k=2, add_judged_positives=True, relevance_level=2, **files)
    )
    assert [c.docid for c in level2.candidates["q2"]] == ["d3", "d1"]  # grade 1 is not relevant at level 2
    assert level2.protocol["n_judged_positives_added"] == 1


def test_trec_run_missing_document_text(tmp_path):
    files = run_files(tmp_path)
    write(files["corpus"], "d1\tfirst passage\n")
    with pytest.raises(DatasetError, match=r"no text for 2 candidate documents, e.g. \['d2', 'd3'\]"):
        load_dataset(DatasetSpec(name="r", source_kind="trec_run", **files))


# --- BM25 (BEIR folder and ir_datasets without scoreddocs) ---------------------------------------------------------
DOCS = {
    "d1": ("Cats", "cats purr and cats sleep"),
    "d2": ("", "dogs bark at the cats"),
    "d3": ("Birds", "birds sing at dawn"),
    "d4": ("Fish", "fish swim in the river the whole day"),
    "q2": ("Self", "dogs dogs dogs"),  # same id as a query: BEIR never lets it be a candidate
}
QUERIES = {"q1": "cats purring", "q2": "dogs bark", "q3": "river fish", "q9": "unjudged in this split"}
QRELS = {"q1": {"d1": 2, "d2": 1}, "q2": {"d2": 1}, "q3": {"d4": 1}}
STOP = {"and", "at", "the", "in"}  # the Lucene stop words these texts contain


def reference_bm25(query: str, k1: float = 0.9, b: float = 0.4) -> dict[str, float]:
    """Lucene BM25 written out: idf = ln(1 + (N - df + .5)/(df + .5)), tf part = tf / (tf + k1 (1 - b + b dl/avgdl))."""

    def tokenize(text: str) -> list[str]:
        return [t for t in re.findall(r"\w\w+", text.lower()) if t not in STOP]

    tokens = {d: tokenize(f"{title} {text}") for d, (title, text) in DOCS.items()}
    avgdl = sum(map(len, tokens.values())) / len(tokens)
    scores = {}
    for d, toks in tokens.items():
        s = 0.0
        for term in tokenize(query):
            df = sum(term in t for t in tokens.values())
            tf = toks.count(term)
            if df and tf:
                idf = math.log(1 + (len(tokens) - df + 0.5) / (df + 0.5))
                s += idf * tf / (tf + k1 * (1 - b + b * len(toks) / avgdl))
        if s > 0:
            scores[d] = s
    return scores


def check_bm25(ds, identical_excluded: bool = True):
    assert BM25_PARAMS == {"method": "lucene", "k1": 0.9, "b": 0.4}
    for qid, cands in ds.candidates.items():
        expected = reference_bm25(QUERIES[qid])
        if identical_excluded:
            expected.pop(qid, None)
        ranked = sorted(sorted(expected, reverse=True), key=lambda d: -expected[d])  # ties: docid descending
        assert [c.docid for c in cands] == ranked[: ds.protocol["top_k"]]
        for c in cands:
            assert c.score == pytest.approx(expected[c.docid], rel=1e-5)  # bm25s scores in float32
    assert ds.protocol["first_stage_source"] == "bm25s" and ds.protocol["bm25"]["k1"] == 0.9


def beir_folder(root: Path) -> Path:
    write(root / "corpus.jsonl", "\n".join(json.dumps({"_id": d, "title": t, "text": x}) for d, (t, x) in DOCS.items()))
    write(root / "queries.jsonl", "\n".join(json.dumps({"_id": q, "text": t}) for q, t in QUERIES.items()))
    rows = "".join(f"{q}\t{d}\t{g}\n" for q, docs in QRELS.items() for d, g in docs.items())
    write(root / "qrels" / "test.tsv", "query-id\tcorpus-id\tscore\n" + rows)
    write(root / "qrels" / "dev.tsv", "query-id\tcorpus-id\tscore\nq9\td3\t1\n")
    return root


def test_beir_folder_with_bm25(tmp_path):
    root = beir_folder(tmp_path / "beir" / "toy")
    ds = load_dataset(DatasetSpec(name="toy", source_kind="beir", beir=root, top_k=2))
    assert set(ds.queries) == {"q1", "q2", "q3"}  # q9 belongs to the dev split
    assert ds.protocol["dropped_unjudged"] == 0 and ds.protocol["excluded_identical_ids"]
    check_bm25(ds)
    assert [c.docid for c in ds.candidates["q2"]] == ["d2"]  # "q2" (the self document) is left out
    assert ds.candidates["q1"][0] == Candidate("d1", "Cats cats purr and cats sleep", ds.candidates["q1"][0].score)
    assert ds.candidates["q2"][0].text == "dogs bark at the cats"  # empty title
    dev = load_dataset(DatasetSpec(name="toy", source_kind="beir", beir=root, split="dev"))
    assert dev.protocol["n_queries"] == 0 and dev.protocol["dropped_no_candidates"] == 1  # q9 matches no document


# --- ir_datasets -----------------------------------------------------------------------------------------------------
def ir_files(tmp_path: Path) -> dict:
    docs = write(tmp_path / "docs.tsv", "".join(f"{d}\t{(t + ' ' + x).strip()}\n" for d, (t, x) in DOCS.items()))
    queries = write(tmp_path / "queries.tsv", "".join(f"{q}\t{t}\n" for q, t in QUERIES.items()))
    qrels = write(tmp_path / "qrels.txt", "".join(f"{q} 0 {d} {g}\n" for q, ds in QRELS.items() for d, g in ds.items()))
    return dict(docs_tsv=str(docs), queries_tsv=str(queries), qrels_trec=str(qrels))


def test_ir_datasets_created_dataset_runs_bm25(tmp_path):
    import ir_datasets

    ds_obj = ir_datasets.create_dataset(**ir_files(tmp_path))
    assert not ds_obj.has_scoreddocs()
    ds = load_ir_dataset(ds_obj, DatasetSpec(name="toy", source_kind="ir_datasets", top_k=3), dataset_id="local/toy")
    assert set(ds.queries) == {"q1", "q2", "q3"} and ds.protocol["dropped_unjudged"] == 1  # q9 has no judgments
    assert ds.source == "ir_datasets:local/toy"
    check_bm25(ds, identical_excluded=False)  # not a beir/ id: docid == qid is an ordinary document
    assert "q2" in [c.docid for c in ds.candidates["q2"]]


def test_ir_datasets_scoreddocs_through_the_registry(tmp_path):
    import ir_datasets
    from ir_datasets.datasets.base import Dataset
    from ir_datasets.formats import TrecScoredDocs
    from ir_datasets.util import LocalDownload

    files = ir_files(tmp_path)
    run = write(
        tmp_path / "run.trec",
        "q1 Q0 d3 1 3.0 x\nq1 Q0 d1 2 2.0 x\nq1 Q0 d2 3 2.0 x\nq2 Q0 d4 1 1.0 x\nq9 Q0 d1 1 1.0 x\n",
    )
    dataset_id = f"harness-test/{uuid.uuid4().hex}/judged"
    with_run = Dataset(ir_datasets.create_dataset(**files), TrecScoredDocs(LocalDownload(run)))
    ir_datasets.registry.register(dataset_id, with_run)
    spec = DatasetSpec(name="toy", source_kind="ir_datasets", ir_datasets=dataset_id, top_k=2)
    ds = load_dataset(spec)
    assert ds.candidates == {
        "q1": [Candidate("d3", "Birds birds sing at dawn", 3.0), Candidate("d2", "dogs bark at the cats", 2.0)],
        "q2": [Candidate("d4", "Fish fish swim in the river the whole day", 1.0)],
    }
    p = ds.protocol
    assert p["first_stage_source"] == "ir_datasets scoreddocs"
    assert (p["n_queries"], p["dropped_unjudged"], p["dropped_no_candidates"]) == (2, 1, 1)  # q9 unjudged, q3 no run
    # the same data as TREC run files gives the very same dataset
    same = load_dataset(
        DatasetSpec(
            name="toy",
            source_kind="trec_run",
            top_k=2,
            run=run,
            corpus=Path(files["docs_tsv"]),
            queries=Path(files["queries_tsv"]),
            qrels=Path(files["qrels_trec"]),
        )
    )
    assert same.fingerprint() == ds.fingerprint()


def test_ir_datasets_errors_name_the_id(tmp_path):
    import ir_datasets

    missing = tmp_path / "never-downloaded"
    dataset_id = f"harness-test/{uuid.uuid4().hex}"
    ir_datasets.registry.register(
        dataset_id,
        ir_datasets.create_dataset(
            docs_tsv=str(missing / "docs.tsv"), queries_tsv=str(missing / "q.tsv"), qrels_trec=str(missing / "qrels")
        ),
    )
    expected = re.escape(f"ir_datasets id {dataset_id!r}: its data could not be read")
    with pytest.raises(DatasetError, match=expected) as info:
        load_dataset(DatasetSpec(name="x", source_kind="ir_datasets", ir_datasets=dataset_id))
    assert "FileNotFoundError" in str(info.value) and "download" in str(info.value)
    with pytest.raises(DatasetError, match="unknown ir_datasets id 'harness-test/none'"):
        load_dataset(DatasetSpec(name="x", source_kind="ir_datasets", ir_datasets="harness-test/none"))


def test_sources_are_described():
    from harness.sources.registry import SOURCES

    assert set(SOURCES) == {"candidates", "trec_run", "beir", "ir_datasets", "judged_pool"}
    assert all(s.description and callable(_loader(s.loader)) for s in SOURCES.values())


def test_shared_trec_dl_candidates(tmp_path):
    cands, qrels = SHARED / "bm25_top100_dl19.json", SHARED / "qrels_dl19.txt"
    if not (cands.is_file() and qrels.is_file()):
        pytest.skip(f"shared TREC DL data not found at {SHARED}")
    ds = load_dataset(DatasetSpec(name="dl19", source_kind="candidates", candidates=cands, qrels=qrels, top_k=20))
    assert len(ds.queries) == 43 and ds.relevance_level == 2  # name rule: dl19 -> level 2
    assert all(len(c) == 20 for c in ds.candidates.values()) and ds.protocol["n_pairs"] == 43 * 20
    assert all(c[0].score >= c[-1].score for c in ds.candidates.values())


def _loader(ref: str):
    import importlib

    module, function = ref.split(":")
    return getattr(importlib.import_module(module), function)
