"""Promotion of a trained adapter folder to the active path: TriBridRAG's rule (``server/api/reranker.py``:
promote only when ``new > baseline + epsilon`` when a baseline exists) and its atomic swap ``_atomic_copy_dir``
(copy to a temporary sibling, rename the active folder to a backup, rename the copy into place). A crash between
the two renames leaves the backup; :func:`recover` (run first by :func:`promote`) puts it back.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pydantic import BaseModel


class Decision(BaseModel):
    promoted: bool
    new: float
    baseline: float | None
    epsilon: float
    reason: str


def should_promote(new: float, baseline: float | None, epsilon: float = 0.0) -> Decision:
    if baseline is None:
        return Decision(promoted=True, new=new, baseline=None, epsilon=epsilon, reason="no active model")
    ok = new > baseline + epsilon
    why = f"{new:.6f} {'>' if ok else '<='} {baseline:.6f} + {epsilon}"
    return Decision(promoted=ok, new=new, baseline=baseline, epsilon=epsilon, reason=why)


def _siblings(dst: Path, kind: str) -> list[Path]:
    return sorted(dst.parent.glob(f".{kind}_{dst.name}_*")) if dst.parent.is_dir() else []


def recover(dst) -> None:
    """Undo an interrupted swap: no active folder but a backup -> restore the backup; drop temporary copies."""
    dst = Path(dst)
    backups = _siblings(dst, "bak")
    if not dst.exists() and backups:
        os.rename(backups[-1], dst)
        backups = backups[:-1]
    for p in backups + _siblings(dst, "tmp"):
        shutil.rmtree(p, ignore_errors=True)


def atomic_copy_dir(src, dst) -> None:
    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    recover(dst)
    stamp = f"{os.getpid()}_{os.urandom(4).hex()}"
    tmp, bak = dst.parent / f".tmp_{dst.name}_{stamp}", dst.parent / f".bak_{dst.name}_{stamp}"
    shutil.copytree(src, tmp)
    if dst.exists():
        os.rename(dst, bak)
    os.rename(tmp, dst)
    shutil.rmtree(bak, ignore_errors=True)


def promote(src, dst, new: float, baseline: float | None, epsilon: float = 0.0) -> Decision:
    """Copy ``src`` over ``dst`` atomically when :func:`should_promote` says so."""
    decision = should_promote(new, baseline, epsilon)
    if decision.promoted:
        atomic_copy_dir(src, dst)
    return decision
