"""Suites with a ``train:`` section: validation, training data (judged pairs, dev split by query, held-out check),
and ``harness run`` training each model with MLX and PyTorch, then evaluating the trained models."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random
import re
from pathlib import Path

import builders
import numpy as np
import pytest

from harness.backends.registry import BACKENDS
from harness.cli import main
from harness.metrics import evaluate
from harness.results import load_results
from harness.suite import SuiteError, suite_from_dict
from harness.train.data import (
    build_training_data,
    check_held_out,
    jsonl_pairs,
    judged_pairs,
    normalize_query,
    sample_dev_docs,
    sample_pairs,
    split_queries,
)
from harness.train.worker import dev_qrels, read_records
from mlx_cross_encoder.training.settings import TrainingSettings

TESTS = Path(__file__).resolve().parents[1]  # tests/: builders and faulty_trainer live there
TOPICS = ["oauth", "grid", "disease", "metal", "rerank", "river", "music", "physics"]
N_DOCS = 6  # candidates per query; the last one stays unjudged


# --- tiny data ------------------------------------------------------------------------------------------------------
def write_candidates(folder: Path, name: str, n_queries: int, seed: int, qid_base: int) -> dict:
    """A candidate-list JSON + TREC qrels of a learnable toy task (the relevant passages repeat the query's topic
    word); grades 2 (on topic), 1 or 0; the last candidate of each query is unjudged. Returns what was written."""
    rng = random.Random(seed)
    fillers = [w for w in builders.words() if w not in TOPICS]
    entries, qrels, written = [], [], {}
    for i in range(n_queries):
        topic = TOPICS[i % len(TOPICS)]
        qid = str(qid_base + i)
        query = f"{topic} {rng.choice(fillers)} {rng.choice(fillers)}"
        hits, grades = [], {}
        for j in range(N_DOCS):
            on_topic = j % 3 == 0
            word = topic if on_topic else rng.choice([t for t in TOPICS if t != topic])
            docid = f"d{qid}-{j}"
            hits.append(
                {
                    "content": " ".join([word] + rng.sample(fillers, 5)),
                    "qid": qid,
                    "docid": docid,
                    "rank": j + 1,
                    "score": float(N_DOCS - j),
                }
            )
            if j < N_DOCS - 1:
                grades[docid] = 2 if on_topic else (1 if j % 3 == 1 else 0)
                qrels.append(f"{qid} 0 {docid} {grades[docid]}")
        entries.append({"query": query, "hits": hits})
        written[qid] = {"query": query, "hits": {h["docid"]: h["content"] for h in hits}, "grades": grades}
    (folder / f"{name}.json").write_text(json.dumps(entries))
    (folder / f"{name}.qrels").write_text("\n".join(qrels) + "\n")
    return written


@pytest.fixture
def folder(tmp_path):
    write_candidates(tmp_path, "train", 10, seed=0, qid_base=100)
    write_candidates(tmp_path, "test", 5, seed=1, qid_base=900)
    (tmp_path / "extra.jsonl").write_text(json.dumps({"query": "extra query", "document": "extra doc", "label": 1}))
    return tmp_path


def train_suite(**train_overrides) -> dict:
    train = {
        "data": [{"candidates": "train.json", "qrels": "train.qrels"}],
        "label_threshold": 2,
        "dev": {"fraction": 0.3, "seed": 0},
        "recipe": {"epochs": 2, "learning_rate": "1e-3", "batch_size": 8, "max_length": 64, "eval_steps": 3},
        "models": [
            {"name": "tb-full", "base": "local:minilm-l6-seeded-head", "fine_tune": "full"},
            {"name": "tb-lora", "base": "local:minilm-l6-seeded-head", "fine_tune": "lora", "lora_rank": 4},
        ],
    }
    train.update(train_overrides)
    return {
        "name": "tiny-train",
        "datasets": [{"name": "test", "candidates": "test.json", "qrels": "test.qrels", "top_k": 6}],
        "train": train,
        "metrics": ["ndcg@10", "mrr@10"],
        "measure": {"warmup_queries": 1, "repeats": 1},
    }


def set_path(data: dict, path: str, value) -> None:
    keys = re.findall(r"[^.\[\]]+|\[\d+\]", path)
    target = data
    for key in keys[:-1]:
        target = target[int(key[1:-1])] if key.startswith("[") else target.setdefault(key, {})
    last = keys[-1]
    if last.startswith("["):
        target[int(last[1:-1])] = value
    else:
        target[last] = value


# --- validation -----------------------------------------------------------------------------------------------------
def test_a_train_suite_loads_with_defaults_and_overrides(folder):
    data = train_suite()
    data["train"]["models"].append(
        {
            "name": "llm",
            "base": "local:smollm2-135m-instruct",
            "kind": "llm",
            "recipe": {"batch_size": 4, "max_pairs": 20},
            "datasets": ["test"],
            "instruction": "Judge it",
        }
    )
    data["baseline"] = "tb-full-torch"  # a trained reranker may be the baseline
    suite = suite_from_dict(data, folder, source="s.yaml")
    assert suite.rerankers == [] and suite.baseline == "tb-full-torch"
    train = suite.train
    assert [s.kind for s in train.sources] == ["candidates"] and train.sources[0].qrels == folder / "train.qrels"
    assert (train.label_threshold, train.dev.fraction, train.dev.seed) == (2, 0.3, 0)
    full, lora, llm = train.models
    assert (full.kind, full.fine_tune, full.backends, full.datasets, full.batch_size) == (
        "cross_encoder",
        "full",
        ["mlx", "torch"],
        None,
        32,
    )
    assert full.recipe.learning_rate == 1e-3 and full.recipe.num_epochs == 2 and full.recipe.loss == "bce"
    assert full.recipe.warmup_ratio == TrainingSettings().warmup_ratio  # defaults fill what the suite leaves out
    assert (lora.fine_tune, lora.lora_rank, lora.lora_alpha, lora.lora_dropout) == ("lora", 4, 8.0, 0.0)
    # an LLM defaults to LoRA r8; its recipe overrides only what it names
    assert (llm.fine_tune, llm.lora_rank, llm.lora_alpha, llm.instruction) == ("lora", 8, 16.0, "Judge it")
    assert (llm.recipe.batch_size, llm.recipe.max_pairs, llm.recipe.learning_rate, llm.recipe.eval_steps) == (
        4,
        20,
        1e-3,
        3,
    )
    assert train.reranker_names() == [
        "tb-full-mlx",
        "tb-full-torch",
        "tb-lora-mlx",
        "tb-lora-torch",
        "llm-mlx",
        "llm-torch",
    ]


M0, M1 = "train.models[0]", "train.models[1]"


@pytest.mark.parametrize(
    "path, value, message",
    [
        ("train.data", [], "train.data: must be a non-empty list, got a list"),
        (
            "train.data[0]",
            {"candidates": "train.json", "qrels": "train.qrels", "jsonl": "extra.jsonl"},
            "train.data[0]: needs exactly one source: candidates (with qrels) or jsonl (got candidates, jsonl)",
        ),
        (
            "train.data[0]",
            {"candidates": "train.json"},
            "train.data[0].qrels: missing (required with candidates: the judgments give the labels)",
        ),
        (
            "train.data[0]",
            {"jsonl": "extra.jsonl", "qrels": "train.qrels"},
            "train.data[0].qrels: not used with jsonl (its records carry their labels)",
        ),
        ("train.data[0].candidates", "missing.json", "train.data[0].candidates: no such file: "),
        ("train.data[0].qrel", "x", "train.data[0].qrel: unknown key (did you mean 'qrels'?)"),
        ("train.label_threshold", 0, "train.label_threshold: must be a positive integer, got 0"),
        ("train.dev.fraction", 1.0, "train.dev.fraction: must be a number in [0, 1), got 1.0"),
        ("train.dev.fractoin", 0.1, "train.dev.fractoin: unknown key (did you mean 'fraction'?)"),
        (
            "train.recipe.loss",
            "hinge",
            "train.recipe.loss: must be one of bce, listwise, margin_mse, mse, listwise_kl, got 'hinge'",
        ),
        ("train.recipe.learning_rate", "fast", "train.recipe.learning_rate: must be a positive number, got 'fast'"),
        ("train.recipe.learning_rate", 0, "train.recipe.learning_rate: must be a positive number, got 0"),
        ("train.recipe.epochs", 0, "train.recipe.epochs: must be a positive integer, got 0"),
        ("train.recipe.max_pairs", -3, "train.recipe.max_pairs: must be a positive integer or null, got -3"),
        ("train.recipe.warmup_ratio", 1.5, "train.recipe.warmup_ratio: must be a number in [0, 1], got 1.5"),
        ("train.recipe.loss", "mse", "train.recipe.loss: loss 'mse' needs teacher scores, which judged pairs"),
        ("train.models", None, "train.models: must be a non-empty list, got None"),
        (f"{M0}.kind", "t5", f"{M0}.kind: must be one of cross_encoder, llm, bi_encoder, got 't5'"),
        (f"{M0}.lora_rank", 8, f"{M0}.lora_rank: only used with fine_tune: lora (this model is fine_tune: full)"),
        (f"{M0}.instruction", "x", f"{M0}.instruction: only used with kind: llm (a cross-encoder has no prompt)"),
        (f"{M0}.datasets", ["nope"], f"{M0}.datasets[0]: 'nope' is not one of the datasets (test)"),
        (
            f"{M0}.backends",
            ["mlx", "mlx"],
            f"{M0}.backends: must be a non-empty list of distinct values among mlx, torch, got a list",
        ),
        (f"{M0}.recipe.batch_size", 0, f"{M0}.recipe.batch_size: must be a positive integer, got 0"),
        (f"{M0}.base", "./nowhere", f"{M0}.base: no such model path: "),
        (f"{M1}.name", "tb-full", f"{M1}.name: duplicate name 'tb-full' (also train.models[0])"),
        (f"{M0}.name", "bm25", None),  # 'bm25-mlx' does not clash with the first stage 'bm25': valid
        (
            "rerankers",
            [{"name": "tb-full-mlx", "backend": "mlx", "model": "local:minilm-l6-seeded-head"}],
            f"{M0}.name: trained reranker 'tb-full-mlx' is also a name in rerankers",
        ),
        ("train", "later", "train: must be a mapping, got 'later'"),
    ],
)
def test_train_validation_errors(folder, path, value, message):
    data = copy.deepcopy(train_suite())
    set_path(data, path, value)
    if message is None:
        suite_from_dict(data, folder, source="s.yaml")
        return
    with pytest.raises(SuiteError) as info:
        suite_from_dict(data, folder, source="s.yaml")
    assert all(line.startswith("s.yaml: ") for line in info.value.errors)
    assert f"s.yaml: {message}" in str(info.value)


def test_rerankers_are_required_only_without_a_train_section(folder):
    data = train_suite()
    del data["train"]
    with pytest.raises(SuiteError, match="rerankers: missing \\(required unless the suite has a train section\\)"):
        suite_from_dict(data, folder, source="s.yaml")
    data["rerankers"] = []
    with pytest.raises(SuiteError, match="rerankers: must be a non-empty list \\(or give a train section\\)"):
        suite_from_dict(data, folder, source="s.yaml")


def test_yaml_scientific_notation_without_a_dot_is_a_learning_rate(folder):
    (folder / "s.yaml").write_text("train:\n  recipe: {learning_rate: 2e-5}\n")  # PyYAML reads 2e-5 as a string
    import yaml

    data = train_suite()
    data["train"]["recipe"] = yaml.safe_load((folder / "s.yaml").read_text())["train"]["recipe"]
    assert data["train"]["recipe"]["learning_rate"] == "2e-5"
    assert suite_from_dict(data, folder).train.recipe.learning_rate == 2e-5


# --- training data --------------------------------------------------------------------------------------------------
def test_judged_pairs_use_the_judged_candidates_and_the_threshold(folder):
    written = write_candidates(folder, "j", 2, seed=5, qid_base=7)
    pairs = judged_pairs(folder / "j.json", folder / "j.qrels", label_threshold=2)
    expected = [
        (qid, d, q["hits"][d], q["grades"][d], 1.0 if q["grades"][d] >= 2 else 0.0)
        for qid, q in written.items()
        for d in sorted(q["grades"], key=lambda d: int(d.split("-")[1]))
    ]
    assert [(p.qid, p.docid, p.document, p.grade, p.label) for p in pairs] == expected
    assert all(p.query == written[p.qid]["query"] for p in pairs)
    assert len(pairs) == 2 * (N_DOCS - 1)  # the unjudged candidate of each query is not a pair
    at_one = judged_pairs(folder / "j.json", folder / "j.qrels", label_threshold=1)
    assert [p.label for p in at_one] == [1.0 if p.grade >= 1 else 0.0 for p in pairs]


def test_jsonl_records_become_pairs(tmp_path):
    path = tmp_path / "d.jsonl"
    records = [
        {"query": "q1", "document": "a", "label": 1},
        {"query": "q2", "positive": "b", "negative": "c"},
        {"query": "Q1 ", "pos": ["d"], "neg": ["e", "f"]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    pairs = jsonl_pairs(path, label_threshold=2)
    assert [(p.query_key, p.document, p.label, p.grade) for p in pairs] == [
        ("q1", "a", 1.0, 2),
        ("q2", "b", 1.0, 2),
        ("q2", "c", 0.0, 0),
        ("q1", "d", 1.0, 2),
        ("q1", "e", 0.0, 0),
        ("q1", "f", 0.0, 0),
    ]


def test_pairs_are_deduplicated_across_sources(folder):
    data = train_suite()
    data["train"]["data"] = [
        {"candidates": "train.json", "qrels": "train.qrels"},
        {"candidates": "train.json", "qrels": "train.qrels"},
        {"jsonl": "extra.jsonl"},
    ]
    td = build_training_data(suite_from_dict(data, folder).train)
    assert [(s["pairs_read"], s["pairs_kept"]) for s in td.sources] == [(50, 50), (50, 0), (1, 1)]
    assert len(td.pairs) == 51 and len({(p.query_key, p.document) for p in td.pairs}) == 51


def test_dev_split_is_by_query_deterministic_and_seeded():
    keys = [f"query {i}" for i in range(40)]
    train, dev = split_queries(keys, 0.2, seed=0)
    assert len(dev) == 8 and sorted(train + dev) == sorted(keys) and not set(train) & set(dev)
    assert split_queries(list(reversed(keys)), 0.2, seed=0) == (train, dev)  # input order does not matter
    by_hash = sorted(keys, key=lambda k: hashlib.sha256(f"0:{k}".encode()).hexdigest())
    assert dev == sorted(by_hash[:8])  # the documented rule
    assert split_queries(keys, 0.2, seed=1)[1] != dev
    assert split_queries(keys, 0.0, seed=0) == (sorted(keys), [])
    assert len(split_queries(keys[:3], 0.01, seed=0)[1]) == 1  # a positive fraction gives at least one
    with pytest.raises(ValueError, match="leaves no training query"):
        split_queries(keys[:1], 0.5, seed=0)


def test_training_data_splits_every_pair_of_a_query_together(folder):
    td = build_training_data(suite_from_dict(train_suite(), folder).train)
    assert len(td.dev_keys) == 3 and len(td.train_keys) == 7  # round(0.3 * 10)
    assert {p.query_key for p in td.dev_pool} == set(td.dev_keys)
    assert {p.query_key for p in td.train_pool} == set(td.train_keys)
    assert len(td.train_pool) + len(td.dev_pool) == 50


def test_sampling_is_deterministic_nested_and_stratified(folder):
    td = build_training_data(suite_from_dict(train_suite(), folder).train)
    pool = td.train_pool
    small, large = sample_pairs(pool, 10, seed=0), sample_pairs(pool, 20, seed=0)
    assert len(small) == 10 and small == sample_pairs(pool, 10, seed=0)
    assert all(p in large for p in small)
    assert sample_pairs(pool, 10, seed=1) != small and sample_pairs(pool, None, 0) == pool
    dev = sample_dev_docs(td.dev_pool, 2, seed=0)
    for key in td.dev_keys:
        kept = [p for p in dev if p.query_key == key]
        assert len(kept) == 2 and {p.label for p in kept} == {0.0, 1.0}  # one positive, one negative


def test_training_data_overlapping_an_evaluated_dataset_is_refused(folder):
    suite = suite_from_dict(train_suite(), folder, source="s.yaml")
    td = build_training_data(suite.train)
    checked = check_held_out(td, suite.datasets, "s.yaml")
    assert checked["datasets"] == {"test": 5} and checked["overlap"] == 0
    # the same query text (other case, spacing and punctuation) under another qid ...
    test = json.loads((folder / "test.json").read_text())
    train = json.loads((folder / "train.json").read_text())
    test[2]["query"] = "  " + train[4]["query"].upper() + "?"
    (folder / "test.json").write_text(json.dumps(test))
    with pytest.raises(SuiteError) as info:
        check_held_out(td, suite.datasets, "s.yaml")
    text = str(info.value)
    assert text.startswith("s.yaml: the training data hold 1 queries of evaluation dataset test: 902 ")
    assert "(same text)" in text and "must be held out" in text
    # ... or the same qid with another text
    test[2]["query"] = "something else entirely"
    for hit in test[2]["hits"]:
        hit["qid"] = "104"
    (folder / "test.json").write_text(json.dumps(test))
    with pytest.raises(SuiteError, match=r"104 'something else entirely' \(same qid as training query"):
        check_held_out(td, suite.datasets, "s.yaml")
    assert normalize_query("  What IS  oauth?") == normalize_query("what is oauth")


def test_a_judged_pool_dataset_holding_a_training_query_is_refused(folder):
    """A judged_pool dataset (NovelEval's source) names its queries file: its queries are checked like any other."""
    train = json.loads((folder / "train.json").read_text())
    (folder / "pool.qrels").write_text("q1 0 p1 2\nq1 0 p2 0\n")
    (folder / "pool.tsv").write_text("p1\tfirst passage\np2\tsecond passage\n")
    (folder / "pool-queries.tsv").write_text("q1\tan unrelated question\n")
    data = train_suite()
    data["datasets"] = [
        {"name": "pool", "judged_pool": "pool.qrels", "corpus": "pool.tsv", "queries": "pool-queries.tsv"}
    ]
    suite = suite_from_dict(data, folder, source="s.yaml")
    td = build_training_data(suite.train)
    assert check_held_out(td, suite.datasets, "s.yaml")["datasets"] == {"pool": 1}
    (folder / "pool-queries.tsv").write_text(f"q1\t{train[3]['query'].title()}\n")
    with pytest.raises(SuiteError, match=r"hold 1 queries of evaluation dataset pool: q1 .*\(same text\)"):
        check_held_out(td, suite.datasets, "s.yaml")


def test_harness_run_refuses_overlapping_data_before_training(folder, capsys):
    data = train_suite()
    data["train"]["data"].append({"candidates": "test.json", "qrels": "test.qrels"})  # the evaluation data itself
    (folder / "s.yaml").write_text(json.dumps(data))
    code = main(["run", str(folder / "s.yaml"), "--output", str(folder / "out" / "r.json"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert "harness: error: " in err and "the training data hold 5 queries of evaluation dataset test" in err
    written = sorted(p.name for p in (folder / "out").rglob("*")) if (folder / "out").exists() else []
    assert not [n for n in written if n.endswith(".json") or n.endswith(".train")], written  # nothing trained


def test_dev_qrels_follow_the_trainers_numbering():
    from mlx_cross_encoder.training.data import eval_rankings

    records = [
        {"query": "b", "document": "x", "label": 1, "grade": 3},
        {"query": "a", "document": "y", "label": 0, "grade": 0},
        {"query": "b", "document": "z", "label": 0, "grade": 1},
    ]
    queries, docs, _ = eval_rankings(records)
    assert dev_qrels(records) == {"q0": {"q0-d0": 3, "q0-d1": 1}, "q1": {"q1-d0": 0}}
    assert (queries["q0"], docs["q0"]) == ("b", ["x", "z"])


def test_torch_dev_selection_restores_the_best_weights():
    import torch

    from harness.train.torch_common import DevSelection

    layer = torch.nn.Linear(2, 1)
    values = iter([0.5, 0.9, 0.7])
    selection = DevSelection(
        TrainingSettings(eval_steps=2), 6, lambda: {"ndcg@10": next(values)}, lambda: layer.named_parameters()
    )
    snapshots = {}
    for step in range(1, 7):
        with torch.no_grad():
            layer.weight += 1.0  # "training"
        if selection.due(step, epoch_end=False):
            selection.run(step)
            snapshots[step] = layer.weight.detach().clone()
    assert list(snapshots) == [2, 4, 6]
    assert selection.finish() == {"ndcg@10": 0.9} and selection.best_step == 4
    assert torch.equal(layer.weight, snapshots[4])
    assert [e["improved"] for e in selection.evaluations] == [True, True, False]


def test_torch_dev_selection_counts_an_improvement_by_the_mlx_trainers_rule():
    """A new best must beat the best so far by more than early_stopping_threshold, in the direction
    greater_is_better says, as the MLX trainers' _evaluate_step counts it (written out here by hand)."""
    from harness.train.torch_common import DevSelection

    def improved(values, **settings):
        values = iter(values)
        selection = DevSelection(TrainingSettings(**settings), 10, lambda: {"loss": next(values)}, lambda: iter(()))
        for step in range(1, 5):
            selection.run(step)
        return [e["improved"] for e in selection.evaluations], selection.best_step

    # higher is better, threshold 0.05: 0.52 is not 0.05 above 0.5; 0.6 is; 0.64 is not above 0.6 + 0.05
    assert improved([0.5, 0.52, 0.6, 0.64], metric_for_best="loss", early_stopping_threshold=0.05) == (
        [True, False, True, False],
        3,
    )
    # lower is better, no threshold: 0.4 and 0.3 improve, 0.45 and an equal 0.3 do not
    assert improved([0.4, 0.45, 0.3, 0.3], metric_for_best="loss", greater_is_better=False) == (
        [True, False, True, False],
        3,
    )
    with pytest.raises(KeyError, match="metric_for_best='ndcg@10' is not among the metrics \\['loss'\\]"):
        improved([0.5, 0.5, 0.5, 0.5])


# --- harness run ----------------------------------------------------------------------------------------------------
@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("PYTHONPATH", str(TESTS))  # workers import faulty_trainer from here
    monkeypatch.setenv("RERANKER_HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def tiny_suite_file(folder: Path, **overrides) -> Path:
    bert = builders.bert_cross_encoder(folder / "bert", seed=0)
    data = train_suite(**overrides)
    for m in data["train"]["models"]:
        m["base"] = str(bert)
    path = folder / "s.yaml"
    path.write_text(json.dumps(data))
    return path


def dev_metric_of_saved_model(block: dict) -> float:
    """nDCG@10 on the dev file of the model folder the run evaluated, loaded as a plain checkpoint."""
    dev = read_records(next((Path(block["artifact_dir"]).parent / "data").glob("dev-*.jsonl")))
    pairs = [(r["query"], r["document"]) for r in dev]
    if block["backend"] == "mlx":
        from mlx_cross_encoder import MLXCrossEncoder

        scores = MLXCrossEncoder(block["model_dir"], max_length=64).predict(pairs, activation_fn="identity")
    else:
        import torch
        from sentence_transformers import CrossEncoder

        model = CrossEncoder(block["model_dir"], max_length=64, device="cpu")
        scores = model.predict(pairs, activation_fn=torch.nn.Identity())  # raw scores, as the trainers rank
    qrels = dev_qrels(dev)
    ids = [(q, d) for q, docs in qrels.items() for d in docs]
    order = {}
    for r in dev:
        order.setdefault(r["query"], len(order))
    keyed = {}
    counters = {}
    for r, s in zip(dev, np.asarray(scores)):
        q = f"q{order[r['query']]}"
        counters[q] = counters.get(q, -1) + 1
        keyed.setdefault(q, {})[f"{q}-d{counters[q]}"] = float(s)
    assert sorted((q, d) for q in keyed for d in keyed[q]) == sorted(ids)
    return evaluate(qrels, keyed, ["ndcg@10"], 2)[0]["ndcg@10"]


def test_harness_run_trains_both_backends_and_evaluates_the_trained_models(folder, env, capsys):
    suite = tiny_suite_file(folder)
    out = folder / "results" / "r.json"
    code = main(["run", str(suite), "--output", str(out), "--report", str(folder / "r.md"), "--no-progress"])
    report, err = capsys.readouterr()
    assert code == 0, err[-3000:]
    results = load_results(out)
    blocks = results["train"]["models"]
    names = ["tb-full-mlx", "tb-full-torch", "tb-lora-mlx", "tb-lora-torch"]
    assert [f"{b['model']}-{b['backend']}" for b in blocks] == names
    assert results["train"]["n_pairs"] == 50 and results["train"]["n_dev_queries"] == 3
    n_train = blocks[0]["data"]["n_train_pairs"]
    assert n_train == 50 - blocks[0]["data"]["n_dev_pairs"] and blocks[0]["data"]["n_dev_queries"] == 3
    for b in blocks:
        assert b["status"] == "ok", b.get("error")
        assert b["data"] == blocks[0]["data"]  # same pairs, same dev split for every model and backend
        assert b["steps"] == 2 * math.ceil(n_train / 8)  # 2 epochs of batch 8
        assert b["train_time_s"] > 0 and b["wall_time_s"] > b["train_time_s"] and b["tokens_per_s"] > 0
        assert b["peak_memory_mb"] > 0 and b["peak_memory_measure"] and b["peak_rss_mb"] > 0
        assert b["recipe"]["learning_rate"] == 1e-3 and b["recipe"]["num_epochs"] == 2
        evals = b["evaluations"]
        assert [e["step"] for e in evals] == [s for s in range(1, b["steps"] + 1) if s % 3 == 0 or s == b["steps"]]
        best = max(evals, key=lambda e: e["metrics"]["ndcg@10"])  # the first of the best (strictly better wins)
        assert (b["best_step"], b["best_dev"]) == (best["step"], best["metrics"]["ndcg@10"])
        assert b["final_dev"] == best["metrics"]
        # the folder that was evaluated is the chosen checkpoint (LoRA merged): it reproduces the best dev value
        assert dev_metric_of_saved_model(b) == pytest.approx(b["best_dev"], abs=1e-6)
        assert (b["adapter_dir"] is not None) == (b["fine_tune"] == "lora")  # LoRA: the adapter is kept too
        assert b["adapter_dir"] is None or Path(b["adapter_dir"]).is_relative_to(b["artifact_dir"])
        assert b["adapter_dir"] is None or any(Path(b["adapter_dir"]).glob("*.safetensors"))
        assert Path(b["artifact_dir"]).parent == folder / "results" / "r.train"
    assert blocks[2]["trainable_parameters"] == blocks[3]["trainable_parameters"] < blocks[0]["trainable_parameters"]

    runs = {r["reranker"]: r for r in results["runs"]}
    assert list(runs) == ["bm25", *names]
    base_fingerprint = runs["tb-full-mlx"]["train"]["base"]
    for b, name in zip(blocks, names):
        run = runs[name]
        assert run["status"] == "ok" and run["train"] == b and run["backend"] == b["backend"]
        assert run["protocol"]["model_path"] == b["model_dir"] and run["protocol"]["max_length"] == 64
        assert run["protocol"]["model_fingerprint"] == b["model_fingerprint"] != base_fingerprint
        assert run["protocol"]["n_queries"] == 5 and set(run["metrics"]) == {"ndcg@10", "mrr@10"}

    # the training table: one row per model and backend, evaluated values and differences from the runs
    assert report.strip() == (folder / "r.md").read_text().strip()
    section = report.split("## Training", 1)[1].split("## Systems", 1)[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("| ")]
    header, rows = rows[0], rows[1:]
    assert header[:3] == ["model", "backend", "chip"] and "dev nDCG@10 (step)" in header
    assert header[-4:] == ["test ndcg@10", "test Δ torch", "test Δ bm25", "status"]
    ndcg = {name: runs[name]["metrics"]["ndcg@10"] for name in runs}
    for row, name in zip(rows, names):
        cells = dict(zip(header, row))
        assert f"{cells['model']}-{cells['backend']}" == name and cells["status"] == "ok"
        assert cells["test ndcg@10"] == f"{ndcg[name]:.4f}"
        assert cells["test Δ bm25"] == f"{ndcg[name] - ndcg['bm25']:+.4f}"
        twin = name.replace("-mlx", "-torch")
        assert cells["test Δ torch"] == ("" if name == twin else f"{ndcg[name] - ndcg[twin]:+.4f}")
        block = blocks[names.index(name)]
        assert cells["dev nDCG@10 (step)"] == f"{block['best_dev']:.4f} ({block['best_step']})"


def test_a_crashed_training_is_an_error_and_the_other_runs_complete(folder, env, capsys, monkeypatch):
    monkeypatch.setitem(BACKENDS["torch"].trainers, "cross_encoder", "faulty_trainer:train_killed")
    suite = tiny_suite_file(folder, models=[{"name": "tb", "base": "x", "fine_tune": "full"}])
    out = folder / "r.json"
    code = main(["run", str(suite), "--output", str(out), "--no-progress", "--train-max-pairs", "12"])
    report, err = capsys.readouterr()
    assert code == 1
    results = load_results(out)
    mlx_block, torch_block = results["train"]["models"]
    assert mlx_block["status"] == "ok" and mlx_block["data"]["n_train_pairs"] == 12
    assert mlx_block["steps"] == 2 * math.ceil(12 / 8) and mlx_block["recipe"]["max_pairs"] == 12
    assert results["selection"]["train_max_pairs"] == 12
    assert torch_block["status"] == "error" and torch_block["error"] == "worker killed (likely out of memory)"
    assert torch_block["signal"] == "SIGKILL"
    runs = {r["reranker"]: r for r in results["runs"]}
    assert runs["bm25"]["status"] == "ok" and runs["tb-mlx"]["status"] == "ok" and runs["tb-mlx"]["metrics"]
    assert runs["tb-torch"]["status"] == "error"
    assert runs["tb-torch"]["error"] == "training failed: worker killed (likely out of memory)"
    assert runs["tb-torch"]["train"] == torch_block
    assert "[train 2/2] tb-torch: error: worker killed (likely out of memory)" in err
    assert "| tb      | torch     |" in report and "error: worker killed (likely out of memory)" in report


def test_a_training_that_raises_keeps_its_traceback(folder, env, monkeypatch):
    monkeypatch.setitem(BACKENDS["mlx"].trainers, "cross_encoder", "faulty_trainer:train_raises")
    suite = tiny_suite_file(folder, models=[{"name": "tb", "base": "x", "backends": ["mlx"]}])
    code = main(["run", str(suite), "--output", str(folder / "r.json"), "--no-progress"])
    assert code == 1
    block = load_results(folder / "r.json")["train"]["models"][0]
    assert block["error"] == "RuntimeError: deliberate training failure for tb-mlx"
    assert "faulty_trainer.py" in block["traceback"]


# --- LLM rerankers: trained, saved as plain checkpoints, evaluated --------------------------------------------------
def test_llm_rerankers_train_on_both_backends_and_are_evaluated(folder, env, tmp_path, capsys):
    """Both LLM trainers save ``model/`` with LoRA merged; the harness evaluates those folders as causal-LM rerankers,
    and loaded as plain causal LMs (MLX ``Qwen3Reranker``, transformers) they give the dev nDCG@10 the trainers chose
    the checkpoint by."""
    import torch
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.train.torch_llm import LLMRerankerScorer
    from mlx_cross_encoder import Qwen3Reranker

    qwen = builders.qwen3_causal_lm(tmp_path / "qwen", seed=0)
    data = train_suite(models=[{"name": "tq", "base": str(qwen), "kind": "llm", "lora_rank": 4, "batch_size": 8}])
    data["train"]["recipe"].update(epochs=1, max_length=128, eval_steps=2)
    (folder / "s.yaml").write_text(json.dumps(data))
    code = main(["run", str(folder / "s.yaml"), "--output", str(folder / "r.json"), "--no-progress"])
    report, err = capsys.readouterr()
    assert code == 0, err[-3000:]
    results = load_results(folder / "r.json")
    runs = {r["reranker"]: r for r in results["runs"]}
    assert list(runs) == ["bm25", "tq-mlx", "tq-torch"]
    for block in results["train"]["models"]:
        name = f"{block['model']}-{block['backend']}"
        assert block["status"] == "ok" and block["kind"] == "llm" and block["best_dev"] is not None
        assert block["steps"] == math.ceil(block["data"]["n_train_pairs"] / 8)
        run = runs[name]
        assert run["status"] == "ok" and run["train"] == block and run["protocol"]["model_path"] == block["model_dir"]
        assert run["protocol"]["max_length"] == 128 and run["system"]["architecture"] == "Qwen3ForCausalLM"
        with safe_open(str(Path(block["model_dir"]) / "model.safetensors"), "np") as f:
            assert f.keys() and not [k for k in f.keys() if "lora" in k]  # merged: plain weights only
        assert Path(block["adapter_dir"]).is_dir()

        dev = read_records(next((folder / "r.train" / "data").glob("dev-*.jsonl")))
        pairs = [(r["query"], r["document"]) for r in dev]
        if block["backend"] == "mlx":
            scores = Qwen3Reranker(block["model_dir"], max_length=128).predict(pairs)
        else:
            model = AutoModelForCausalLM.from_pretrained(block["model_dir"], dtype=torch.float32).eval()
            scorer = LLMRerankerScorer(model, AutoTokenizer.from_pretrained(block["model_dir"]), 128)
            with torch.inference_mode():
                scores = scorer.scores(pairs)[0].numpy()
        order, seen, keyed = {}, {}, {}
        for r in dev:
            order.setdefault(r["query"], len(order))
        for r, s in zip(dev, np.asarray(scores)):
            q = f"q{order[r['query']]}"
            seen[q] = seen.get(q, -1) + 1
            keyed.setdefault(q, {})[f"{q}-d{seen[q]}"] = float(s)
        got = evaluate(dev_qrels(dev), keyed, ["ndcg@10"], 2)[0]["ndcg@10"]
        assert got == pytest.approx(block["best_dev"], abs=1e-6), name
    assert "| tq      | mlx       |" in report


# --- local:smollm2-135m-instruct ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_smollm2_recipe_is_the_gguf_as_a_folder_both_libraries_load(tmp_path, monkeypatch):
    """The recipe's float32 folder scores exactly as MLX scores the GGUF itself, and transformers loads it too."""
    from harness.localmodels import resolve_model, smollm2_gguf_path
    from harness.qwen3_recipe import Qwen3RerankerTorch
    from mlx_cross_encoder import Qwen3Reranker

    try:
        gguf = smollm2_gguf_path()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    monkeypatch.setenv("RERANKER_HARNESS_CACHE", str(tmp_path))
    folder = Path(resolve_model("local:smollm2-135m-instruct"))
    assert folder == tmp_path / "models" / "smollm2-135m-instruct"
    config = json.loads((folder / "config.json").read_text())
    assert (config["architectures"], config["num_hidden_layers"], config["tie_word_embeddings"]) == (
        ["LlamaForCausalLM"],
        30,
        True,
    )
    pairs = builders.pairs(12)
    from_gguf = Qwen3Reranker(gguf, max_length=128).predict(pairs)  # dequantized exactly on the CPU
    np.testing.assert_array_equal(Qwen3Reranker(folder, max_length=128).predict(pairs), from_gguf)
    np.testing.assert_allclose(Qwen3RerankerTorch(folder, max_length=128).predict(pairs), from_gguf, atol=1e-5)
