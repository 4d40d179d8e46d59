"""``train:`` models of ``kind: bi_encoder``: InfoNCE on MLX and sentence-transformers' MNRL twin on torch, from the
same pair records and recipe, then evaluated by ``harness run`` like any trained reranker."""

from __future__ import annotations

import json
import random
from pathlib import Path

import builders
import numpy as np
import pytest

from harness.cli import main
from harness.results import load_results
from harness.train.bi_encoder_data import examples_from_records
from harness.train.bi_encoder_worker import infonce_settings
from mlx_cross_encoder.training.settings import TrainingSettings

TESTS = Path(__file__).resolve().parents[1]
TOPICS = ["oauth", "grid", "disease", "metal", "rerank", "river", "music", "physics"]
MAX_LENGTH = 32


def write_candidates(folder: Path, name: str, n_queries: int, seed: int, qid_base: int) -> None:
    """A toy candidate list + qrels: per query 6 candidates, on-topic ones graded 2, then 1, 0, the last unjudged."""
    rng = random.Random(seed)
    fillers = [w for w in builders.words() if w not in TOPICS]
    entries, qrels = [], []
    for i in range(n_queries):
        topic, qid = TOPICS[i % len(TOPICS)], str(qid_base + i)
        hits = []
        for j in range(6):
            word = topic if j % 3 == 0 else rng.choice([t for t in TOPICS if t != topic])
            docid = f"d{qid}-{j}"
            hits.append({"content": " ".join([word, *rng.sample(fillers, 5)]), "qid": qid, "docid": docid,
                         "rank": j + 1, "score": float(6 - j)})  # fmt: skip
            if j < 5:
                qrels.append(f"{qid} 0 {docid} {2 if j % 3 == 0 else (1 if j % 3 == 1 else 0)}")
        entries.append({"query": f"{topic} {rng.choice(fillers)} {rng.choice(fillers)}", "hits": hits})
    (folder / f"{name}.json").write_text(json.dumps(entries))
    (folder / f"{name}.qrels").write_text("\n".join(qrels) + "\n")


def st_folder(folder: Path) -> Path:
    """A tiny sentence-transformers folder (random BERT, mean pooling, Normalize), as all-MiniLM-L6-v2 is laid out."""
    from sentence_transformers import SentenceTransformer, models

    bert = builders.bert_cross_encoder(folder / "bert", seed=3)
    encoder = models.Transformer(str(bert), max_seq_length=MAX_LENGTH)
    pooling = models.Pooling(encoder.get_embedding_dimension(), pooling_mode="mean")
    SentenceTransformer(modules=[encoder, pooling, models.Normalize()], device="cpu").save(str(folder / "st"))
    return folder / "st"


RECIPE = {"num_epochs": 2, "batch_size": 3, "learning_rate": 5e-3, "temperature": 0.1, "group_size": 2,
          "max_grad_norm": None, "max_length": MAX_LENGTH, "seed": 1}  # fmt: skip


