"""The seed's ``RERANKER_MODE=mlx`` / ``MLX_RERANKER_*`` environment, validated (no MLX import).

The seed names ``RERANKER_MODE``, ``MLX_RERANKER_TYPE``, ``MLX_RERANKER_MODEL``, ``MLX_RERANKER_ADAPTER`` and
``MLX_RERANKER_MAX_LENGTH``. It names no variable for the batch size, the top-n or the instruction; ours are
``MLX_RERANKER_BATCH_SIZE``, ``MLX_RERANKER_TOP_N``, ``MLX_RERANKER_INSTRUCTION`` and
``MLX_RERANKER_RELOAD_ON_CHANGE`` (0/1, TriBridRAG's ``tribrid_reranker_reload_on_change``) and
``MLX_RERANKER_RELOAD_PERIOD_SEC`` (seconds >= 0 between checks, default 0 = every call; TriBridRAG's
``tribrid_reranker_reload_period_sec``, default 60).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: reranker_type -> what it loads: Qwen3Reranker, MLXCrossEncoder, or whichever the checkpoint's config calls for
RERANKER_TYPES = ("qwen3", "cross_encoder", "auto")

#: settings field -> environment variable
ENV_NAMES = {
    "reranker_type": "MLX_RERANKER_TYPE",
    "model_name": "MLX_RERANKER_MODEL",
    "adapter_path": "MLX_RERANKER_ADAPTER",
    "max_length": "MLX_RERANKER_MAX_LENGTH",
    "batch_size": "MLX_RERANKER_BATCH_SIZE",
    "top_n": "MLX_RERANKER_TOP_N",
    "instruction": "MLX_RERANKER_INSTRUCTION",
    "reload_on_change": "MLX_RERANKER_RELOAD_ON_CHANGE",
    "reload_period_s": "MLX_RERANKER_RELOAD_PERIOD_SEC",
}
MODE_VAR = "RERANKER_MODE"


class RerankerSettings(BaseModel):
    """The constructor arguments of :class:`~mlx_cross_encoder.tribrid.reranker.TriBridMLXReranker`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reranker_type: Literal["qwen3", "cross_encoder", "auto"] = "qwen3"
    model_name: str = Field(min_length=1)
    adapter_path: str | None = None
    max_length: int = Field(512, ge=1)
    batch_size: int = Field(32, ge=1)
    top_n: int | None = Field(None, ge=1)
    instruction: str | None = None
    reload_on_change: bool = True
    reload_period_s: float = Field(0.0, ge=0, allow_inf_nan=False)


def _int(value: str, var: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise ValueError(f"{var}={value!r} is not an integer") from None


def _float(value: str, var: str) -> float:
    try:
        return float(value.strip())
    except ValueError:
        raise ValueError(f"{var}={value!r} is not a number") from None


def settings_from_env(environ: Mapping[str, str] | None = None) -> RerankerSettings:
    """Read the settings from ``environ`` (default ``os.environ``); a bad value raises ValueError naming the
    variable."""
    env = os.environ if environ is None else environ
    mode = env.get(MODE_VAR, "").strip().lower()
    if mode != "mlx":
        raise ValueError(f"{MODE_VAR} must be 'mlx' for the MLX reranker, got {env.get(MODE_VAR)!r}")
    raw: dict[str, object] = {}
    for field, var in ENV_NAMES.items():
        value = env.get(var)
        if value is None or value.strip() == "":
            continue
        if field in ("max_length", "batch_size", "top_n"):
            raw[field] = _int(value, var)
        elif field == "reload_period_s":
            raw[field] = _float(value, var)
        elif field == "reload_on_change":
            if value.strip() not in ("0", "1"):
                raise ValueError(f"{var}={value!r} must be 0 or 1")
            raw[field] = value.strip() == "1"
        elif field == "reranker_type":
            raw[field] = value.strip().lower()
        else:
            raw[field] = value.strip() if field != "instruction" else value
    if "model_name" not in raw:
        raise ValueError(f"{ENV_NAMES['model_name']} is not set (a model directory, Hub id or .gguf file)")
    try:
        return RerankerSettings(**raw)
    except ValueError as exc:  # pydantic's ValidationError: name the variables, not the fields
        errors = getattr(exc, "errors", lambda: [])()
        parts = [f"{ENV_NAMES.get(str(e['loc'][0]), e['loc'][0])}={raw.get(e['loc'][0])!r}: {e['msg']}" for e in errors]
        raise ValueError("invalid MLX reranker environment: " + "; ".join(parts or [str(exc)])) from None
