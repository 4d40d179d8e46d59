"""``train:`` models of ``kind: bi_encoder``: InfoNCE on MLX and sentence-transformers' MNRL twin on torch, from the
same pair records and recipe, then evaluated by ``harness run`` like any trained reranker."""

from __future__ import annotations

import json
import random
from pathlib import Path

import builders
import numpy as np
import pytest

from harness.train.bi_encoder_data import examples_from_records
from harness.train.bi_encoder_worker import infonce_settings
from mlx_cross_encoder.training.settings import TrainingSettings

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


def decoder_st_folder(folder: Path) -> Path:
    """A tiny sentence-transformers folder of a decoder (random Qwen3, last-token pooling, Normalize)."""
    from sentence_transformers import SentenceTransformer, models

    qwen3 = builders.qwen3_causal_lm(folder / "qwen3", seed=3)
    encoder = models.Transformer(str(qwen3), max_seq_length=MAX_LENGTH)
    pooling = models.Pooling(encoder.get_embedding_dimension(), pooling_mode="lasttoken")
    SentenceTransformer(modules=[encoder, pooling, models.Normalize()], device="cpu").save(str(folder / "st"))
    return folder / "st"


#: (base folder builder, the train model's extra keys, recipe keys over RECIPE) per family
FAMILIES = {
    "encoder-full": (st_folder, {}, {}),
    "decoder-lora": (
        decoder_st_folder,
        {"fine_tune": "lora", "lora_rank": 4, "lora_alpha": 8.0},
        {"learning_rate": 3e-2},
    ),
}

RECIPE = {"num_epochs": 2, "batch_size": 3, "learning_rate": 5e-3, "temperature": 0.1, "group_size": 2,
          "max_grad_norm": None, "max_length": MAX_LENGTH, "seed": 1, "eval_steps": 2}  # fmt: skip


