"""pytest plugin for the H200 parity run that shares the GPU with other jobs (``gpu_run.sh tests``):
``-p gpu_pytest_cache`` with ``benchmarks`` on ``PYTHONPATH``.

MLX's CUDA allocator keeps freed buffers in a cache sized against 95% of the whole device, whatever other processes
hold, and a failed ``cudaMallocAsync`` is not retried after emptying it (session 5 DIAG: an MLX LoRA training beside
a 100 GiB process ran out of memory with a 29 GiB cache; with ``mx.set_cache_limit(4 GiB)`` it did not). Each test
process (every xdist worker loads ``-p`` plugins too) caps its cache at ``GPU_PYTEST_MLX_CACHE_GB`` (default 2) so
that a dozen test workers leave the GPU to the jobs beside them. The cache limit changes no result: buffers are
freed instead of kept. ``mlx_cross_encoder`` is imported first: its hook sets MLX's CUDA settings before
``mlx.core`` loads.
"""

from __future__ import annotations

import os


def pytest_configure(config) -> None:
    import mlx_cross_encoder  # noqa: F401  # isort: skip  (MLX's CUDA settings before mlx.core)
    import mlx.core as mx

    mx.set_cache_limit(int(float(os.environ.get("GPU_PYTEST_MLX_CACHE_GB", "2")) * 2**30))
