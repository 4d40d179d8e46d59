"""python -m harness.train.teacher: bi-encoder teacher scores for every training candidate of a suite, equal to
sentence-transformers' cosine on the same folder, written as a TREC run; refused when training overlaps a test set."""

from __future__ import annotations

import builders
import numpy as np
import pytest
import yaml
from test_train_suite import N_DOCS, train_suite, write_candidates

from harness.sources import read_candidates, read_trec_run
from harness.suite import SuiteError
from harness.train.teacher import main


@pytest.fixture(scope="module")
def st_folder(tmp_path_factory):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as models

    tmp = tmp_path_factory.mktemp("st")
    bert = builders.bert_cross_encoder(tmp / "bert", seed=3)
    encoder = models.Transformer(str(bert), max_seq_length=64)
    pooling = models.Pooling(encoder.get_embedding_dimension(), pooling_mode="mean")
    st = SentenceTransformer(modules=[encoder, pooling, models.Normalize()], device="cpu")
    st.save(str(tmp / "st"))
    return tmp / "st", st


def test_teacher_run_scores_every_training_candidate_as_sentence_transformers(tmp_path, st_folder):
    path, st = st_folder
    write_candidates(tmp_path, "train", 4, seed=0, qid_base=100)
    write_candidates(tmp_path, "test", 2, seed=1, qid_base=900)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(train_suite()))
    assert main([str(tmp_path / "s.yaml"), str(tmp_path / "t.run"), "--model", str(path)]) == 0
    run = read_trec_run(tmp_path / "t.run")
    queries, ranked, texts = read_candidates(tmp_path / "train.json")
    assert {(q, d) for q in run for d in run[q]} == {(q, d) for q in queries for d, _ in ranked[q]}
    assert sum(map(len, run.values())) == 4 * N_DOCS  # unjudged candidates too: every candidate of the list
    for q in queries:
        docs = [d for d, _ in ranked[q]]
        emb = st.encode([queries[q]] + [texts[d] for d in docs], convert_to_numpy=True)
        np.testing.assert_allclose([run[q][d] for d in docs], emb[1:] @ emb[0], atol=1e-4, rtol=0)
    lines = (tmp_path / "t.run").read_text().split("\n")
    first = [ln.split() for ln in lines if ln.startswith("100 ")]
    assert [int(c[3]) for c in first] == list(range(1, N_DOCS + 1))  # ranks follow the scores
    assert [float(c[4]) for c in first] == sorted((float(c[4]) for c in first), reverse=True)


def test_teacher_refuses_training_queries_of_an_evaluated_dataset(tmp_path, st_folder):
    write_candidates(tmp_path, "train", 4, seed=0, qid_base=100)
    data = train_suite()
    data["datasets"] = [{"name": "leak", "candidates": "train.json", "qrels": "train.qrels", "top_k": 6}]
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(SuiteError, match="hold 4 queries of evaluation dataset leak"):
        main([str(tmp_path / "s.yaml"), str(tmp_path / "t.run"), "--model", str(st_folder[0])])
    assert not (tmp_path / "t.run").exists()