@pytest.mark.parametrize("family", list(FAMILIES))
def test_bi_encoder_jobs_train_alike_on_both_backends_and_keep_the_dev_best_step(tmp_path, monkeypatch, family):
    """The harness's training jobs for ``kind: bi_encoder`` (full fine-tuning of an encoder; LoRA on a decoder, the
    adapters fused into the saved folders) (planned by ``harness.train.plan`` from a suite, run by
    the worker's ``run_job`` with the trainer the backend registry names; in this process rather than in two
    worker processes, to keep the test fast): MLX InfoNCE and the sentence-transformers MNRL twin see the same
    examples, take the same steps, evaluate dev at the same steps with the same metrics, keep the same best step
    and save folders that both libraries load and encode alike."""
    from sentence_transformers import SentenceTransformer

    from harness.backends.bi_encoder import model_kind
    from harness.suite import load_suite
    from harness.train.plan import plan_training, selected_jobs
    from harness.train.worker import run_job
    from mlx_cross_encoder import MLXEmbedder

    monkeypatch.setenv("RERANKER_HARNESS_CACHE", str(tmp_path / "cache"))
    write_candidates(tmp_path, "train", 10, seed=0, qid_base=100)
    write_candidates(tmp_path, "test", 4, seed=1, qid_base=900)
    build, model_keys, recipe_keys = FAMILIES[family]
    base = build(tmp_path)
    suite = {
        "name": "tiny-bi-train",
        "datasets": [{"name": "test", "candidates": "test.json", "qrels": "test.qrels", "top_k": 6}],
        "train": {
            "data": [{"candidates": "train.json", "qrels": "train.qrels"}],
            "label_threshold": 2,
            "dev": {"fraction": 0.3, "seed": 0},
            "recipe": {**RECIPE, **recipe_keys},
            "models": [{"name": "tb-bi", "base": str(base), "kind": "bi_encoder", **model_keys}],
        },
        "metrics": ["ndcg@10", "mrr@10"],
    }
    (tmp_path / "s.yaml").write_text(json.dumps(suite))
    loaded = load_suite(tmp_path / "s.yaml")
    plan = plan_training(loaded, selected_jobs(loaded.train, None), tmp_path / "r.train", progress=False)
    assert [(j.backend, j.job["kind"]) for j in plan.jobs] == [("mlx", "bi_encoder"), ("torch", "bi_encoder")]
    mlx, torch = (run_job(j.job) for j in plan.jobs)
    assert mlx["status"] == torch["status"] == "ok"
    records = [json.loads(line) for line in Path(plan.jobs[0].job["train_file"]).read_text().splitlines()]
    n_queries = len({r["query"] for r in records})
    assert mlx["n_examples"] == torch["n_examples"] == 2 * n_queries  # 2 positives, 1 grade-0 record each
    assert mlx["infonce"] == torch["infonce"] and mlx["infonce"]["scale"] == pytest.approx(10.0)
    assert mlx["steps"] == torch["steps"] >= 4 and mlx["train_tokens"] == torch["train_tokens"]
    assert mlx["trainable_parameters"] == torch["trainable_parameters"]  # LoRA: the same adapters on both
    np.testing.assert_allclose(mlx["loss_first_last10"], torch["loss_first_last10"], atol=1e-4, rtol=0)

    # dev checkpoint selection: step 0 (the untrained model), every eval_steps, the last update; same choice
    steps = [e["step"] for e in mlx["evaluations"]]
    assert steps == [e["step"] for e in torch["evaluations"]] == [*range(0, mlx["steps"], 2), mlx["steps"]]
    for mine, theirs in zip(mlx["evaluations"], torch["evaluations"], strict=True):
        assert mine["metrics"] == pytest.approx(theirs["metrics"], abs=1e-4)
    assert mlx["best_step"] == torch["best_step"] and mlx["final_dev"] == pytest.approx(torch["final_dev"], abs=1e-4)
    best = max(e["metrics"]["ndcg@10"] for e in mlx["evaluations"])
    first_best = next(e for e in mlx["evaluations"] if e["metrics"]["ndcg@10"] == best)
    assert (mlx["best_step"], mlx["best_dev"], mlx["final_dev"]) == (first_best["step"], best, first_best["metrics"])

    # the saved folders: sentence-transformers folders of the kept weights, which both libraries load alike
    texts = builders.DOCUMENTS[:6]
    assert model_kind(mlx["model_dir"]) == model_kind(torch["model_dir"]) == "bi_encoder"
    theirs = SentenceTransformer(torch["model_dir"], device="cpu").encode(texts)
    from_mlx_folder = SentenceTransformer(mlx["model_dir"], device="cpu").encode(texts)
    np.testing.assert_allclose(from_mlx_folder, theirs, atol=1e-4, rtol=0)  # MLX-trained == torch-trained
    np.testing.assert_allclose(MLXEmbedder(mlx["model_dir"]).encode(texts), from_mlx_folder, atol=1e-4, rtol=0)
    np.testing.assert_allclose(MLXEmbedder(torch["model_dir"]).encode(texts), theirs, atol=1e-4, rtol=0)  # plain
    before = SentenceTransformer(str(base), device="cpu").encode(texts)
    moved = np.abs(theirs - before).max()
    assert moved > 1e-2 if mlx["best_step"] else moved < 1e-6  # step 0 kept: the base weights

    # evaluated as `harness run` evaluates a trained model: plan.trained_reranker's spec, loaded by load_backend
    # (the registry's bi_encoder module for an embedding folder); the MLX- and torch-trained rerankers score alike
    from harness import backends
    from harness.backends.registry import BACKENDS
    from harness.train.plan import trained_reranker

    pairs = [(builders.QUERIES[0], d) for d in builders.DOCUMENTS[:5]]
    scores = {}
    for planned, block in zip(plan.jobs, (mlx, torch), strict=True):
        planned.block["model_dir"] = block["model_dir"]  # as harness.run.training sets it from the worker's result
        spec = trained_reranker(planned).model_copy(update={"device": "cpu"})
        assert (spec.backend, spec.model, spec.max_length) == (planned.backend, block["model_dir"], MAX_LENGTH)
        loaded = backends.load_backend(spec, MAX_LENGTH, block["model_dir"], BACKENDS[spec.backend].module)
        assert loaded.describe()["kind"] == "bi_encoder"
        scores[planned.backend] = loaded.predict(pairs, 4)
    np.testing.assert_allclose(scores["mlx"], scores["torch"], atol=1e-4, rtol=0)


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
