"""Old import path of ``harness.run.worker``, kept while harness/train_worker.py still imports it."""

from .run.worker import peak_rss_mb, run_worker  # noqa: F401
