"""Give MLX's Linux CPU backend an optimized BLAS.

MLX's Linux CPU wheel links a reference BLAS (netlib): a 1024x1024 float32 matmul runs at a few GFLOP/s.
``libmlx.so`` resolves ``cblas_sgemm`` & co. through the dynamic linker, so a library loaded into the global
symbol scope *before* ``mlx.core`` is imported takes precedence. We look for MKL (the ``mkl`` wheel, a
Linux x86_64 dependency of this package) and then a system OpenBLAS.

When: ``import mlx_cross_encoder`` loads nothing (no MLX, no BLAS, no environment change); it installs
:class:`BlasBeforeMLX`, an import hook that loads the BLAS right before ``mlx.core`` is first imported, by any of
our modules or by the caller. A process that never imports MLX (the harness parent, a torch worker) is untouched.
Right before MLX loads, the hook also sets ``MLX_ENABLE_TF32=0`` unless the user set it (:func:`full_float32_matmuls`)
and, on MLX's CUDA backend, ``MLX_MAX_OPS_PER_BUFFER`` (:func:`bounded_cuda_graphs`).

Environment variable ``MLX_CROSS_ENCODER_BLAS``:
  unset / ``auto``  pick MKL, then OpenBLAS (default);
  ``off`` / ``0``   keep MLX's bundled reference BLAS;
  a file path       load that shared library.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import glob
import importlib.abc
import logging
import os
import sys
import warnings

ENV_VAR = "MLX_CROSS_ENCODER_BLAS"
logger = logging.getLogger("mlx_cross_encoder")

#: the library loaded by :func:`load_optimized_blas` (None when none was loaded)
loaded_library: str | None = None
_handle = None


def _candidates() -> list[str]:
    found: list[str] = []
    prefixes = [sys.prefix, sys.base_prefix, os.path.dirname(os.path.dirname(sys.executable))]
    for prefix in dict.fromkeys(prefixes):
        found += sorted(glob.glob(os.path.join(prefix, "lib", "libmkl_rt.so*")), reverse=True)
    for name in ("mkl_rt", "openblas"):
        lib = ctypes.util.find_library(name)
        if lib:
            found.append(lib)
    for pattern in (
        "/usr/lib/*-linux-gnu/libopenblas*.so*",
        "/usr/lib/*-linux-gnu/openblas-pthread/libopenblas*.so*",
        "/usr/lib64/libopenblas*.so*",
    ):
        found += sorted(glob.glob(pattern))
    return list(dict.fromkeys(found))


def load_optimized_blas() -> str | None:
    """Load an optimized BLAS globally so that ``mlx.core`` binds to it; return its path or None."""
    global loaded_library, _handle
    if not sys.platform.startswith("linux") or loaded_library is not None:
        return loaded_library
    setting = os.environ.get(ENV_VAR, "auto").strip()
    if setting.lower() in ("off", "0", "false", "no", "none"):
        logger.debug("optimized BLAS disabled by %s=%s", ENV_VAR, setting)
        return None
    if "mlx.core" in sys.modules:
        warnings.warn(
            "mlx.core was imported before mlx_cross_encoder: MLX keeps its reference BLAS (slow CPU matmuls); "
            f"import mlx_cross_encoder first or set {ENV_VAR}=off to silence this",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    candidates = [setting] if setting.lower() != "auto" else _candidates()
    # MKL's threaded layers collide with the OpenMP runtime torch brings (mlx-lm imports transformers, hence
    # torch): measured here, a MiniLM LoRA training step took 19-51 s with MKL threaded and 5 s sequential.
    # Parallelism comes from MLX streams instead (one per core, see MLXCrossEncoder._cpu_streams).
    os.environ.setdefault("MKL_THREADING_LAYER", "SEQUENTIAL")
    errors = []
    for path in candidates:
        try:
            _handle = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            _handle.cblas_sgemm  # noqa: B018 - the symbol MLX needs must be there
        except (OSError, AttributeError) as exc:
            errors.append(f"{path}: {exc}")
            continue
        loaded_library = path
        logger.debug("MLX CPU backend uses optimized BLAS %s", path)
        return path
    detail = "; ".join(errors) if errors else "no MKL or OpenBLAS found"
    warnings.warn(
        f"mlx_cross_encoder: no optimized BLAS loaded ({detail}); MLX CPU matmuls use the slow reference BLAS. "
        f"Install the `mkl` wheel or libopenblas0, or set {ENV_VAR}=off",
        RuntimeWarning,
        stacklevel=3,
    )
    return None


def blas_threads() -> int | None:
    """Threads the loaded optimized BLAS uses (None when none is loaded or it cannot say)."""
    for name in ("MKL_Get_Max_Threads", "openblas_get_num_threads"):
        fn = getattr(_handle, name, None) if _handle is not None else None
        if fn is not None:
            return int(fn())
    return None


def set_blas_threads(n: int) -> None:
    """Set the loaded optimized BLAS's thread count (no-op without one)."""
    for name in ("MKL_Set_Num_Threads", "openblas_set_num_threads"):
        fn = getattr(_handle, name, None) if _handle is not None else None
        if fn is not None:
            fn(ctypes.c_int(int(n)))
            return


