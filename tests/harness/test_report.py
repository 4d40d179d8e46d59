"""Markdown leaderboards from results files written here: contents, ratios, significance marks, merged chips."""

from __future__ import annotations

import json
import re

import pytest

from harness.cli import main
from harness.metrics import significance
from harness.report import build_report, report_files
from harness.results import save_results

QIDS = [str(i) for i in range(20)]
BASE = {q: 0.3 for q in QIDS}
STRONG = {q: 0.9 for q in QIDS}  # +0.6 on every query: significant
NOISY = {q: 0.3 + (0.01 if i % 2 else -0.01) for i, q in enumerate(QIDS)}  # mean difference 0: not significant


def environment(chip: str, host: str, date: str = "2026-01-02T03:04:05+00:00") -> dict:
    return {
        "chip": {"name": chip},
        "hostname_hash": host,
        "date": date,
        "git": {"commit": "0123456789abcdef", "dirty": True},
        "os": {"platform": "TestOS-1"},
        "packages": {"mlx": "0.32.4", "torch": "2.13.0"},
    }


def protocol(fingerprint: str = "f" * 64) -> dict:
    return {
        "first_stage": "bm25",
        "top_k": 100,
        "add_judged_positives": False,
        "n_queries": 20,
        "n_pairs": 2000,
        "relevance_level": 2,
        "dataset_fingerprint": fingerprint,
        "max_length": 512,
        "dtype": "float16",
        "model": "org/model",
        "model_fingerprint": "9" * 64,
        "max_length_source": "tokenizer",
        "batch_size": 32,
    }


def ok_run(name, backend, per_query, pairs_per_s=None, device="mlx-gpu", fingerprint="f" * 64) -> dict:
    run = {
        "dataset": "toy",
        "reranker": name,
        "backend": backend,
        "device": device,
        "status": "ok",
        "metrics": {"ndcg@10": sum(per_query.values()) / len(per_query), "mrr@10": 0.5},
        "per_query": {"ndcg@10": dict(per_query), "mrr@10": {q: 0.5 for q in per_query}},
        "protocol": protocol(fingerprint),
    }
    if backend != "first_stage":
        run["perf"] = {
            "pairs_per_s": pairs_per_s,
            "tokens_per_s": pairs_per_s * 40,
            "peak_memory_mb": 1234.0,
            "peak_rss_mb": 2000.0,
            "latency_ms": {"p50": 11.25, "p95": 20.5, "p99": 30.0},
        }
        run["latency_samples_ms"] = [11.25, 20.5]
    return run


def error_run(name, backend, message) -> dict:
    return {
        "dataset": "toy",
        "reranker": name,
        "backend": backend,
        "device": None,
        "status": "error",
        "error": message,
        "metrics": {},
        "per_query": {},
        "protocol": protocol(),
    }


def results(env, runs, baseline="base") -> dict:
    return {
        "schema": 1,
        "suite": "toy-suite",
        "baseline": baseline,
        "metrics": ["ndcg@10", "mrr@10"],
        "environment": env,
        "runs": runs,
    }


def chip_a() -> dict:
    return results(
        environment("Chip A", "aaaa"),
        [
            ok_run("bm25", "first_stage", BASE, device=None),
            ok_run("base", "torch", BASE, 100.0, device="mps"),
            ok_run("strong", "mlx", STRONG, 250.0),
            ok_run("noisy", "mlx", NOISY, 50.0),
            error_run("huge", "mlx", "worker killed (likely out of memory)\nmore detail"),
        ],
    )


def chip_b() -> dict:
    return results(
        environment("Chip B", "bbbb"),
        [ok_run("base", "torch", BASE, 40.0, device="cuda"), ok_run("strong", "mlx", STRONG, 120.0)],
    )


