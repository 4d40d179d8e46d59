"""harness.report.references: first stages scored against ranx, significance against the first stage and between an
MLX run and its PyTorch twin (paired randomization test, Holm), reference lines printed as references."""

from __future__ import annotations

import numpy as np
import pytest
from ranx import Qrels, Run, evaluate
from test_train_suite import write_candidates

from harness.metrics import randomization_p_value
from harness.report.references import first_stage_metrics, quality_appendix, significance_rows
from harness.sources import read_candidates, read_trec_qrels


def test_first_stage_metrics_equal_ranx_on_the_file_order(tmp_path):
    write_candidates(tmp_path, "c", 6, seed=3, qid_base=10)
    means, n = first_stage_metrics(tmp_path / "c.json", tmp_path / "c.qrels", relevance_level=2)
    queries, ranked, _ = read_candidates(tmp_path / "c.json")
    qrels = read_trec_qrels(tmp_path / "c.qrels")
    run = {q: {d: float(100 - i) for i, (d, _) in enumerate(ranked[q])} for q in queries}
    want = evaluate(Qrels(qrels), Run(run), ["ndcg@10"])
    assert n == 6 and means["ndcg@10"] == pytest.approx(want, abs=1e-9)
    binary = {q: {d: int(g >= 2) for d, g in docs.items()} for q, docs in qrels.items()}
    assert means["mrr@10"] == pytest.approx(evaluate(Qrels(binary), Run(run), ["mrr@10"]), abs=1e-9)


def _run(name, backend, fp, values, dataset="dl20"):
    return {
        "reranker": name,
        "backend": backend,
        "dataset": dataset,
        "status": "ok",
        "protocol": {"dataset_fingerprint": fp},
        "metrics": {"ndcg@10": float(np.mean(list(values.values())))},
        "per_query": {"ndcg@10": values},
    }


def test_significance_against_the_first_stage_and_the_twin_on_the_same_candidates():
    rng = np.random.default_rng(0)
    qids = [f"q{i}" for i in range(30)]
    bm25 = {q: float(v) for q, v in zip(qids, rng.uniform(0.2, 0.6, 30))}
    mlx = {q: bm25[q] + 0.2 + float(rng.normal(0, 0.05)) for q in qids}
    torch_same = {q: mlx[q] + float(rng.normal(0, 0.01)) for q in qids}
    torch_other = {q: 0.0 for q in qids}  # other candidates: never the twin
    results = [
        {"runs": [_run("bm25", "first_stage", "B", bm25), _run("m-torch", "torch", "B", torch_other)]},
        {"runs": [_run("bm25", "first_stage", "A", bm25), _run("m-mlx", "mlx", "A", mlx)]},
        {"runs": [_run("bm25", "first_stage", "A", bm25), _run("m-torch", "torch", "A", torch_same)]},
    ]
    tables = significance_rows(results)
    rows = {r["reranker"]: r for r in tables[("dl20", "A")]}
    x, y = np.array([bm25[q] for q in qids]), np.array([mlx[q] for q in qids])
    delta, p, n = rows["m-mlx"]["vs_first"]
    assert (n, delta, p) == (30, pytest.approx(float(np.mean(y - x))), pytest.approx(randomization_p_value(x, y)))
    assert rows["m-mlx"]["vs_first_holm"] == pytest.approx(min(1.0, 2 * p))  # Holm over the table's two rows
    assert rows["m-mlx"]["vs_first_holm"] < 0.05
    t = np.array([torch_same[q] for q in qids])
    assert rows["m-mlx"]["twin"] == "m-torch"
    assert rows["m-mlx"]["vs_twin"][0] == pytest.approx(float(np.mean(y - t)))
    assert "twin" not in rows["m-torch"]
    text = quality_appendix(results, "no-such-dir")
    assert "| dl19 | cross-encoder/ms-marco-MiniLM-L-6-v2" in text and "0.7430" in text
    assert "References (published figures, not runs)" in text


def test_significance_tables_sit_under_their_heading_and_the_learning_curves_after_them():
    qids = [f"q{i}" for i in range(8)]
    bm25 = {q: 0.1 * i for i, q in enumerate(qids)}
    block = {"model": "m", "backend": "mlx", "best_step": 2, "evaluations": [
        {"step": 1, "metrics": {"ndcg@10": 0.4}}, {"step": 2, "metrics": {"ndcg@10": 0.5}}]}  # fmt: skip
    results = [
        {
            "runs": [_run("bm25", "first_stage", "A", bm25), _run("m-mlx", "mlx", "A", {q: 0.5 for q in qids})],
            "train": {"models": [block]},
        }
    ]
    text = quality_appendix(results, "no-such-dir")
    significance, table = text.index("## Significance of ndcg@10"), text.index("### dl20 (first stage `bm25`")
    curves = text.index("## Learning curves: dev ndcg@10")
    assert significance < table < curves
    assert "| 2 | 0.5000* |" in text[curves:]


def test_first_stage_table_sets_the_stored_run_beside_the_computed_one_and_flags_a_difference(tmp_path):
    from harness.report.references import FIRST_STAGES, first_stage_table

    label, dataset, cand, qrels = FIRST_STAGES[0]
    (tmp_path / cand).parent.mkdir(parents=True)
    write_candidates(tmp_path, "c", 5, seed=4, qid_base=10)
    (tmp_path / "c.json").rename(tmp_path / cand)
    (tmp_path / "c.qrels").rename(tmp_path / qrels)
    means, n = first_stage_metrics(tmp_path / cand, tmp_path / qrels)

    def stored(value, max_queries=None):
        run = _run("bm25", "first_stage", "f", {"1": value}, dataset=dataset)
        run["metrics"]["ndcg@10"] = value
        run["protocol"].update(source=f"/x/{cand} + /x/{qrels}", max_queries=max_queries, n_queries=n)
        return {"suite": "fs", "runs": [run]}

    row = next(
        line for line in first_stage_table(tmp_path, [stored(means["ndcg@10"])]) if line.startswith(f"| {label} ")
    )
    assert row.endswith(f"| fs: {means['ndcg@10']:.4f} |")
    row = next(
        line
        for line in first_stage_table(tmp_path, [stored(means["ndcg@10"] + 0.01)])
        if line.startswith(f"| {label} ")
    )
    assert row.endswith("≠ computed |")
    row = next(
        line for line in first_stage_table(tmp_path, [stored(0.5, max_queries=3)]) if line.startswith(f"| {label} ")
    )
    assert row.endswith("| — |")  # a subset run is not the list's first stage
