"""Old import path of ``harness.run.worker``, kept while harness/train_worker.py still imports it
(``run_worker`` is now ``harness.run.worker.worker_main``: the spawning side is ``harness.run.spawn.spawn_worker``)."""

from .run.worker import peak_rss_mb  # noqa: F401
from .run.worker import worker_main as run_worker  # noqa: F401
