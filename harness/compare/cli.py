"""``harness compare BASE.json HEAD.json [BASE.json HEAD.json ...]``: ``add_parser(subparsers)`` and
``run(args) -> int``. Several (BASE, HEAD) pairs are interleaved rounds (``harness.compare.rounds``).

Exit statuses: 0 no regression, 1 regression, 2 bad input or not comparable (named on stderr).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .gate import Gate
from .inputs import CompareInputError, NotComparable, read_file
from .render import RENDERERS


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "compare",
        help="verdict between two results files (quality, speed, memory)",
        description="Compare HEAD with BASE per (dataset, reranker, metric): quality by a paired randomization test "
        "on per-query values, speed by the median ratio AND a Mann-Whitney U test (asv's rule), memory by "
        "peak ratio. Several BASE HEAD pairs are interleaved rounds (e.g. run base, head, then head, base): each "
        "round is judged alone; a speed or memory regression must be one in every round and in the figures pooled "
        "over the rounds, a quality drop or a crash counts in any round. Exit 0 no regression, 1 regression, "
        "2 bad input or not comparable.",
    )
    p.add_argument(
        "files",
        nargs="+",
        metavar="BASE.json HEAD.json",
        help="one (BASE, HEAD) pair per round: BASE1 HEAD1 [BASE2 HEAD2 ...]",
    )
    p.add_argument("--format", choices=sorted(RENDERERS), default="md", help="output format (default md)")
    p.add_argument("--output", metavar="FILE", help="also write the verdict to this file")
    p.add_argument(
        "--gate",
        "--suite",
        metavar="YAML",
        help="thresholds from this YAML file's gate: section, e.g. a suite (default: the gate recorded in HEAD.json "
        "by harness run from its suite, else the defaults; flags override)",
    )
    p.add_argument("--quality-tolerance", type=float, metavar="X")
    p.add_argument("--quality-alpha", type=float, metavar="P")
    p.add_argument(
        "--require-significance",
        action="store_const",
        const=True,
        default=None,
        dest="quality_requires_significance",
        help="a quality drop fails only if the paired test agrees",
    )
    p.add_argument("--speed-factor", type=float, metavar="F", help="latency ratio that may be a regression (1.10)")
    p.add_argument("--speed-alpha", type=float, metavar="P", help="Mann-Whitney U level (0.002)")
    p.add_argument(
        "--no-speed-gate",
        action="store_const",
        const=False,
        default=None,
        dest="speed_gate",
        help="report speed, never fail on it (hosted runners)",
    )
    p.add_argument(
        "--gate-invalid-speed",
        action="store_const",
        const=False,
        default=None,
        dest="speed_needs_valid_runs",
        help="let speed fail even when a run's speed figures are INVALID (default: reported, not gated)",
    )
    p.add_argument("--memory-factor", type=float, metavar="F", help="peak memory ratio that fails (1.05)")
    p.add_argument("--no-memory-gate", action="store_const", const=False, default=None, dest="memory_gate")
    p.set_defaults(func=run)
    return p


def gate_of(args: argparse.Namespace, recorded: dict | None = None) -> Gate:
    """Flags over ``--gate FILE``, else over the gate recorded in HEAD.json (its suite's), else the defaults."""
    if args.gate:
        gate = Gate.from_yaml(args.gate)
    elif recorded is not None:
        gate = Gate.checked(recorded, f"{args.files[1]}: the gate recorded from its suite")
    else:
        gate = Gate()
    return gate.updated(
        quality_tolerance=args.quality_tolerance,
        quality_alpha=args.quality_alpha,
        quality_requires_significance=args.quality_requires_significance,
        speed_factor=args.speed_factor,
        speed_alpha=args.speed_alpha,
        speed_gate=args.speed_gate,
        speed_needs_valid_runs=args.speed_needs_valid_runs,
        memory_factor=args.memory_factor,
        memory_gate=args.memory_gate,
    )


def run(args: argparse.Namespace) -> int:
    if len(args.files) % 2:
        print(
            f"harness compare: error: {len(args.files)} files: give BASE.json HEAD.json pairs (one per round)",
            file=sys.stderr,
        )
        return 2
    from .rounds import compare_rounds  # here: its scipy is not loaded by `harness --help`

    try:
        results = [read_file(f) for f in args.files]
        rounds = [(results[i], results[i + 1], args.files[i], args.files[i + 1]) for i in range(0, len(results), 2)]
        comparison = compare_rounds(rounds, gate_of(args, getattr(results[1], "gate", None)))
    except (CompareInputError, NotComparable) as exc:
        print(f"harness compare: error: {exc}", file=sys.stderr)
        return 2
    text = RENDERERS[args.format](comparison)
    sys.stdout.write(text)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    for line in comparison.missing:
        print(f"harness compare: not comparable: {line}", file=sys.stderr)
    return comparison.exit_status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
