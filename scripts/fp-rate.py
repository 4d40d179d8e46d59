"""Same-commit false-positive rate of the CI regression protocol (issue 9): call ``scripts/bench-pr.sh REF REF``
(the CI protocol exactly: worktrees, the regression suite in interleaved rounds, ONE ``harness compare`` over all
rounds) N times with the same commit on both sides, and count the calls that fail although nothing changed.

    .venv/bin/python scripts/fp-rate.py [--calls 20] [--rounds 2] [--ref HEAD] [--out DIR] [--md FILE]
                                        [--stop-at HH:MM]

Every call's results files and verdicts stay in ``--out`` (default ``.git/fp-rate``: inside .git, so nothing
untracked), ``callK/``. The Markdown summary (rewritten after every call, so a stopped measurement keeps its calls)
gives per call: bench-pr.sh's exit status, each speed verdict (pooled ratio, each round's ratio and verdict), each
round judged alone (what one round, the protocol before interleaved rounds, would have said), each run's
VALID/INVALID verdict and the load average around it (the worker's ``perf.load_avg_before/after``).

A call's speed verdict can gate only when every run of every round is VALID (``speed_needs_valid_runs``): a call
where a run was INVALID could not have raised a speed alarm, so it is no evidence of "no false alarm"; the summary
counts both kinds apart.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.results import read_results  # noqa: E402
from harness.suite import load_suite  # noqa: E402


def default_out() -> Path:
    git_dir = subprocess.run(["git", "rev-parse", "--absolute-git-dir"], cwd=ROOT, capture_output=True, text=True)
    return Path(git_dir.stdout.strip() or ROOT / ".fp-rate") / "fp-rate"


def bench_pr(ref: str, rounds: int, bench_dir: Path, suite: Path, only: list[str]) -> tuple[int, float]:
    """One CI call: ``scripts/bench-pr.sh REF REF``; (exit status, seconds)."""
    env = dict(os.environ, BENCH_DIR=str(bench_dir), ROUNDS=str(rounds), SUITE=str(suite), PYTHON=sys.executable)
    if only:
        env["ONLY"] = " ".join(only)
    start = time.monotonic()
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "bench-pr.sh"), ref, ref], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode not in (0, 1):
        sys.exit(f"fp-rate: bench-pr.sh exit {done.returncode}: {done.stderr[-2000:]}")
    return done.returncode, time.monotonic() - start


def short(reason: str) -> str:
    """A verdict reason in a few words (the results files keep the full text)."""
    words = reason.split()
    if "coefficient of variation" in reason:
        return f"cv {words[words.index('variation') + 1]}"
    if "machine loaded" in reason:
        return f"load {words[words.index('average') + 1]} {'before' if 'before' in reason else 'after'}"
    return reason


def run_cells(path: Path) -> tuple[dict[str, str], list[float]]:
    """Each measured run's ``VALID``/``INVALID (short reasons)``, and the load averages its worker recorded."""
    cells, loads = {}, []
    for run in read_results(path).runs:
        if run.verdict is None:
            continue
        why = f" ({', '.join(short(r) for r in run.verdict.reasons)})" if run.verdict.reasons else ""
        cells[run.reranker] = f"{run.verdict.status}{why}"
        loads += [x for x in (run.perf.load_avg_before, run.perf.load_avg_after) if x is not None]
    return cells, loads


def summarize_call(k: int, status: int, seconds: float, call_dir: Path, rounds: int) -> dict:
    verdict = json.loads((call_dir / "verdict.json").read_text())
    speed = []
    for v in verdict["speed"]:
        per_round = ", ".join(f"×{r['ratio']:.3f} {r['verdict']}" for r in v.get("rounds") or [])
        invalid = f" (INVALID {' '.join(v['invalid'])})" if v["invalid"] else ""
        speed.append(f"{v['reranker']}: ×{v['ratio']:.3f} {v['verdict']}{invalid}; rounds: {per_round}")
    runs, loads = [], []
    for r in range(1, rounds + 1):
        for side in ("base", "head"):
            cells, got = run_cells(call_dir / f"{side}-{r}.json")
            loads += got
            runs.append(f"{side}-{r}: " + ", ".join(f"{name} {cell}" for name, cell in cells.items()))
    gated = [v for v in verdict["speed"] if not v["invalid"]]
    return {
        "call": k,
        "exit": status,
        "seconds": seconds,
        "speed_alarm": any(v["regression"] for v in verdict["speed"]),
        "slower_any": any(v["verdict"] == "slower" for v in verdict["speed"]),
        "rows": len(verdict["speed"]),
        "rows_gated": len(gated),
        "rows_gated_alarm": sum(v["regression"] for v in gated),
        "all_gated": len(gated) == len(verdict["speed"]),
        "round_exits": [r["exit_status"] for r in verdict.get("rounds") or []] or [status],
        "round_slower": [
            any((v.get("rounds") or [v])[k]["verdict"] == "slower" for v in verdict["speed"]) for k in range(rounds)
        ],
        "speed_cell": "<br>".join(speed),
        "runs_cell": "<br>".join(runs),
        "loads": loads,
    }


def pct(a: int, b: int) -> str:
    return f"{a / b:.0%}" if b else "–"