def cpu_stream_count(requested: int | None = None) -> int:
    """How many MLX CPU streams to split a batch over: ``requested``, else ``MLX_CROSS_ENCODER_CPU_STREAMS``, else
    one per core (at most 8)."""
    return requested or int(os.environ.get("MLX_CROSS_ENCODER_CPU_STREAMS", 0)) or min(os.cpu_count() or 1, 8)


@contextlib.contextmanager
def single_threaded_while(active: bool):
    """Run the block with the optimized BLAS on one thread when ``active`` (the MLX streams already occupy every
    core); its thread count is restored afterwards."""
    previous = blas_threads() if active else None
    if previous:
        set_blas_threads(1)
    try:
        yield
    finally:
        if previous:
            set_blas_threads(previous)


#: MLX's switch for TF32 in float32 matmuls (CUDA's cuBLAS, Apple's M5 neural accelerators); MLX's default is 1
TF32_ENV_VAR = "MLX_ENABLE_TF32"
#: the dtype name of float32 with TF32 matmuls (precision.py), and what :func:`float32_matmul_precision` says then
TF32 = "tf32"


def full_float32_matmuls() -> None:
    """float32 means float32: unless the user set ``MLX_ENABLE_TF32``, set it to 0 right before MLX loads.

    MLX computes float32 matmuls in TF32 (10-bit mantissa) by default on CUDA: a 1024x1024 product has relative
    error 3e-4 on an H200, against 1e-6 in float32, and MiniLM-L6 scores drift 3e-4 from transformers'. MLX reads
    the variable once, at its first float32 matmul. torch's default is the same choice
    (``torch.backends.cuda.matmul.allow_tf32 = False``). bfloat16/float16 are unaffected."""
    os.environ.setdefault(TF32_ENV_VAR, "0")


def float32_matmul_precision() -> str:
    """What MLX's float32 matmuls compute in this process, as far as the switch says: "float32" or "tf32"
    (the latter only matters on hardware with TF32 units: CUDA GPUs, M5; ``precision.float32_matmul`` says what
    ran on a device)."""
    return "float32" if os.environ.get(TF32_ENV_VAR, "1").strip() == "0" else TF32


def tf32_switch(dtype_name: str) -> str:
    """The ``MLX_ENABLE_TF32`` value a process needs for a dtype: "1" for "tf32", "0" for every other dtype
    (float32 is full float32; half-precision models keep their few float32 products in full float32). Set it
    before ``mlx.core`` loads (harness.backends.mlx_backend does, per reranker process)."""
    return "1" if dtype_name == TF32 else "0"


#: MLX's CUDA backend: operations per CUDA graph before it is launched (MLX's default is 20)
CUDA_GRAPH_OPS_ENV_VAR = "MLX_MAX_OPS_PER_BUFFER"
#: what :func:`bounded_cuda_graphs` sets it to
CUDA_GRAPH_OPS = "2"
_CUDA_DISTRIBUTIONS = ("mlx-cuda-13", "mlx-cuda-12", "mlx-cuda")


