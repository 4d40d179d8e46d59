"""The `harness` command: the smoke suite end to end, `list`, and one-line errors for bad input."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.results import load_results

REPO = Path(__file__).resolve().parents[2]


def harness_command() -> list[str]:
    script = Path(sys.executable).parent / "harness"  # the console script declared in pyproject.toml
    return [str(script)] if script.is_file() else [sys.executable, "-m", "harness.cli"]


def test_smoke_suite_end_to_end(tmp_path, capsys):
    out, report = tmp_path / "results" / "smoke.json", tmp_path / "report" / "smoke.md"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(
        [
            *harness_command(),
            "run",
            "suites/smoke.yaml",
            "--output",
            str(out),
            "--report",
            str(report),
            "--no-progress",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = load_results(out)
    assert results["suite"] == "smoke" and results["baseline"] == "minilm-torch"
    assert results["environment"]["chip"]["name"] and results["environment"]["git"]["commit"]
    runs = {r["reranker"]: r for r in results["runs"]}
    assert [(r["reranker"], r["backend"], r["status"]) for r in results["runs"]] == [
        ("bm25", "first_stage", "ok"),
        ("minilm-mlx", "mlx", "ok"),
        ("minilm-torch", "torch", "ok"),
    ]
    mlx, torch_run = runs["minilm-mlx"], runs["minilm-torch"]
    # the same checkpoint, candidates and truncation in both backends ...
    for key in ("dataset_fingerprint", "model_fingerprint", "max_length", "dtype", "top_k"):
        assert mlx["protocol"][key] == torch_run["protocol"][key], key
    assert mlx["protocol"]["max_length"] == 512 and mlx["protocol"]["n_queries"] == 6
    assert mlx["perf"]["tokens"] == torch_run["perf"]["tokens"] and mlx["perf"]["pairs"] == 52
    # ... give the same ranking (the seeded head's scores differ by >= 1e-5 within a query)
    assert mlx["per_query"] == torch_run["per_query"]
    assert runs["bm25"]["metrics"] != mlx["metrics"]
    # the MLX worker ran on the optimized BLAS that mlx_cross_encoder loads on Linux x86_64 (MKL wheel), not on
    # MLX's reference BLAS (20-40x slower); the measuring parent itself loads none
    if sys.platform.startswith("linux") and platform.machine() == "x86_64":
        assert mlx["system"]["blas"], "the MLX worker loaded no optimized BLAS"

    # the leaderboard went to stdout and to --report
    assert proc.stdout.strip() == report.read_text().strip()
    assert "| minilm-torch (baseline) | torch" in proc.stdout and "| minilm-mlx " in proc.stdout
    assert f"results written to {out}" in proc.stderr

    # and `harness report` rebuilds it from the results file, plots included (one code path: same name, same links);
    # called in this process (the console script was run above; a second one would only add a start-up)
    again_md = tmp_path / "again" / "smoke.md"
    capsys.readouterr()
    assert main(["report", str(out), "--output", str(again_md)]) == 0
    again = capsys.readouterr()
    assert again.out == proc.stdout and again_md.read_text() == proc.stdout
    assert (report.parent / "smoke-smoke.svg").is_file() and (again_md.parent / "smoke-smoke.svg").is_file()


def test_help_loads_no_report_or_statistics_libraries():
    """`harness --help` and the option definitions of every subcommand import no pandas, scipy, ranx or
    matplotlib (they cost seconds at every start); the report and compare modules import them when they work."""
    code = (
        "import sys; from harness.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('pandas', 'scipy', 'ranx', 'matplotlib') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_list(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # suites/ of the repository are found from anywhere
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert f"{REPO / 'suites' / 'smoke.yaml'}: smoke (1 dataset, 2 rerankers)" in out
    for text in (
        "Dataset sources:",
        "  candidates: ",
        "Backends:",
        "  mlx: ",
        "  torch: ",
        "  local:minilm-l6-seeded-head: ",
    ):
        assert text in out


def test_list_reads_the_registries(capsys, monkeypatch):
    from harness.backends.registry import BACKENDS, BackendInfo
    from harness.scenarios import SCENARIOS
    from harness.sources.registry import SOURCES

    monkeypatch.setitem(BACKENDS, "onnx", BackendInfo("onnx", "nowhere", "a backend declared once", frozenset({"x"})))
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "  onnx: a backend declared once (options: x; trains: -)" in out
    assert all(f"  {s.key}: {s.description}" in out for s in SOURCES.values())
    assert all(f"  {s.name}: {s.description}" in out for s in SCENARIOS.values())


def test_list_reports_an_invalid_suite(capsys, monkeypatch, tmp_path):
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "broken.yaml").write_text("name: broken\n")
    monkeypatch.chdir(tmp_path)
    assert main(["list"]) == 0
    assert "suites/broken.yaml: invalid (" in capsys.readouterr().out


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_missing_suite_file(capsys, tmp_path):
    code, out, err = run_cli(capsys, "run", str(tmp_path / "nope.yaml"))
    assert code == 2 and out == ""
    assert err == f"harness: error: suite file not found: {tmp_path / 'nope.yaml'}\n"


def test_invalid_suite_lists_each_problem_on_one_line(capsys, tmp_path):
    suite = tmp_path / "bad.yaml"
    suite.write_text("name: bad\ndatasets: []\nrerankers:\n  - {name: x, backend: onnx, model: m}\nbogus: 1\n")
    code, out, err = run_cli(capsys, "run", str(suite))
    assert code == 2 and out == "" and "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) >= 3 and all(line.startswith(f"harness: error: {suite}: ") for line in lines)
    assert any("rerankers[0].backend: must be one of mlx, torch" in line for line in lines)
    assert any("bogus: unknown key" in line for line in lines)


def test_unknown_only_name(capsys, tmp_path):
    code, _, err = run_cli(
        capsys, "run", str(REPO / "suites" / "smoke.yaml"), "--only", "nope", "--output", str(tmp_path / "r.json")
    )
    assert code == 2
    assert err.startswith("harness: error: --only nope: not a reranker or dataset of suite 'smoke'")
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("argv", [["run", "suites/smoke.yaml", "--max-queries", "0"], ["frobnicate"], []])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "usage: harness" in capsys.readouterr().err


def test_failed_runs_give_exit_status_1(capsys, tmp_path, monkeypatch):
    """A suite whose reranker cannot load still writes results and a leaderboard, and exits 1."""
    shutil.copytree(REPO / "suites" / "data", tmp_path / "data")
    (tmp_path / "s.yaml").write_text(
        (REPO / "suites" / "smoke.yaml").read_text().replace("local:minilm-l6-seeded-head", "nobody/missing-model")
    )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, out, err = run_cli(
        capsys, "run", str(tmp_path / "s.yaml"), "--output", str(tmp_path / "r.json"), "--no-progress"
    )
    assert code == 1
    assert "2 of 3 runs failed" in err
    assert "| minilm-mlx " in out and "error: ModelLoadError: could not fetch 'nobody/missing-model'" in out
    assert [r["status"] for r in load_results(tmp_path / "r.json")["runs"]] == ["ok", "error", "error"]
