"""Same-commit false-positive rate of ``harness compare`` (issue 9): run a suite 2N times on this checkout, compare
run 2k-1 (base) with run 2k (head) for k = 1..N at the gate given (default: the suite's ``gate:``, else the
defaults), and count the pairs that ``harness compare`` calls a regression although nothing changed.

    .venv/bin/python scripts/fp-rate.py [--pairs 10] [--suite suites/regression.yaml] [--out DIR] [--md FILE]

Every run's results file and every pair's verdict stay in ``--out`` (default ``.git/fp-rate``: inside .git, so
nothing untracked). The summary (Markdown) gives per pair: the compare exit status, the speed verdicts with their
ratio and Mann-Whitney p, each run's VALID/INVALID verdict, and the 1-minute load average before and after each
run (``os.getloadavg``, and the worker's own ``perf.load_avg_before/after``). A pair counts as a false alarm when
``harness compare`` exits 1. Also counted: pairs with a speed ``slower`` verdict at all, i.e. the alarms a gate
without the VALID rule (``speed_needs_valid_runs``) would raise, and pairs whose four runs were all VALID.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.compare import compare_files  # noqa: E402
from harness.results import read_results  # noqa: E402
from harness.suite import load_suite  # noqa: E402


def default_out() -> Path:
    git_dir = subprocess.run(["git", "rev-parse", "--absolute-git-dir"], cwd=ROOT, capture_output=True, text=True)
    return Path(git_dir.stdout.strip() or ROOT / ".fp-rate") / "fp-rate"


def run_suite(suite: Path, output: Path, only: list[str]) -> tuple[float, float, float]:
    """One ``harness run`` (its own process, as in CI); (load before, load after, seconds)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    before, start = os.getloadavg()[0], time.monotonic()
    cmd = [sys.executable, "-m", "harness.cli", "run", str(suite), "--no-progress", "--overwrite", "--output"]
    cmd += [str(output)] + (["--only", *only] if only else [])
    done = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if done.returncode not in (0, 1):
        sys.exit(f"fp-rate: harness run failed (exit {done.returncode}): {done.stderr.decode()[-2000:]}")
    return before, os.getloadavg()[0], time.monotonic() - start


def run_verdicts(path: Path) -> str:
    """``name VALID`` / ``name INVALID (reason)`` for each measured run of a results file."""
    out = []
    for run in read_results(path).runs:
        if run.verdict is not None:
            why = f" ({'; '.join(run.verdict.reasons)})" if run.verdict.reasons else ""
            out.append(f"{run.reranker} {run.verdict.status}{why}")
    return "<br>".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--suite", type=Path, default=ROOT / "suites" / "regression.yaml")
    parser.add_argument("--out", type=Path, default=None, help="folder of the results files (default .git/fp-rate)")
    parser.add_argument("--md", type=Path, help="also write the Markdown summary here")
    parser.add_argument("--only", nargs="+", default=[], help="run only these rerankers (harness run --only)")
    args = parser.parse_args(argv)
    out = args.out or default_out()
    out.mkdir(parents=True, exist_ok=True)
    gate = load_suite(args.suite).gate
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    rows, alarms, speed_alarms, gated_speed, loads, valid_pairs = [], 0, 0, 0, [], 0
    for k in range(1, args.pairs + 1):
        paths, cells = [out / f"pair{k}-a.json", out / f"pair{k}-b.json"], []
        for path in paths:
            before, after, seconds = run_suite(args.suite, path, args.only)
            loads += [before, after]
            cells.append(f"{before:.1f} → {after:.1f} ({seconds:.0f} s)")
        comparison = compare_files(paths[0], paths[1], gate)
        status = comparison.exit_status
        alarms += status == 1
        speed_alarms += any(s.verdict == "slower" for s in comparison.speed)
        gated_speed += any(s.regression for s in comparison.speed)
        verdicts = [run_verdicts(p) for p in paths]
        valid_pairs += all("INVALID" not in v for v in verdicts)
        speed = "<br>".join(
            f"{s.reranker}: {s.ratio:.3f}, p={s.p_value:.3g} {s.verdict}{' (INVALID)' if s.invalid else ''}"
            for s in comparison.speed
            if s.ratio
        )
        rows.append(f"| {k} | {status} | {speed} | {verdicts[0]} | {verdicts[1]} | {cells[0]} | {cells[1]} |")
        print(rows[-1], file=sys.stderr, flush=True)
    n = args.pairs
    lines = [
        f"Same-commit pairs on `{commit.stdout.strip()}`, suite `{args.suite.name}`, gate: speed ratio > "
        f"{gate.speed_factor} and Mann-Whitney U p < {gate.speed_alpha}"
        f"{' (only when both runs are VALID)' if gate.speed_needs_valid_runs else ''}; memory ratio > "
        f"{gate.memory_factor}; quality |Δ| > {gate.quality_tolerance}.",
        "",
        f"- false alarms (`harness compare` exit 1): **{alarms} of {n}** ({alarms / n:.0%}); of them speed: "
        f"{gated_speed}",
        f"- pairs with a speed `slower` verdict at all (what a gate without the VALID rule would fail): "
        f"{speed_alarms} of {n} ({speed_alarms / n:.0%})",
        f"- pairs where all four runs were VALID: {valid_pairs} of {n}",
        f"- 1-minute load average around the runs: min {min(loads):.1f}, median {sorted(loads)[len(loads) // 2]:.1f}, "
        f"max {max(loads):.1f} ({os.cpu_count()} CPUs)",
        "",
        "| pair | exit | speed: ratio, p, verdict | run A verdict | run B verdict | load A (before → after) | load B |",
        "| ---: | ---: | --- | --- | --- | --- | --- |",
        *rows,
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.md:
        args.md.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
