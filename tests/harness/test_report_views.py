"""The leaderboard's other views: each MLX row against its PyTorch twin (ratio with a bootstrap interval), the
offline scenario's column, the quality-vs-throughput plots beside the Markdown, and CSV/JSON exports that hold the
same figures as the Markdown."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import bootstrap

from harness.cli import main
from harness.report import build_leaderboard, build_report
from harness.report.plots import pareto_front
from harness.results import save_results

QIDS = [str(i) for i in range(10)]


def run(name, backend, quality, passes_s, dtype="float32", weights="9" * 64, pairs=100, scenarios=None):
    per_query = {q: quality for q in QIDS}
    out = {
        "dataset": "toy",
        "reranker": name,
        "backend": backend,
        "device": "cpu",
        "status": "ok",
        "metrics": {"ndcg@10": quality},
        "per_query": {"ndcg@10": per_query},
        "protocol": {
            "first_stage": "bm25",
            "top_k": 10,
            "n_queries": 10,
            "n_pairs": pairs,
            "relevance_level": 1,
            "dataset_fingerprint": "f" * 64,
            "model": "org/m",
            "model_fingerprint": weights,
            "dtype": dtype,
            "max_length": 512,
            "batch_size": 32,
        },
    }
    if backend != "first_stage":
        out["perf"] = {
            "pairs_per_s": pairs / float(np.median(passes_s)),
            "tokens_per_s": 1.0,
            "pairs": pairs,
            "pass_s": passes_s,
            "peak_memory_mb": 10.0,
            "latency_ms": {"p50": 1.0, "p95": 2.0, "p99": 3.0},
        }
        out["latency_samples_ms"] = [1.0] * 10
        out["verdict"] = {"status": "VALID", "reasons": []}
    if scenarios:
        out["scenarios"] = scenarios
    return out


MLX_PASSES = [0.50, 0.52, 0.48, 0.51, 0.49]
TORCH_PASSES = [1.00, 1.10, 0.95, 1.05, 0.98]


def results():
    offline = {
        "scenario": "offline",
        "repeats": 3,
        "pass_s": [0.1, 0.1, 0.1],
        "pairs_per_s": [900.0, 1000.0, 950.0],
        "tokens_per_s": [1.0, 1.0, 1.0],
        "pairs": 100,
        "tokens": 100,
        "samples": 3,
        "verdict": {"status": "INVALID", "reasons": ["machine loaded"]},
    }
    return {
        "schema": 2,
        "suite": "views",
        "baseline": "base-torch",
        "metrics": ["ndcg@10"],
        "environment": {"chip": {"name": "Chip A"}, "hostname_hash": "a", "date": "2026-01-01T00:00:00+00:00"},
        "runs": [
            run("bm25", "first_stage", 0.30, None),
            run("m-fp16-torch", "torch", 0.49, [2.0, 2.1, 1.9], dtype="float16"),  # first: same weights, other dtype
            run("base-torch", "torch", 0.50, TORCH_PASSES),
            run("m-mlx", "mlx", 0.50, MLX_PASSES, scenarios={"offline": offline}),
            run("other-mlx", "mlx", 0.70, [0.2, 0.21, 0.19], weights="8" * 64),  # no torch run of its weights
        ],
    }


def rows_of(markdown):
    """The rows of the toy dataset's table, by reranker."""
    after = markdown.splitlines()[markdown.splitlines().index("## toy") :]
    lines = []
    for line in after:
        if line.startswith("|"):
            lines.append(line)
        elif lines:
            break
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    table = [dict(zip(header, [c.strip() for c in line.strip("|").split("|")])) for line in lines[2:]]
    return {r["reranker"]: r for r in table}


def test_mlx_row_is_compared_with_its_torch_twin_with_an_interval():
    board = build_leaderboard([results()], ["r.json"])
    rows = {r.reranker: r for r in board.sections[0].rows}
    mlx = rows["m-mlx"]
    assert mlx.twin == "base-torch"  # same weights, dtype and truncation; not the fp16 torch run
    single = next(t for t in mlx.twin_ratios if t.scenario == "single_query")
    a, b = np.array([100 / s for s in MLX_PASSES]), np.array([100 / s for s in TORCH_PASSES])
    assert single.ratio == pytest.approx(np.median(a) / np.median(b))
    ref = bootstrap(
        (a, b),
        lambda x, y, axis: np.median(x, axis=axis) / np.median(y, axis=axis),
        vectorized=True,
        n_resamples=2000,
        method="percentile",
        random_state=np.random.default_rng(0),
    )
    assert (single.low, single.high) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high))
    assert rows["other-mlx"].twin is None and rows["m-fp16-torch"].twin is None
    cell = rows_of(build_report([results()]))["m-mlx"]["vs torch twin"]
    assert cell.startswith(f"`base-torch`: {single.ratio:.2f}× [{single.low:.2f}, {single.high:.2f}]")
    assert cell.endswith("Δ ndcg@10 +0.0000")


def test_offline_scenario_gets_its_own_column_with_interval_and_verdict():
    md = build_report([results()])
    row = rows_of(md)["m-mlx"]
    assert row["offline pairs/s"].startswith("950.0 [") and row["offline pairs/s"].endswith("] INVALID")
    assert "offline: machine loaded" in row["status"]
    assert rows_of(md)["base-torch (baseline)"]["offline pairs/s"] == ""


def test_pareto_front_keeps_only_undominated_points():
    pts = [{"x": 1, "y": 0.9}, {"x": 2, "y": 0.8}, {"x": 1.5, "y": 0.7}, {"x": 3, "y": 0.5}, {"x": 0.5, "y": 0.9}]
    assert [(p["x"], p["y"]) for p in pareto_front(pts)] == [(1, 0.9), (2, 0.8), (3, 0.5)]


