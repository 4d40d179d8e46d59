"""The full-list training recipes of a suite's ``train:`` section (issue 13): every candidate of a training query
(unjudged ones as negatives), dev ranking each dev query's full candidate list of the named sources, and teacher
scores from a TREC run for distillation."""

from __future__ import annotations

import json

import pytest
from test_train_suite import N_DOCS, train_suite, write_candidates

from harness.sources import read_candidates, read_trec_qrels
from harness.suite import SuiteError, suite_from_dict
from harness.train.data import build_training_data
from harness.train.plan import plan_training, selected_jobs
from harness.train.worker import read_records


@pytest.fixture
def folder(tmp_path):
    write_candidates(tmp_path, "train", 10, seed=0, qid_base=100)
    write_candidates(tmp_path, "other", 10, seed=2, qid_base=100)  # same qids, other lists (as DL19's five)
    write_candidates(tmp_path, "test", 5, seed=1, qid_base=900)
    return tmp_path


def suite(folder, recipe=None, **train):
    data = train_suite(**train)
    data["train"]["recipe"].update(recipe or {})
    return suite_from_dict(data, folder, source="s.yaml")


def plan(folder, tmp_path, recipe=None, **train):
    s = suite(folder, recipe, **train)
    return plan_training(s, selected_jobs(s.train, {"tb-full-mlx"}), tmp_path / "out", progress=False)


def test_all_candidates_gives_unjudged_candidates_as_negatives(folder):
    s = suite(folder)
    judged = build_training_data(s.train)
    full = build_training_data(s.train, unjudged=True)
    queries, ranked, texts = read_candidates(folder / "train.json")
    qrels = read_trec_qrels(folder / "train.qrels")
    assert len(full.pairs) == sum(len(ranked[q]) for q in queries) == 10 * N_DOCS
    assert [(p.query, p.document, p.label) for p in full.pairs if p.judged] == [
        (p.query, p.document, p.label) for p in judged.pairs
    ]
    unjudged = [p for p in full.pairs if not p.judged]
    assert len(unjudged) == 10 and all(p.label == 0.0 and p.grade == 0 for p in unjudged)
    assert all(p.docid not in qrels[p.qid] for p in unjudged)


def test_dev_ranks_the_full_candidate_list_of_the_named_sources(folder, tmp_path):
    two_sources = [{"candidates": f"{n}.json", "qrels": "train.qrels"} for n in ("train", "other")]
    p_all = plan(folder, tmp_path / "a", {"candidates": "all"}, data=two_sources, dev={"fraction": 0.3, "sources": [0]})
    p_judged = plan(folder, tmp_path / "j", data=two_sources, dev={"fraction": 0.3, "sources": [0]})
    _, ranked, texts = read_candidates(folder / "train.json")
    for p, per_query in ((p_all, N_DOCS), (p_judged, N_DOCS - 1)):
        dev = read_records(p.jobs[0].job["dev_file"])
        by_query = {}
        for r in dev:
            by_query.setdefault(r["query"], []).append(r["document"])
        assert len(by_query) == 3 and all(len(d) == per_query for d in by_query.values())
        source0 = {texts[d] for docs in ranked.values() for d, _ in docs}
        assert all(d in source0 for docs in by_query.values() for d in docs)  # only the named source's lists
    train = read_records(p_all.jobs[0].job["train_file"])
    assert sum(r["grade"] == 0 and r["label"] == 0 for r in train) > sum(r["grade"] == 0 for r in read_records(
        p_judged.jobs[0].job["train_file"]
    ))  # fmt: skip
    assert p_all.jobs[0].block["data"]["n_dev_unjudged"] == 3 and p_judged.jobs[0].block["data"]["n_dev_unjudged"] == 0


def test_teacher_run_scores_reach_the_distillation_records(folder, tmp_path):
    queries, ranked, _ = read_candidates(folder / "train.json")
    lines, want = [], {}
    for q in list(queries)[:-1]:  # the last query has no teacher scores: its pairs cannot be distilled
        for rank, (d, _) in enumerate(ranked[q], 1):
            score = round(0.1 * rank - int(q) / 1000, 4)
            lines.append(f"{q} Q0 {d} {rank} {score} teacher")
            want[(queries[q], d)] = score
    (folder / "teacher.run").write_text("\n".join(lines) + "\n")
    recipe = {"candidates": "all", "loss": "listwise_kl", "group_size": 4}
    p = plan(folder, tmp_path, recipe, teacher="teacher.run")
    s = suite(folder, recipe, teacher="teacher.run")
    _, _, texts = read_candidates(folder / "train.json")
    by_text = {(queries[q], texts[d]): v for (qt, d), v in want.items() for q in queries if queries[q] == qt}
    train = read_records(p.jobs[0].job["train_file"])
    assert train and all(r["score"] == by_text[(r["query"], r["document"])] for r in train)
    data = build_training_data(s.train, unjudged=True)
    assert len(train) == sum(pp.teacher is not None for pp in data.train_pool)
    assert data.teacher["with_teacher"] == len(want)
    assert all("score" not in r for r in read_records(p.jobs[0].job["dev_file"]))  # dev needs no teacher
    assert json.loads(json.dumps(p.jobs[0].job["settings"]))["loss"] == "listwise_kl"


def test_distillation_needs_a_teacher_and_dev_sources_must_exist(folder):
    with pytest.raises(SuiteError, match="needs teacher scores"):
        suite(folder, {"loss": "listwise_kl"})
    (folder / "t.run").write_text("100 Q0 d100-0 1 0.5 t\n")
    suite(folder, {"loss": "listwise_kl"}, teacher="t.run")  # accepted with a teacher run
    with pytest.raises(SuiteError, match=r"train.dev.sources\[0\]: 3 is not an index of train.data"):
        suite(folder, dev={"fraction": 0.3, "sources": [3]})
    with pytest.raises(SuiteError, match="must be one of judged, all"):
        suite(folder, {"candidates": "unjudged"})
