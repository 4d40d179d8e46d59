"""The measuring stick: suites, datasets, baselines, measurement, metrics, results, reports and the CLI."""

import os as _os

__version__ = "0.1.0"

#: BLAS/OpenMP settings as the user gave them when the harness was imported (None: unset). mlx_cross_encoder sets
#: some of these for its own process; workers get the user's values back (harness.run.spawn.worker_environment),
#: so the torch baseline runs with the environment the user chose, not with ours.
BLAS_VARIABLES = ("MKL_THREADING_LAYER", "MKL_INTERFACE_LAYER", "MKL_NUM_THREADS", "OMP_NUM_THREADS")
USER_BLAS_ENVIRONMENT = {name: _os.environ.get(name) for name in BLAS_VARIABLES}
