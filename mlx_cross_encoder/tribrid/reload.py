"""Hot reload of an adapter folder the way TriBridRAG does it, made safe against half-written adapters.

TriBridRAG (``server/retrieval/mlx_qwen3.py``, ``MLXQwen3Reranker._maybe_reload_adapter_locked``) reloads its
LoRA adapter on two triggers:

* **polling** (``tribrid_reranker_reload_on_change=1``): at most once per ``tribrid_reranker_reload_period_sec``
  (default 60 s, the first check one period after the load), it compares ``(mtime_ns, size)`` of
  ``<adapter_dir>/adapter.npz`` with the loaded one and, on a difference, loads the file's weights into the live
  model. A missing file keeps the loaded weights (its comment says "revert to base", its code keeps them);
* **promotion** (``server/api/reranker.py``): ``_atomic_copy_dir(candidate, active)`` (copy to a temporary
  sibling, rename the active folder away, rename the copy in), then ``clear_mlx_qwen3_cache(active)``, so the
  next request builds a fresh reranker from the new folder.

:class:`AdapterWatch` does the polling with three changes, each tested in ``test_tribrid_reload.py``:

* the fingerprint adds the inode: a promotion copies with ``shutil.copytree`` (``copy2`` keeps the candidate's
  mtime), so a new adapter of the same size can carry an old mtime, but it is always a new file;
* a new adapter is built into a *new* object that replaces the live one only when the build succeeded and the
  weights file did not change while it was read: a half-written or truncated adapter never serves (the old one
  keeps serving; the failure is kept in ``errors`` and retried when the file changes again);
* ``period_s`` defaults to 0 (a ``stat`` per call); ``poll(build, force=True)`` skips the period, as TriBridRAG's
  cache clear on promotion does.

The server can reuse it as is: ``watch = AdapterWatch(path, period_s)``; after building its model with
``watch.accept(fp)`` (``fp = adapter_fingerprint(path)`` taken *before* the build), each request runs
``new = watch.poll(build)`` and swaps ``new`` in when it is not None.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, TypeVar

T = TypeVar("T")
#: the weights file of a TriBridRAG artifact, then of an mlx-lm adapter folder
WEIGHT_FILES = ("adapter.npz", "adapters.safetensors")
log = logging.getLogger(__name__)


class Fingerprint(NamedTuple):
    name: str  # which of WEIGHT_FILES
    inode: int
    mtime_ns: int
    size: int


def adapter_fingerprint(adapter_path: str | os.PathLike | None) -> Fingerprint | None:
    """The adapter folder's weights file (``adapter.npz``, else ``adapters.safetensors``) as (name, inode,
    mtime_ns, size); None when the folder has neither (or is missing, e.g. between a promotion's renames)."""
    if adapter_path is None:
        return None
    for name in WEIGHT_FILES:
        try:
            st = (Path(adapter_path) / name).stat()
        except (FileNotFoundError, NotADirectoryError):
            continue
        return Fingerprint(name, int(st.st_ino), int(st.st_mtime_ns), int(st.st_size))
    return None


class AdapterWatch:
    """Polls one adapter folder and builds a replacement when its weights file changed (module docstring)."""

    def __init__(self, path: str | os.PathLike, period_s: float = 0.0, clock: Callable[[], float] = time.monotonic):
        if not (period_s >= 0 and math.isfinite(period_s)):
            raise ValueError(f"period_s must be a finite number >= 0, got {period_s!r}")
        self.path = Path(path)
        self.period_s = float(period_s)
        self._clock = clock
        self.loaded: Fingerprint | None = None  # the weights in use
        self.rejected: Fingerprint | None = None  # the last weights that failed to build (not retried unchanged)
        self.errors: list[str] = []
        self._last_check = -math.inf

    def accept(self, fingerprint: Fingerprint | None) -> None:
        """Record the weights now in use (taken before they were read) and restart the period."""
        self.loaded = fingerprint
        self._last_check = self._clock()

    def changed(self, *, force: bool = False) -> Fingerprint | None:
        """The new weights file's fingerprint when a check is due and it differs from the loaded one, else None.
        A missing file is no change: the loaded adapter keeps serving (TriBridRAG)."""
        now = self._clock()
        if not force and now - self._last_check < self.period_s:
            return None
        self._last_check = now
        fp = adapter_fingerprint(self.path)
        if fp is None or fp == self.loaded or fp == self.rejected:
            return None
        return fp

    def poll(self, build: Callable[[], T], *, force: bool = False) -> T | None:
        """``build()`` when the adapter changed and the result is whole, else None (keep serving the old)."""
        fp = self.changed(force=force)
        if fp is None:
            return None
        try:
            built = build()
        except Exception as exc:  # a half-written or broken adapter: keep the old one, say why
            self.rejected = fp
            self.errors.append(f"{self.path / fp.name}: {type(exc).__name__}: {exc}")
            log.warning("adapter reload failed, keeping the loaded one: %s", self.errors[-1])
            return None
        after = adapter_fingerprint(self.path)
        if after != fp:  # written while it was read: not one adapter; the next poll sees the final file
            self.errors.append(f"{self.path / fp.name}: changed while it was loaded; not used")
            log.warning("adapter reload skipped: %s", self.errors[-1])
            return None
        self.loaded, self.rejected = fp, None
        return built
