"""Trainers that fail on purpose, for the runner's handling of failed trainings (tests point
``harness.backends.registry.BACKENDS[backend].trainers`` entries here; the training worker finds this module through PYTHONPATH)."""

from __future__ import annotations

import os
import signal


def train_killed(job):
    """Dies as the OOM killer kills: SIGKILL, no result written."""
    os.kill(os.getpid(), signal.SIGKILL)


def train_raises(job):
    raise RuntimeError(f"deliberate training failure for {job['name']}")