def split_row(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
    return [c.strip() for c in cells]


def table_after(markdown: str, heading: str) -> list[dict[str, str]]:
    """The first Markdown table after ``heading``, as rows of column -> cell."""
    lines = markdown.splitlines()
    start = lines.index(heading)
    table = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            table.append(line)
        elif table:
            break
    header = split_row(table[0])
    return [dict(zip(header, split_row(line))) for line in table[2:]]


def rows_by(rows, *keys):
    return {tuple(r[k] for k in keys): r for r in rows}


def test_leaderboard_contents_ratios_and_marks():
    md = build_report([chip_a()], ["a.json"])
    rows = table_after(md, "## toy")
    assert [r["reranker"] for r in rows] == ["bm25", "strong", "base (baseline)", "noisy", "huge"]
    by = rows_by(rows, "reranker")
    strong, base, noisy, huge = by[("strong",)], by[("base (baseline)",)], by[("noisy",)], by[("huge",)]
    assert strong["ndcg@10"] == "0.9000†" and strong["Δ ndcg@10"] == "+0.6000†"
    assert strong["mrr@10"] == "0.5000"  # equal per-query values: no mark
    assert strong["× base pairs/s"] == "2.50×" and noisy["× base pairs/s"] == "0.50×"
    assert base["× base pairs/s"] == "1.00×" and base["Δ ndcg@10"] == ""
    assert noisy["ndcg@10"] == "0.3000" and noisy["Δ ndcg@10"] == "+0.0000"
    assert strong["pairs/s"] == "250.0" and strong["tokens/s"] == "10,000"
    assert strong["p50 ms"] == "11.25" and strong["p95 ms"] == "20.50" and strong["peak MB"] == "1,234"
    assert (strong["backend"], strong["device"], strong["chip"]) == ("mlx", "mlx-gpu", "Chip A")
    assert base["device"] == "mps" and strong["status"] == "ok"
    assert huge["status"] == "error: worker killed (likely out of memory)"
    assert huge["ndcg@10"] == "" and huge["pairs/s"] == "" and huge["× base pairs/s"] == ""
    first = by[("bm25",)]
    assert first["backend"] == "first_stage" and first["pairs/s"] == "" and first["ndcg@10"] == "0.3000"
    # header: suite, date, commit, chip; candidate protocol
    env = table_after(md, "# Reranker leaderboard: toy-suite")[0]
    assert env["suite"] == "toy-suite" and env["date (UTC)"] == "2026-01-02T03:04:05+00:00"
    assert env["commit"] == "0123456789 (dirty)" and env["chip"] == "Chip A" and env["runs"] == "4 ok / 1 error"
    assert "first stage `bm25`, top-k 100, judged positives added: no, 20 queries, 2000 pairs" in md
    assert "relevant = grade ≥ 2" in md
    systems = rows_by(table_after(md, "## Systems"), "reranker")
    assert systems[("strong",)]["max_length"] == "512 (tokenizer)" and systems[("strong",)]["dtype"] == "float16"


def test_marks_follow_the_significance_test():
    """The † marks are exactly harness.metrics.significance's verdicts (Holm over the machine's systems)."""
    expected = significance(BASE, {"bm25": BASE, "strong": STRONG, "noisy": NOISY})
    assert expected["strong"]["significant"] and not expected["noisy"]["significant"]
    rows = rows_by(table_after(build_report([chip_a()]), "## toy"), "reranker")
    for name in ("bm25", "strong", "noisy"):
        assert rows[(name,)]["ndcg@10"].endswith("†") == expected[name]["significant"]


def test_chips_merge_into_one_table_with_baselines_per_chip():
    md = build_report([chip_a(), chip_b()], ["a.json", "b.json"])
    rows = rows_by(table_after(md, "## toy"), "reranker", "chip")
    assert len(rows) == 7
    # each ratio against its own machine's baseline: 250/100 on A, 120/40 on B (not 120/100)
    assert rows[("strong", "Chip A")]["× base pairs/s"] == "2.50×"
    assert rows[("strong", "Chip B")]["× base pairs/s"] == "3.00×"
    assert rows[("base (baseline)", "Chip B")]["device"] == "cuda"
    assert rows[("strong", "Chip B")]["Δ ndcg@10"] == "+0.6000†"
    envs = table_after(md, "# Reranker leaderboard: toy-suite")
    assert [e["chip"] for e in envs] == ["Chip A", "Chip B"] and [e["results"] for e in envs] == ["a.json", "b.json"]


def test_machine_without_a_successful_baseline_gets_no_ratios():
    other = results(
        environment("Chip C", "cccc"), [error_run("base", "torch", "boom"), ok_run("strong", "mlx", STRONG, 9.0)]
    )
    md = build_report([other])
    rows = rows_by(table_after(md, "## toy"), "reranker")
    assert rows[("strong",)]["× base pairs/s"] == "" and rows[("strong",)]["ndcg@10"] == "0.9000"
    assert "No successful baseline run (`base`) on Chip C" in md


def test_different_candidate_sets_are_not_compared():
    other = results(environment("Chip B", "bbbb"), [ok_run("strong", "mlx", STRONG, 120.0, fingerprint="e" * 64)])
    md = build_report([chip_a(), other])
    assert "## toy — candidate set 1 of 2" in md and "## toy — candidate set 2 of 2" in md
    second = table_after(md, "## toy — candidate set 2 of 2")
    assert [(r["reranker"], r["chip"], r["× base pairs/s"]) for r in second] == [("strong", "Chip B", "")]


def test_error_text_cannot_break_the_table():
    res = results(environment("Chip A", "aaaa"), [error_run("x", "mlx", "bad | value")], baseline=None)
    md = build_report([res])
    rows = table_after(md, "## toy")
    assert rows[0]["status"] == "error: bad \\| value"
    assert "No baseline in the suite" in md


def test_report_command_prints_and_writes(tmp_path, capsys):
    a = save_results(chip_a(), tmp_path / "a.json")
    b = save_results(chip_b(), tmp_path / "b.json")
    out = tmp_path / "report" / "merged.md"
    assert main(["report", str(a), str(b), "--output", str(out), "--no-plots"]) == 0  # plots: test_report_views
    printed = capsys.readouterr().out
    assert out.read_text() == printed
    assert printed.strip() == report_files([a, b]).strip()
    assert len(table_after(printed, "## toy")) == 7


def test_report_command_bad_file_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": 7}')
    assert main(["report", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"harness: error: {bad}: schema 7 is not supported: this harness reads schemas 1")
    assert "\n" not in err
    assert main(["report", str(tmp_path / "missing.json")]) == 2
    assert "no such results file" in capsys.readouterr().err


@pytest.mark.parametrize("command", [[], ["run"], ["report"], ["list"]])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    assert "usage: harness" in capsys.readouterr().out


def test_runs_that_failed_before_loading_the_dataset_join_its_table():
    failed = error_run("base", "torch", "dataset toy could not be loaded: FileNotFoundError: x")
    failed["protocol"] = {"first_stage": "bm25", "top_k": 100}  # no fingerprint: the dataset never loaded
    md = build_report([chip_a(), results(environment("Chip B", "bbbb"), [failed])])
    assert "candidate set" not in md
    rows = rows_by(table_after(md, "## toy"), "reranker", "chip")
    assert rows[("base", "Chip B")]["status"].startswith("error: dataset toy could not be loaded")
    assert "20 queries, 2000 pairs" in md  # the protocol line of the loaded candidates


def test_every_committed_results_file_renders():
    from pathlib import Path

    committed = sorted((Path(__file__).resolve().parents[2] / "results").glob("*.json"))
    assert committed
    text = report_files([str(p) for p in committed])  # schema-1 files among them: read as schema 2
    assert text.startswith("# Reranker leaderboard")
    for path in committed:
        assert path.name in text
    # A committed file that a stopped run left incomplete is rendered, and said to be incomplete.
    incomplete = [p for p in committed if json.loads(p.read_text()).get("complete") is False]
    assert ("Incomplete results" in text) == bool(incomplete)
