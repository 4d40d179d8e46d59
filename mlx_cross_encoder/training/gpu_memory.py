"""MLX's buffer cache while an MLX trainer trains on a GPU: bounded, so that the process holds about what it uses.

MLX keeps freed buffers in a cache for reuse. On its CUDA backend the cache may grow to the allocator's memory
limit, 95% of the WHOLE device's memory (mlx/backend/cuda/allocator.cpp), whatever other processes hold; a
``cudaMallocAsync`` that then fails is not retried after freeing the cache (PyTorch's allocator does retry). A
training makes buffers of many sizes (every batch pads to its own length; dev scoring uses other batches), so its
cache keeps growing, and beside other processes on the GPU it runs out of memory while using far less than it
holds: session 4's MiniLM LoRA training on the H200 (``results/train-full-h200-s4-*-oom*.json``, report/quality.md).

:func:`bounded_gpu_cache` lowers the cache limit for the length of one ``train()`` call on a GPU device (the limit
in force before is restored afterwards); the CPU device is left alone. ``MLX_CROSS_ENCODER_TRAIN_CACHE_GB``
overrides the bound (GiB; ``none``: MLX's own limit).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import mlx.core as mx

#: environment variable: the bound in GiB, or "none" to keep MLX's limit
CACHE_ENV_VAR = "MLX_CROSS_ENCODER_TRAIN_CACHE_GB"
#: the default bound, GiB
DEFAULT_CACHE_GB = 2.0


def cache_limit_bytes() -> int | None:
    """The bound :func:`bounded_gpu_cache` applies, in bytes (None: MLX's own limit is kept)."""
    raw = os.environ.get(CACHE_ENV_VAR, "").strip().lower()
    if raw in ("none", "off"):
        return None
    try:
        gib = float(raw) if raw else DEFAULT_CACHE_GB
    except ValueError:
        raise ValueError(f"{CACHE_ENV_VAR}={raw!r}: expected a number of GiB or 'none'") from None
    if gib < 0:
        raise ValueError(f"{CACHE_ENV_VAR}={raw!r}: expected a number of GiB >= 0 or 'none'")
    return int(gib * (1 << 30))


def on_gpu() -> bool:
    """Whether MLX computes on a GPU (its default device)."""
    return mx.default_device().type == mx.gpu


@contextmanager
def bounded_gpu_cache(gpu: bool | None = None) -> Iterator[int | None]:
    """Within the block, MLX's cache limit is at most :func:`cache_limit_bytes` when on a GPU (``gpu``: None =
    :func:`on_gpu`); yields the limit set (None: untouched). The previous limit is restored on exit."""
    limit = cache_limit_bytes() if (on_gpu() if gpu is None else gpu) else None
    if limit is None:
        yield None
        return
    previous = mx.set_cache_limit(limit)
    if previous < limit:  # a lower limit set by the caller stays
        limit = previous
        mx.set_cache_limit(previous)
    try:
        yield limit
    finally:
        mx.set_cache_limit(previous)