def markdown(calls: list[dict], head: str, gate, rounds: int, started: str, ended: str, uptime: str) -> str:
    n = len(calls)
    alarms = sum(c["exit"] == 1 for c in calls)
    gated_calls = [c for c in calls if c["all_gated"]]
    rows = sum(c["rows"] for c in calls)
    rows_gated = sum(c["rows_gated"] for c in calls)
    rows_alarm = sum(c["rows_gated_alarm"] for c in calls)
    single = [e for c in calls for e in c["round_exits"]]
    ub = sum(c["exit"] == 1 or c["slower_any"] for c in calls)
    slow1 = sum(x for c in calls for x in c["round_slower"])
    loads = sorted(x for c in calls for x in c["loads"]) or [float("nan")]
    lines = [
        f"Same-commit CI calls (`scripts/bench-pr.sh {head} {head}`, ROUNDS={rounds}) on `{head}`, {started} → "
        f"{ended} UTC; gate: speed ratio > {gate.speed_factor} and Mann-Whitney U p < {gate.speed_alpha} in every "
        f"round and pooled ratio > {gate.speed_factor}"
        f"{', only when every run is VALID' if gate.speed_needs_valid_runs else ''}; memory ratio > "
        f"{gate.memory_factor}; quality |Δ| > {gate.quality_tolerance}.",
        "",
        f"- false alarms (bench-pr.sh exit 1): **{alarms} of {n}** calls ({pct(alarms, n)})",
        f"- calls whose every speed verdict could gate (every run of every round VALID): {len(gated_calls)} of {n}; "
        f"false alarms among them: {sum(c['exit'] == 1 for c in gated_calls)}",
        f"- speed verdicts (call × reranker) that could gate: {rows_gated} of {rows}; of them `slower` (an alarm): "
        f"{rows_alarm}",
        f"- upper bound, every call counted: calls that fail with the VALID rule off (`--gate-invalid-speed`: "
        f"exit 1 or a combined `slower`; the VALID rule only removes alarms): "
        f"**{ub} of {n}** ({pct(ub, n)})",
        f"- each round judged alone (one round, the protocol before interleaved rounds): exit 1 in "
        f"{sum(e == 1 for e in single)} of {len(single)} rounds ({pct(sum(e == 1 for e in single), len(single))}); "
        f"with the VALID rule off, a `slower` in {slow1} of {len(single)} ({pct(slow1, len(single))})",
        f"- load average recorded around the timed passes: min {loads[0]:.2f}, median {loads[len(loads) // 2]:.2f}, "
        f"max {loads[-1]:.2f} ({os.cpu_count()} CPUs); load average (1, 5, 15 min) {uptime}",
        "",
        "| call | exit | rounds alone (exit) | speed: pooled ratio, verdict; each round | runs: VALID/INVALID | s |",
        "| ---: | ---: | --- | --- | --- | ---: |",
    ]
    for c in calls:
        lines.append(
            f"| {c['call']} | {c['exit']} | {', '.join(map(str, c['round_exits']))} | {c['speed_cell']} | "
            f"{c['runs_cell']} | {c['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20, help="CI calls (same commit both sides)")
    parser.add_argument("--rounds", type=int, default=2, help="ROUNDS of each call (bench-pr.sh's default: 2)")
    parser.add_argument("--ref", default="HEAD", help="the commit measured on both sides")
    parser.add_argument("--suite", type=Path, default=ROOT / "suites" / "regression.yaml")
    parser.add_argument("--out", type=Path, default=None, help="folder of the calls' files (default .git/fp-rate)")
    parser.add_argument("--md", type=Path, help="also write the Markdown summary here (after every call)")
    parser.add_argument("--only", nargs="+", default=[], help="run only these rerankers (bench-pr.sh ONLY)")
    parser.add_argument("--stop-at", metavar="HH:MM", help="start no call after this UTC time")
    args = parser.parse_args(argv)
    out = (args.out or default_out()).resolve()
    out.mkdir(parents=True, exist_ok=True)
    gate = load_suite(args.suite).gate
    head = subprocess.run(["git", "rev-parse", "--short", args.ref], cwd=ROOT, capture_output=True, text=True)
    head = head.stdout.strip() or args.ref
    started = datetime.now(UTC).strftime("%H:%M")
    before = "{:.2f}, {:.2f}, {:.2f}".format(*os.getloadavg())
    calls, text = [], ""
    for k in range(1, args.calls + 1):
        if args.stop_at and datetime.now(UTC).strftime("%H:%M") >= args.stop_at:
            print(f"fp-rate: --stop-at {args.stop_at} reached after {k - 1} calls", file=sys.stderr)
            break
        bench_dir, call_dir = out / "bench", out / f"call{k}"
        status, seconds = bench_pr(head, args.rounds, bench_dir, args.suite.resolve(), args.only)
        shutil.rmtree(call_dir, ignore_errors=True)
        call_dir.mkdir()
        for f in bench_dir.glob("*.json"):
            shutil.copy2(f, call_dir / f.name)
        shutil.copy2(bench_dir / "verdict.md", call_dir / "verdict.md")
        calls.append(summarize_call(k, status, seconds, call_dir, args.rounds))
        print(f"call {k}: exit {status}, {calls[-1]['speed_cell']}", file=sys.stderr, flush=True)
        now = "{:.2f}, {:.2f}, {:.2f}".format(*os.getloadavg())
        text = markdown(
            calls,
            head,
            gate,
            args.rounds,
            started,
            datetime.now(UTC).strftime("%H:%M"),
            f"{before} at the start, {now} at the end",
        )
        if args.md:
            args.md.write_text(text, encoding="utf-8")
    for side in ("base", "head"):  # the worktrees bench-pr.sh made
        subprocess.run(["git", "worktree", "remove", "--force", str(out / "bench" / side)], cwd=ROOT, check=False)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
