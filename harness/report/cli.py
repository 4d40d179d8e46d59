"""``harness report`` options and their work: ``add_options(parser)``, ``report_text(args) -> str``.

With ``--output report/NAME.md`` the quality-vs-throughput plot of each dataset is written beside it
(``report/NAME-<dataset>.svg`` and ``.png``) and linked from the Markdown (``--no-plots``: none).
``--export-dir DIR`` writes every table as CSV and JSON (``DIR/NAME-<table>.csv|json``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..results import load_results
from . import build_leaderboard, render_markdown
from .leaderboard import primary_of


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-plots", action="store_true", help="do not write the quality-vs-throughput plots beside --output"
    )
    parser.add_argument(
        "--export-dir", metavar="DIR", help="also write every table as CSV and JSON into DIR (NAME-<table>.csv|json)"
    )
    parser.add_argument(
        "--quality",
        metavar="DATA_DIR",
        help="append published reference lines, the first stages of DATA_DIR's candidate lists and paired "
        "significance vs first stage and vs torch twin (harness.report.references)",
    )


def report_text(args: argparse.Namespace) -> str:
    """The Markdown report of ``args.results``; plots and exports written as the options say."""
    paths = list(args.results)
    loaded = [load_results(p) for p in paths]
    board = build_leaderboard(loaded, [str(p) for p in paths])
    output = Path(args.output) if args.output else None
    stem = output.stem if output else Path(paths[0]).stem
    if output and not args.no_plots:
        from .plots import slug, write_pareto

        metric = primary_of(board.metrics)
        for section in board.sections:
            name = slug(section.dataset + ("" if section.candidate_sets == 1 else f"-set{section.candidate_set}"))
            svg = write_pareto(section.rows, metric, section.title, output.parent / f"{stem}-{name}")
            section.plot = svg.name if svg else None
    if args.export_dir:
        from .exports import write_exports

        for path in write_exports(board, args.export_dir, stem):
            print(f"table written to {path}", file=sys.stderr)
    if getattr(args, "quality", None):
        from .references import quality_appendix

        return render_markdown(board) + "\n" + quality_appendix(loaded, args.quality)
    return render_markdown(board)
