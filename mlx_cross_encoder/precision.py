"""Names of dtypes and score activations, and weight quantization, as the MLX rerankers and trainers read them.

``tf32`` is a dtype of its own: float32 weights and activations whose float32 matmuls may run in TF32 (10-bit
mantissa inputs, float32 accumulation) where the hardware has TF32 units (CUDA GPUs of compute capability 8.0 and
later; Apple GPUs with neural accelerators, M5, on macOS 26.2+). ``float32`` means full float32. MLX reads its
switch, ``MLX_ENABLE_TF32``, once per process (a static in ``mlx::core::env::enable_tf32()``, first read at the
first float32 matmul; MLX has no setter), so the process's switch must agree with the dtype: ``resolve_dtype``
refuses ``tf32`` in a process whose switch is 0 and ``float32`` in one whose switch is 1 (see
:func:`check_float32_matmuls`). :func:`float32_matmul` says what actually ran: ``"tf32"`` only with the switch on
*and* TF32 units; on a CPU or an older GPU a ``tf32`` model computes plain float32.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable

import mlx.core as mx
import mlx.nn as nn

from ._blas import TF32, TF32_ENV_VAR, float32_matmul_precision, tf32_switch

DTYPES = {
    "float32": mx.float32,
    "fp32": mx.float32,
    TF32: mx.float32,  # float32 storage; its matmuls in TF32 where the hardware has TF32 units
    "float16": mx.float16,
    "fp16": mx.float16,
    "half": mx.float16,
    "bfloat16": mx.bfloat16,
    "bf16": mx.bfloat16,
}

ACTIVATIONS: dict[str, Callable[[mx.array], mx.array]] = {
    "sigmoid": mx.sigmoid,
    "identity": lambda x: x,
    "tanh": mx.tanh,
    "softmax": lambda x: mx.softmax(x, axis=-1),
}
#: sentence-transformers stores the activation as a class path in config.json
ST_ACTIVATIONS = {
    "torch.nn.modules.activation.Sigmoid": "sigmoid",
    "torch.nn.modules.linear.Identity": "identity",
    "torch.nn.modules.activation.Tanh": "tanh",
    "torch.nn.modules.activation.Softmax": "softmax",
}


def resolve_dtype(dtype) -> mx.Dtype:
    """The MLX dtype of weights and activations for a dtype name (None: float32); float32 and tf32 are checked
    against this process's TF32 switch (:func:`check_float32_matmuls`)."""
    if dtype is None or (isinstance(dtype, mx.Dtype) and dtype == mx.float32):
        check_float32_matmuls("float32")
        return mx.float32
    if isinstance(dtype, mx.Dtype):
        return dtype
    if isinstance(dtype, str) and dtype.lower() in DTYPES:
        resolved = DTYPES[dtype.lower()]
        if resolved == mx.float32:
            check_float32_matmuls(TF32 if dtype.lower() == TF32 else "float32")
        return resolved
    raise ValueError(f"unsupported dtype {dtype!r}; use one of: float32, tf32, float16, bfloat16")


def check_float32_matmuls(dtype_name: str) -> None:
    """Refuse a float32-family dtype that this process's ``MLX_ENABLE_TF32`` would contradict: ``tf32`` with the
    switch 0, ``float32`` with the switch 1. Checked on every device, so code that runs on a CPU or an M1 also
    runs as written on a CUDA GPU or an M5 (where the switch changes the results)."""
    if float32_matmul_precision() == (TF32 if dtype_name == TF32 else "float32"):
        return
    have = os.environ.get(TF32_ENV_VAR, "unset (MLX's default: TF32)")
    need = tf32_switch(dtype_name)
    hint = (
        "start the process with MLX_ENABLE_TF32=1 (set before mlx.core loads; MLX reads it once per process)"
        if dtype_name == TF32
        else "use dtype 'tf32' for TF32 matmuls, or start the process with MLX_ENABLE_TF32=0"
    )
    raise ValueError(
        f"dtype {dtype_name!r} needs {TF32_ENV_VAR}={need}, but this process has {TF32_ENV_VAR}={have}: {hint}"
    )


def tf32_units(device=None) -> bool:
    """Whether ``device`` (default: MLX's default device) has units that compute float32 matmuls in TF32 when
    MLX's switch allows it: a CUDA GPU of compute capability >= 8.0, or an Apple GPU with neural accelerators
    (MLX's ``metal::is_nax_available``: architecture generation >= 17, >= 18 for phone GPUs, macOS >= 26.2)."""
    device = device or mx.default_device()
    if device.type != mx.gpu:
        return False
    info = mx.device_info(device)
    if mx.cuda.is_available():
        return int(info.get("compute_capability_major", 0)) >= 8
    arch = str(info.get("architecture", ""))
    gen = int(arch[-3:-1]) if len(arch) >= 3 and arch[-3:-1].isdigit() else 0
    release = tuple(int(x) for x in (platform.mac_ver()[0] or "0").split(".")[:2] if x.isdigit())
    return gen >= (18 if arch.endswith("p") else 17) and release >= (26, 2)


def float32_matmul(device=None) -> str:
    """What float32 matmuls compute in this process on ``device``: "tf32" when MLX's switch allows TF32 and the
    device has TF32 units, else "float32"."""
    return TF32 if float32_matmul_precision() == TF32 and tf32_units(device) else "float32"


def resolve_activation(activation_fn) -> Callable[[mx.array], mx.array]:
    if callable(activation_fn):
        return activation_fn
    if isinstance(activation_fn, str) and activation_fn.lower() in ACTIVATIONS:
        return ACTIVATIONS[activation_fn.lower()]
    raise ValueError(f"unknown activation_fn {activation_fn!r}; use a callable or one of {sorted(ACTIVATIONS)}")


def quantize_linear_layers(model: nn.Module, bits: int, group_size: int = 64, skip: tuple[str, ...] = ()) -> None:
    """Quantize the weights of the Linear layers whose input width divides into groups (heads in ``skip`` stay)."""
    if bits not in (4, 8):
        raise ValueError(f"quantize must be 4 or 8 (bits), got {bits!r}")

    def predicate(path: str, module: nn.Module) -> bool:
        return (
            isinstance(module, nn.Linear)
            and module.weight.shape[-1] % group_size == 0
            and not any(path.startswith(prefix) for prefix in skip)
        )

    nn.quantize(model, group_size=group_size, bits=bits, class_predicate=predicate)
