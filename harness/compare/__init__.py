"""``harness compare BASE.json HEAD.json``: one verdict per (dataset, reranker, metric) between two results files.

One concern per file, in the order of the work (as ranx's compare: scores -> tests -> report -> renderers):

- ``inputs``: read both files through the harness's loader (the one place that changes if the loader moves) and
  pair their runs; refuse runs that are not comparable (different protocol or dataset fingerprint, named).
- ``errors``: ``CompareInputError`` (bad input) and ``NotComparable``, both exit 2.
- ``gate``: the thresholds (``Gate``, a typed record): a suite's ``gate:`` section (recorded in results files),
  a YAML file's, or flags.
- ``stats``: the statistical tests (paired randomization test, Mann-Whitney U via scipy, Holm).
- ``verdicts``: quality, speed and memory verdicts of one pair of runs (one round).
- ``rounds``: several interleaved (BASE, HEAD) rounds judged alone, then combined (a regression must repeat).
- ``records``: the report object (``Comparison``, pydantic) and its exit status.
- ``render``: Markdown (PR comment / job summary) and JSON.
- ``cli``: ``add_parser(subparsers)`` and ``run(args) -> int``.

Exit statuses: 0 no regression, 1 regression, 2 bad input or not comparable. ``compare_files`` and ``Comparison``
are imported on first use (scipy is not loaded by the suite loader, which imports ``Gate``).
"""

from .gate import Gate

__all__ = ["Comparison", "Gate", "compare_file_rounds", "compare_files"]


def __getattr__(name: str):
    if name in ("compare_files", "compare_file_rounds"):
        from . import verdicts

        return getattr(verdicts, name)
    if name == "Comparison":
        from .records import Comparison

        return Comparison
    raise AttributeError(name)
