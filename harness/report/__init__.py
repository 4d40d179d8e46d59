"""Markdown leaderboards from results files: ``harness report RESULTS.json... [--output report/NAME.md]``.

One table per dataset (and per candidate set: runs on different candidates are never put side by side). Several
results files (several chips) merge into one table with a ``chip`` column; comparisons with the suite's baseline
(pairs/s ratio, metric deltas, significance) are made only within the same machine, against that machine's
baseline run. A quality figure is marked † when it differs from the baseline significantly by
``harness.metrics.significance`` (paired randomization test on per-query values, Holm-corrected across the
systems of that machine). The pairs/s cell is the median over the repeats with its 95% bootstrap interval and
the run's VALID / INVALID verdict (``harness.report.speed``).

Results of a suite with a ``train:`` section also get a training table: per trained model and backend, the
training's wall time, tokens/s, peak memory and best dev metric, then its evaluated primary metric on each dataset
with the difference to its PyTorch counterpart (same model, same results file) and to the dataset's first stage.

Modules: ``board`` (the records), ``leaderboard`` (a dataset's rows), ``speed`` (pairs/s intervals), ``tables``
(environments, systems), ``training`` (the training table), ``markdown`` / ``exports`` / ``plots`` (printers),
``cli`` (the options of ``harness report`` and ``harness run --report``), ``references`` (``--quality``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mlx_cross_encoder._lazy import lazy_exports

# public name -> module, imported on first use (PEP 562): `harness --help` and the option definitions of
# harness.report.cli load no pandas / scipy / ranx
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "PRIMARY": "leaderboard",
        "Leaderboard": "board",
        "Section": "board",
        "build_leaderboard": "board",
        "markdown_rows": "markdown",
        "render_markdown": "markdown",
    },
)

__all__ = [
    "PRIMARY",
    "Leaderboard",
    "Section",
    "build_leaderboard",
    "build_report",
    "markdown_rows",
    "render_markdown",
    "report_files",
]


def build_report(results: Sequence[dict], sources: Sequence[str] | None = None) -> str:
    """The Markdown report for one or more loaded results files."""
    from .board import build_leaderboard
    from .markdown import render_markdown

    return render_markdown(build_leaderboard(results, sources))


def report_files(paths: Sequence[str | Path]) -> str:
    """The Markdown report of the results files at ``paths`` (each loaded and checked by ``load_results``)."""
    from ..results import load_results

    results = [load_results(p) for p in paths]
    return build_report(results, [str(p) for p in paths])
