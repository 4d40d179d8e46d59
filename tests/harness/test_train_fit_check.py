"""harness.train.fit_check: nDCG@10 of the first stage, the teacher and a model on the training and on the dev
queries of a train suite's dev-source lists, split as the trainers split them; checked against ranx on the same
qrels and against sentence-transformers' CrossEncoder scores of the same model."""

from __future__ import annotations

import json
import random

import builders
import numpy as np
import pytest
import yaml
from ranx import Qrels, Run
from ranx import evaluate as ranx_evaluate

from harness.suite import load_suite
from harness.train.data import build_training_data
from harness.train.fit_check import fit_report

N_QUERIES, N_DOCS = 10, 8


@pytest.fixture
def suite(tmp_path):
    rng = random.Random(0)
    words = builders.words()
    entries, qrels, teacher = [], [], []
    for i in range(N_QUERIES):
        qid = str(100 + i)
        hits = []
        for j in range(N_DOCS):
            docid = f"d{qid}-{j}"
            hits.append(
                {
                    "content": " ".join(rng.sample(words, 6)),
                    "qid": qid,
                    "docid": docid,
                    "rank": j + 1,
                    "score": float(N_DOCS - j),
                }
            )
            if j < N_DOCS - 2:  # the last two stay unjudged (grade 0 for the metric)
                qrels.append(f"{qid} 0 {docid} {rng.choice([0, 1, 2, 3])}")
            teacher.append(f"{qid} Q0 {docid} {j + 1} {rng.random():.6f} t")
        entries.append({"query": " ".join(rng.sample(words, 3)), "hits": hits})
    (tmp_path / "lists.json").write_text(json.dumps(entries))
    (tmp_path / "lists.qrels").write_text("\n".join(qrels) + "\n")
    (tmp_path / "teacher.run").write_text("\n".join(teacher) + "\n")
    (tmp_path / "held.json").write_text(
        json.dumps(
            [
                {
                    "query": "held out question",
                    "hits": [{"content": "x", "qid": "9", "docid": "h", "rank": 1, "score": 1.0}],
                }
            ]
        )
    )
    (tmp_path / "held.qrels").write_text("9 0 h 1\n")
    data = {
        "name": "fit",
        "datasets": [{"name": "held", "candidates": "held.json", "qrels": "held.qrels", "top_k": 1}],
        "train": {
            "data": [{"candidates": "lists.json", "qrels": "lists.qrels"}],
            "label_threshold": 2,
            "dev": {"fraction": 0.3, "seed": 0, "sources": [0]},
            "teacher": "teacher.run",
            "recipe": {"candidates": "all", "loss": "listwise_kl", "group_size": 4},
            "models": [{"name": "m", "base": "local:minilm-l6-seeded-head"}],
        },
    }
    (tmp_path / "fit.yaml").write_text(yaml.safe_dump(data))
    return tmp_path


def ranx_ndcg(qrels: dict, run: dict) -> float:
    # ranx's ndcg@10 uses the grades as gains, as trec_eval's ndcg_cut_10 does
    return float(ranx_evaluate(Qrels(qrels), Run(run), "ndcg@10"))


def split_references(suite, score_fn):
    """Per split, from the suite's own files (independently of fit_check's bookkeeping): (queries, ranx nDCG@10
    of the first stage, of the teacher, of ``score_fn(pairs)``'s scores)."""
    data = build_training_data(load_suite(suite / "fit.yaml").train, unjudged=True)
    dev_qids = {q for k in data.dev_keys for q in data.queries[k]["qids"]}
    lists = json.loads((suite / "lists.json").read_text())
    grades, teacher = {}, {}
    for line in (suite / "lists.qrels").read_text().split("\n"):
        if line:
            q, _, d, g = line.split()
            grades.setdefault(q, {})[d] = int(g)
    for line in (suite / "teacher.run").read_text().split("\n"):
        if line:
            q, _, d, _, s, _ = line.split()
            teacher.setdefault(q, {})[d] = float(s)
    out = {}
    for split in ("train", "dev"):
        entries = [e for e in lists if (e["hits"][0]["qid"] in dev_qids) == (split == "dev")]
        qids = [e["hits"][0]["qid"] for e in entries]
        qrels = {q: dict(grades[q]) for q in qids}
        first = {q: {h["docid"]: -h["rank"] for h in e["hits"]} for q, e in zip(qids, entries)}
        scores = {
            q: {
                h["docid"]: float(np.float32(s))
                for h, s in zip(e["hits"], score_fn([(e["query"], h["content"]) for h in e["hits"]]))
            }
            for q, e in zip(qids, entries)
        }
        out[split] = (
            len(qids),
            ranx_ndcg(qrels, first),
            ranx_ndcg(qrels, {q: teacher[q] for q in qids}),
            ranx_ndcg(qrels, scores),
        )
    return out


def test_fit_check_scores_each_split_like_ranx_and_the_model_like_sentence_transformers(suite):
    from sentence_transformers import CrossEncoder

    model_dir = builders.bert_cross_encoder(suite / "model", seed=3)
    report = fit_report(suite / "fit.yaml", [str(model_dir)], batch_size=16, max_length=64)
    ce = CrossEncoder(str(model_dir), max_length=64, activation_fn=None)
    for split, (queries, first, teacher, model) in split_references(suite, ce.predict).items():
        row = report["splits"][split]
        assert row["queries"] == queries and row["pairs"] == queries * N_DOCS
        assert row["first_stage"] == pytest.approx(first, abs=1e-9)
        assert row["teacher"] == pytest.approx(teacher, abs=1e-9)
        assert row["models"][str(model_dir)]["ndcg@10"] == pytest.approx(model, abs=1e-6)
    assert report["splits"]["dev"]["queries"] == 3 and report["splits"]["train"]["queries"] == 7


def test_fit_check_scores_a_causal_lm_folder_as_the_llm_reranker(suite):
    """A causal-LM folder is scored as the LLM yes/no reranker (routing + bookkeeping; the reference is
    Qwen3Reranker itself, whose scores have their own parity tests against transformers)."""
    from mlx_cross_encoder import Qwen3Reranker

    model_dir = builders.qwen3_causal_lm(suite / "llm", seed=2)
    report = fit_report(suite / "fit.yaml", [str(model_dir)], batch_size=16, max_length=96)
    llm = Qwen3Reranker(str(model_dir), max_length=96, dtype="float32")
    for split, (queries, _, _, model) in split_references(suite, llm.predict).items():
        assert report["splits"][split]["queries"] == queries
        assert report["splits"][split]["models"][str(model_dir)]["ndcg@10"] == pytest.approx(model, abs=1e-6)