def mlx_cuda_installed() -> bool:
    """Whether an MLX CUDA backend package is installed (read from package metadata: MLX is not loaded)."""
    from importlib import metadata

    for name in _CUDA_DISTRIBUTIONS:
        try:
            metadata.distribution(name)
            return True
        except metadata.PackageNotFoundError:
            continue
    return False


#: MLX's CUDA backend: "0" launches every kernel directly instead of recording CUDA graphs (MLX's default: graphs)
CUDA_GRAPHS_ENV_VAR = "MLX_USE_CUDA_GRAPHS"
#: what :func:`bounded_cuda_graphs` sets it to (None: left to MLX)
USE_CUDA_GRAPHS: str | None = None


def bounded_cuda_graphs(cuda: bool | None = None) -> None:
    """On MLX's CUDA backend, unless the user set ``MLX_MAX_OPS_PER_BUFFER``, set it to ``CUDA_GRAPH_OPS``.

    MLX records operations into a CUDA graph and keeps every buffer the graph uses alive until the graph has run;
    with its default of 20 operations per graph a reranker's forward holds many layers' intermediates at once.
    Measured on an H200 (benchmarks/gpu_memprof.py, docs/benchmarks.md section 8), peak above the weights for one
    DL19 query's 100 passages in bfloat16: Qwen3-Reranker-0.6B shape 9,554 MB -> 1,436 MB (max_batch_tokens
    8192: 2,340 -> 450 MB), BERT-large shape 5,550 -> 1,163 MB, and the calls were not slower (0.137 -> 0.112 s,
    0.066 -> 0.054 s). MLX reads the variable once, when its GPU device starts. ``cuda``: None = detect.
    Metal and the CPU backend are left alone."""
    if cuda if cuda is not None else mlx_cuda_installed():
        os.environ.setdefault(CUDA_GRAPH_OPS_ENV_VAR, CUDA_GRAPH_OPS)
        if USE_CUDA_GRAPHS is not None:
            os.environ.setdefault(CUDA_GRAPHS_ENV_VAR, USE_CUDA_GRAPHS)


class BlasBeforeMLX(importlib.abc.MetaPathFinder):
    """Import hook: when ``mlx.core`` is about to be *loaded* (not merely looked up), load the optimized BLAS
    first, then remove itself. ``mlx.core`` is a C extension that resolves its BLAS symbols when its shared
    library is opened, so the BLAS must be in the global symbol scope before that moment.

    Only the loader is wrapped: ``importlib.util.find_spec("mlx.core")`` (transformers probes for mlx that way)
    loads nothing."""

    def find_spec(self, name, path=None, target=None):
        if name != "mlx.core":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _LoadBlasFirst(spec.loader, self)
                return spec
        return None


class _LoadBlasFirst(importlib.abc.Loader):
    def __init__(self, loader, hook: BlasBeforeMLX):
        self._loader, self._hook = loader, hook

    def create_module(self, spec):
        uninstall_import_hook()
        full_float32_matmuls()
        bounded_cuda_graphs()
        load_optimized_blas()
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        module.__loader__ = module.__spec__.loader = self._loader  # the module keeps its own loader afterwards


def install_import_hook() -> None:
    """Arrange for :func:`load_optimized_blas` to run right before ``mlx.core`` is first loaded (idempotent).

    If ``mlx.core`` is already loaded, MLX keeps the BLAS it bound; :func:`load_optimized_blas` says so on first use.
    """
    if "mlx.core" in sys.modules:
        full_float32_matmuls()  # still in time unless a float32 matmul already ran
        load_optimized_blas()  # warns that MLX keeps its reference BLAS (unless switched off)
        return
    if any(isinstance(f, BlasBeforeMLX) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, BlasBeforeMLX())


def uninstall_import_hook() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, BlasBeforeMLX)]
