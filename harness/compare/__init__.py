"""``harness compare BASE.json HEAD.json``: one verdict per (dataset, reranker, metric) between two results files.

One concern per file, in the order of the work (as ranx's compare: scores -> tests -> report -> renderers):

- ``inputs``: read both files through the harness's loader (the one place that changes if the loader moves) and
  pair their runs; refuse runs that are not comparable (different protocol or dataset fingerprint, named).
- ``gate``: the thresholds (``Gate``, pydantic), from a YAML ``gate:`` section or from flags.
- ``stats``: the statistical tests (paired randomization test, Mann-Whitney U via scipy, Holm).
- ``verdicts``: quality, speed and memory verdicts of one pair of runs.
- ``records``: the report object (``Comparison``, pydantic) and its exit status.
- ``render``: Markdown (PR comment / job summary) and JSON.
- ``cli``: ``add_parser(subparsers)`` and ``run(args) -> int``.

Exit statuses: 0 no regression, 1 regression, 2 bad input or not comparable.
"""

from .gate import Gate
from .records import Comparison
from .verdicts import compare_files

__all__ = ["Comparison", "Gate", "compare_files"]
