"""The report's options and their work, for ``harness report`` and ``harness run --report`` alike (one code path):
``add_options(parser)``, ``write_views(loaded, names, output, ...) -> str`` and ``report_text(args) -> str``.

With ``--output report/NAME.md`` (``harness run --report report/NAME.md``) the quality-vs-throughput plot of each
dataset is written beside it (``report/NAME-<dataset>.svg`` and ``.png``) and linked from the Markdown
(``--no-plots``: none). ``--export-dir DIR`` writes every table as CSV and JSON (``DIR/NAME-<table>.csv|json``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-plots",
        action="store_true",
        help="do not write the quality-vs-throughput plots beside the Markdown (--output; harness run: --report)",
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


def write_views(
    loaded: list[dict],
    names: list[str],
    output: str | Path | None,
    *,
    plots: bool = True,
    export_dir: str | Path | None = None,
    quality: str | Path | None = None,
) -> str:
    """The Markdown report of loaded results files (``names``: their paths); plots beside ``output`` (when given
    and ``plots``), CSV/JSON exports into ``export_dir``, the quality appendix of the DATA_DIR ``quality``."""
    from .board import build_leaderboard  # here, not at the top: add_options is imported by `harness --help`
    from .leaderboard import primary_of
    from .markdown import render_markdown

    board = build_leaderboard(loaded, names)
    output = Path(output) if output else None
    stem = output.stem if output else Path(names[0]).stem
    if output and plots:
        from .plots import slug, write_pareto

        metric = primary_of(board.metrics)
        for section in board.sections:
            name = slug(section.dataset + ("" if section.candidate_sets == 1 else f"-set{section.candidate_set}"))
            svg = write_pareto(section.rows, metric, section.title, output.parent / f"{stem}-{name}")
            section.plot = svg.name if svg else None
    if export_dir:
        from .exports import write_exports

        for path in write_exports(board, export_dir, stem):
            print(f"table written to {path}", file=sys.stderr)
    if quality:
        from .references import quality_appendix

        return render_markdown(board) + "\n" + quality_appendix(loaded, quality)
    return render_markdown(board)


def report_text(args: argparse.Namespace) -> str:
    """``harness report``: the Markdown report of ``args.results``; plots and exports written as the options say."""
    from ..results import load_results

    paths = [str(p) for p in args.results]
    return write_views(
        [load_results(p) for p in paths],
        paths,
        args.output,
        plots=not args.no_plots,
        export_dir=args.export_dir,
        quality=getattr(args, "quality", None),
    )