def test_report_writes_plots_beside_the_markdown_and_exports(tmp_path, capsys):
    path = save_results(results(), tmp_path / "r.json")
    out, exports = tmp_path / "report" / "views.md", tmp_path / "exports"
    assert main(["report", str(path), "--output", str(out), "--export-dir", str(exports)]) == 0
    md = out.read_text()
    assert "![toy: quality vs throughput](views-toy.svg) ([PNG](views-toy.png))" in md
    svg = (out.parent / "views-toy.svg").read_text()
    for name in ("m-mlx", "base-torch", "other-mlx", "m-fp16-torch", "bm25 (first stage)"):
        assert name in svg
    assert (out.parent / "views-toy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # CSV and JSON: one record per Markdown row, the same figures
    table = pd.read_csv(exports / "views-leaderboard.csv")
    records = json.loads((exports / "views-leaderboard.json").read_text())
    assert len(table) == len(records) == len(rows_of(md)) == 5
    by = table.set_index("reranker")
    shown = rows_of(md)
    for name in ("m-mlx", "other-mlx"):
        cell = shown[name]["pairs/s"]
        assert cell.startswith(f"{by.loc[name, 'single_query_pairs_per_s']:.1f} [")
        assert f"[{by.loc[name, 'single_query_pairs_per_s_low']:.1f}, " in cell
    assert by.loc["m-mlx", "twin"] == "base-torch" and by.loc["m-mlx", "offline_verdict"] == "INVALID"
    assert records[[r["reranker"] for r in records].index("m-mlx")]["single_query_twin_ratio"] == pytest.approx(
        by.loc["m-mlx", "single_query_twin_ratio"]
    )
    for name in ("systems", "environments"):
        assert (exports / f"views-{name}.csv").is_file() and (exports / f"views-{name}.json").is_file()
    assert main(["report", str(path), "--output", str(tmp_path / "quiet.md"), "--no-plots"]) == 0
    assert (
        not (tmp_path / "quiet-toy.svg").exists() and "quality vs throughput" not in (tmp_path / "quiet.md").read_text()
    )


def toy_suite(tmp_path):
    """A valid suite of the toy results (cmd_run loads it before measuring; run_suite is stood in for)."""
    suite = tmp_path / "suite.yaml"
    (tmp_path / "c.json").write_text(json.dumps([{"query": "q", "hits": [{"content": "d", "qid": 0, "docid": "d"}]}]))
    (tmp_path / "q.txt").write_text("0 0 d 1\n")
    suite.write_text(
        "name: views\ndatasets: [{name: toy, candidates: c.json, qrels: q.txt}]\n"
        "rerankers: [{name: m-mlx, backend: mlx, model: org/m}]\nmetrics: [ndcg@10]\n"
    )
    return suite


def test_run_report_writes_the_same_views_as_harness_report(tmp_path, monkeypatch, capsys):
    """``harness run --report`` and ``harness report --output`` are one code path: the same Markdown, plots and
    exports. The measurement itself is not under test here: ``run_suite`` returns the toy results (saved)."""
    import harness.run.executor as executor

    path = save_results(results(), tmp_path / "r.json")
    monkeypatch.setattr(executor, "run_suite", lambda suite, **kw: (json.loads(path.read_text()), path))
    suite = toy_suite(tmp_path)
    by_run, by_report = tmp_path / "run" / "views.md", tmp_path / "report" / "views.md"
    assert main(["run", str(suite), "--report", str(by_run), "--export-dir", str(by_run.parent / "x")]) == 0
    assert main(["report", str(path), "--output", str(by_report), "--export-dir", str(by_report.parent / "x")]) == 0
    assert by_run.read_text() == by_report.read_text()
    assert "![toy: quality vs throughput](views-toy.svg)" in by_run.read_text()
    files = {p.relative_to(by_run.parent) for p in by_run.parent.rglob("*")}
    assert files == {p.relative_to(by_report.parent) for p in by_report.parent.rglob("*")}
    assert {"views-toy.svg", "views-toy.png", "x/views-leaderboard.csv"} <= {str(f) for f in files}
    assert main(["run", str(suite), "--report", str(tmp_path / "quiet.md"), "--no-plots"]) == 0
    assert not (tmp_path / "quiet-toy.svg").exists()


def test_quality_option_appends_the_appendix_on_both_commands(tmp_path, monkeypatch, capsys):
    """``--quality DATA_DIR`` appends ``harness.report.references.quality_appendix`` after the leaderboard, on
    ``harness report`` and ``harness run`` alike (a DATA_DIR without the shared lists: their rows say so)."""
    import harness.run.executor as executor
    from harness.report.references import quality_appendix
    from harness.results import load_results

    path = save_results(results(), tmp_path / "r.json")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    loaded = [load_results(path)]
    expected = build_report(loaded, [str(path)]) + "\n" + quality_appendix(loaded, data_dir)
    assert "## References (published figures, not runs)" in expected
    assert "(no trec-dl/bm25_top100_dl19.json)" in expected
    capsys.readouterr()
    assert main(["report", str(path), "--quality", str(data_dir)]) == 0
    assert capsys.readouterr().out == expected + "\n"
    monkeypatch.setattr(executor, "run_suite", lambda suite, **kw: (json.loads(path.read_text()), path))
    suite = toy_suite(tmp_path)
    assert main(["run", str(suite), "--quality", str(data_dir)]) == 0
    assert capsys.readouterr().out == expected + "\n"