def test_harness_run_trains_a_bi_encoder_with_infonce_on_both_backends_alike(tmp_path, monkeypatch, capsys):
    from sentence_transformers import SentenceTransformer

    from mlx_cross_encoder import MLXEmbedder

    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    monkeypatch.setenv("RERANKER_HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    write_candidates(tmp_path, "train", 10, seed=0, qid_base=100)
    write_candidates(tmp_path, "test", 4, seed=1, qid_base=900)
    base = st_folder(tmp_path)
    suite = {
        "name": "tiny-bi-train",
        "datasets": [{"name": "test", "candidates": "test.json", "qrels": "test.qrels", "top_k": 6}],
        "train": {
            "data": [{"candidates": "train.json", "qrels": "train.qrels"}],
            "label_threshold": 2,
            "dev": {"fraction": 0.3, "seed": 0},
            "recipe": RECIPE,
            "models": [{"name": "tb-bi", "base": str(base), "kind": "bi_encoder"}],
        },
        "metrics": ["ndcg@10", "mrr@10"],
        "measure": {"warmup_queries": 1, "repeats": 1},
    }
    (tmp_path / "s.yaml").write_text(json.dumps(suite))
    out = tmp_path / "results" / "r.json"
    code = main(["run", str(tmp_path / "s.yaml"), "--output", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err[-3000:]
    results = load_results(out)
    mlx, torch = results["train"]["models"]
    assert (mlx["backend"], torch["backend"]) == ("mlx", "torch") and mlx["kind"] == torch["kind"] == "bi_encoder"
    assert mlx["status"] == torch["status"] == "ok", (mlx.get("error"), torch.get("error"))
    train_file = next((tmp_path / "results" / "r.train" / "data").glob("train-*.jsonl"))
    records = [json.loads(line) for line in train_file.read_text().splitlines()]
    n_queries = len({r["query"] for r in records})
    assert mlx["n_examples"] == torch["n_examples"] == 2 * n_queries  # 2 positives, 1 grade-0 record each
    assert mlx["infonce"] == torch["infonce"] and mlx["infonce"]["scale"] == pytest.approx(10.0)
    assert mlx["steps"] == torch["steps"] >= 4 and mlx["train_tokens"] == torch["train_tokens"]
    np.testing.assert_allclose(mlx["loss_first_last10"], torch["loss_first_last10"], atol=1e-4, rtol=0)
    assert mlx["final_dev"]["ndcg@10"] == pytest.approx(torch["final_dev"]["ndcg@10"], abs=1e-4)

    # the saved folders: sentence-transformers folders of the trained weights, which both libraries load alike
    texts = builders.DOCUMENTS[:6]
    theirs = SentenceTransformer(torch["model_dir"], device="cpu").encode(texts)
    from_mlx_folder = SentenceTransformer(mlx["model_dir"], device="cpu").encode(texts)
    np.testing.assert_allclose(from_mlx_folder, theirs, atol=1e-4, rtol=0)  # MLX-trained == torch-trained
    np.testing.assert_allclose(MLXEmbedder(mlx["model_dir"]).encode(texts), from_mlx_folder, atol=1e-4, rtol=0)
    before = SentenceTransformer(str(base), device="cpu").encode(texts)
    assert np.abs(theirs - before).max() > 1e-2  # the weights moved

    runs = {r["reranker"]: r for r in results["runs"]}
    assert list(runs) == ["bm25", "tb-bi-mlx", "tb-bi-torch"]
    for block in (mlx, torch):
        run = runs[f"tb-bi-{block['backend']}"]
        assert run["status"] == "ok" and run["train"] == block and run["protocol"]["model_path"] == block["model_dir"]
    assert runs["tb-bi-mlx"]["per_query"]["ndcg@10"] == pytest.approx(runs["tb-bi-torch"]["per_query"]["ndcg@10"])


def job(**settings) -> dict:
    return {"model": "m", "fine_tune": "full", "settings": TrainingSettings(**{**RECIPE, **settings}).model_dump()}


def test_infonce_settings_map_the_recipe_and_refuse_what_infonce_does_not_implement():
    s = infonce_settings(job(max_steps=7))
    assert (s.scale, s.batch_size, s.epochs, s.max_steps, s.learning_rate, s.seed) == (10.0, 3, 2, 7, 5e-3, 1)
    assert infonce_settings(job(max_grad_norm=0.0)).scale == 10.0  # 0 disables clipping, as null does
    with pytest.raises(ValueError) as info:
        infonce_settings(job(max_grad_norm=1.0, loss="listwise", gradient_accumulation_steps=2))
    message = str(info.value)
    assert "train model m (kind bi_encoder)" in message
    for part in ("loss='listwise'", "gradient_accumulation_steps=2", "max_grad_norm=1.0"):
        assert part in message


def test_examples_from_records_pair_each_positive_with_round_robin_grade_zero_negatives():
    def rec(q, d, label, grade):
        return {"query": q, "document": d, "label": label, "grade": grade}

    records = [
        rec("a", "a-pos1", 1.0, 2), rec("a", "a-neg1", 0.0, 0), rec("a", "a-part", 0.0, 1),
        rec("b", "b-pos", 1.0, 3), rec("a", "a-pos2", 1.0, 2), rec("a", "a-pos3", 1.0, 2),
        rec("a", "a-neg2", 0.0, 0), rec("c", "c-pos", 1.0, 2), rec("c", "c-part", 0.0, 1),
    ]  # fmt: skip
    examples = examples_from_records(records, negatives=1)
    assert [(e.query, e.positive, e.negatives, e.qid) for e in examples] == [
        ("a", "a-pos1", ("a-neg1",), "a"),
        ("a", "a-pos2", ("a-neg2",), "a"),
        ("a", "a-pos3", ("a-neg1",), "a"),
    ]  # b has no grade-0 record, c only a partly relevant one (grade 1): neither gives an example
    two = examples_from_records(records, negatives=2)
    assert [e.negatives for e in two] == [("a-neg1", "a-neg2")] * 3
