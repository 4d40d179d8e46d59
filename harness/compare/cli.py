"""``harness compare BASE.json HEAD.json``: ``add_parser(subparsers)`` and ``run(args) -> int``.

Exit statuses: 0 no regression, 1 regression, 2 bad input or not comparable (named on stderr).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .gate import Gate
from .inputs import CompareInputError, NotComparable, read_file
from .render import RENDERERS
from .verdicts import compare_results


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "compare",
        help="verdict between two results files (quality, speed, memory)",
        description="Compare HEAD with BASE per (dataset, reranker, metric): quality by a paired randomization test "
        "on per-query values, speed by the median ratio AND a Mann-Whitney U test (asv's rule), memory by "
        "peak ratio. Exit 0 no regression, 1 regression, 2 bad input or not comparable.",
    )
    p.add_argument("base", metavar="BASE.json")
    p.add_argument("head", metavar="HEAD.json")
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
        gate = Gate.checked(recorded, f"{args.head}: the gate recorded from its suite")
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
    try:
        base, head = read_file(args.base), read_file(args.head)
        comparison = compare_results(base, head, gate_of(args, getattr(head, "gate", None)), args.base, args.head)
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
