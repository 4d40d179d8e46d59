"""Training checkpoints: trainable tensors, optimizer state and loop position, written atomically.

Layout: ``<output_dir>/checkpoints/step-0000012/`` with ``trainable.safetensors`` (the trainable parameters),
``optimizer.safetensors`` (the flattened optimizer state: moments, step counters, learning rates) and
``state.json`` (optimizer step, epoch, micro-batches consumed in that epoch, best metric, early-stopping count).
Each directory is written under a temporary name and renamed into place, so a crash leaves either a complete
checkpoint or none; :func:`recover_dir` undoes what a crash left of a replacement (``best/``) and removes the
temporaries, and :func:`list_checkpoints` sees only complete checkpoints. Randomness needs no saved state: batch order depends on ``(seed, epoch)`` and dropout
masks are reseeded from ``(seed, micro-batch index)``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_flatten, tree_unflatten

from .lora import trainable_weights, write_dir_atomically

CHECKPOINTS = "checkpoints"
_NAME = re.compile(r"^step-(\d+)$")


def checkpoint_dir(output_dir, step: int) -> Path:
    return Path(output_dir) / CHECKPOINTS / f"step-{step:07d}"


def list_checkpoints(output_dir) -> list[Path]:
    """Complete checkpoints under ``output_dir``, oldest first."""
    root = Path(output_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [
        (int(m.group(1)), p) for p in root.iterdir() if (m := _NAME.match(p.name)) and (p / "state.json").is_file()
    ]
    return [p for _, p in sorted(found)]


def recover_dir(target) -> None:
    """Repair what a crash left of ``lora.write_dir_atomically(target)``.

    That function fills ``.<name>.tmp-*`` and, to replace an existing ``target``, moves the old copy to
    ``.<name>.old-*/x`` before renaming the new one into place. A crash between those two renames leaves no
    ``target``: the old copy is moved back. Leftover temporaries (half-written new copies, old copies no longer
    needed) are removed.
    """
    target = Path(target)
    parent = target.parent
    if not parent.is_dir():
        return
    if not target.exists():
        for old in sorted(parent.glob(f".{target.name}.old-*")):
            if (old / "x").is_dir():
                os.rename(old / "x", target)
                break
    for leftover in [*parent.glob(f".{target.name}.old-*"), *parent.glob(f".{target.name}.tmp-*")]:
        shutil.rmtree(leftover, ignore_errors=True)


def remove_partial_checkpoints(output_dir) -> list[Path]:
    """Remove the temporaries of checkpoints whose writing was interrupted; returns what was removed."""
    root = Path(output_dir) / CHECKPOINTS
    partial = sorted(root.glob(".step-*.tmp-*")) if root.is_dir() else []
    for p in partial:
        shutil.rmtree(p, ignore_errors=True)
    return partial


def latest_checkpoint(output_dir) -> Path | None:
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def save_checkpoint(
    output_dir, model: nn.Module, optimizer: optim.Optimizer, state: dict[str, Any], keep: int | None = None
) -> Path:
    """Write checkpoint ``step-<state['step']>`` atomically; keep only the newest ``keep`` ones."""
    weights = trainable_weights(model)
    opt_state = dict(tree_flatten(optimizer.state))

    def write(tmp: Path):
        mx.save_safetensors(str(tmp / "trainable.safetensors"), weights)
        mx.save_safetensors(str(tmp / "optimizer.safetensors"), opt_state)
        (tmp / "state.json").write_text(json.dumps(state, indent=2))

    path = write_dir_atomically(checkpoint_dir(output_dir, state["step"]), write)
    if keep is not None and keep > 0:
        for old in list_checkpoints(output_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return path


def load_checkpoint(path, model: nn.Module, optimizer: optim.Optimizer) -> dict[str, Any]:
    """Restore trainable parameters and optimizer state from ``path``; returns its ``state.json``."""
    path = Path(path)
    if not (path / "state.json").is_file():
        raise FileNotFoundError(f"{path} is not a training checkpoint (no state.json)")
    weights = mx.load(str(path / "trainable.safetensors"))
    expected = trainable_weights(model)
    if set(weights) != set(expected):
        extra, missing = sorted(set(weights) - set(expected)), sorted(set(expected) - set(weights))
        raise ValueError(
            f"checkpoint {path} does not fit this model's trainable parameters "
            f"(missing {missing[:3]}, unexpected {extra[:3]}); was it made with the same fine-tuning setup?"
        )
    model.load_weights(list(weights.items()), strict=False)
    optimizer.state = tree_unflatten(list(mx.load(str(path / "optimizer.safetensors")).items()))
    mx.eval(model.parameters(), optimizer.state)
    return json.loads((path / "state.json").read_text())
