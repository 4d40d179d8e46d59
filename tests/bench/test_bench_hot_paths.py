"""Hot paths under pytest-benchmark: tokenize+pad, MLX predict on fixed pairs per architecture, metric
evaluation, report building. Each benchmark also checks its result, so a fast wrong answer does not pass."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import builders
import numpy as np
import pytest

RESULTS = Path(__file__).resolve().parents[2] / "results" / "trec-dl-local-cpu.json"
ARCHITECTURES = {
    "bert": builders.bert_cross_encoder,
    "xlm_roberta": builders.xlm_roberta_cross_encoder,
    "modernbert": builders.modernbert_cross_encoder,
}


@pytest.fixture(scope="module", params=sorted(ARCHITECTURES))
def model(request, tmp_path_factory):
    from mlx_cross_encoder import MLXCrossEncoder

    path = ARCHITECTURES[request.param](tmp_path_factory.mktemp(request.param))
    return request.param, MLXCrossEncoder(str(path))


def test_bench_tokenize_and_pad(benchmark, model):
    _, encoder = model
    pairs = builders.pairs()
    ids, mask, _ = benchmark(lambda: encoder._collate(encoder.tokenize(pairs)))
    assert ids.shape == mask.shape and ids.shape[0] == len(pairs)


def test_bench_mlx_predict(benchmark, model):
    _, encoder = model
    pairs = builders.pairs()
    scores = benchmark(encoder.predict, pairs, batch_size=16)
    assert np.all(np.isfinite(np.asarray(scores))) and len(scores) == len(pairs)


def test_bench_metric_evaluation(benchmark):
    from harness.metrics import evaluate

    rng = np.random.default_rng(0)
    qrels = {f"q{i}": {f"d{j}": int(j % 3 == 0) for j in range(20)} for i in range(50)}
    run = {q: {d: float(rng.random()) for d in docs} for q, docs in qrels.items()}
    means, per_query = benchmark(evaluate, qrels, run, ["ndcg@10", "mrr@10", "recall@5"])
    assert set(per_query["ndcg@10"]) == set(qrels) and 0 <= means["ndcg@10"] <= 1


def test_bench_report_building(benchmark):
    from harness.report import build_report

    data = json.loads(RESULTS.read_text())
    text = benchmark(lambda: build_report([copy.deepcopy(data)], [RESULTS.name]))
    assert "ndcg@10" in text
