"""A backend that fails on purpose, for the runner's failure handling (registered by tests in BACKENDS).

``options: {"fault": ...}`` picks the failure, at load time or in ``predict`` (``"when": "load" | "predict"``):
``raise`` (a Python exception), ``kill`` (SIGKILL to itself, as the OOM killer does), ``exit`` (``os._exit(3)``),
``segv`` (SIGSEGV to itself), ``sysexit`` (``sys.exit(0)`` from inside the backend), ``bad_result`` /
``list_result`` (writes a result file of a shape no worker writes, then ``os._exit(5)``: a worker of another
version, or one that died mid-protocol), ``sleep`` (hangs, for timeouts), ``none`` (works: scores = -rank), ``drift``
(works, but every call's scores differ a little: a non-deterministic backend), ``gate``
(writes its pid to ``options.pidfile``, then hangs while the file ``options.gate`` exists: a run that can be
interrupted at a known point and completed later). Each hard death first prints ``faulty backend: <fault>`` to
stderr (what the parent must keep as the run's ``log_tail``).
"""

from __future__ import annotations

import os
import signal
import sys
import time

import numpy as np

from harness.backends import Backend


class FaultyBackend(Backend):
    name = "faulty"
    device = "test-cpu"
    memory_measure = "none"

    def __init__(self, spec, max_length, model_dir):
        super().__init__(spec, max_length, model_dir)
        self.fault = self.options.get("fault", "none")
        self.calls = 0
        if self.options.get("when", "predict") == "load":
            self.fail()

    def fail(self):
        if self.fault in ("kill", "segv", "exit", "sysexit", "bad_result", "list_result"):
            print(f"faulty backend: {self.fault}", file=sys.stderr, flush=True)
        if self.fault in ("bad_result", "list_result"):  # the worker's RESULT.json is its last argument
            with open(sys.argv[-1], "w") as f:
                f.write('{"status": "error"}' if self.fault == "bad_result" else "[1, 2]")
            os._exit(5)
        if self.fault == "sysexit":
            sys.exit(0)
        if self.fault == "raise":
            raise RuntimeError("deliberate failure for the test")
        if self.fault == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if self.fault == "segv":
            os.kill(os.getpid(), signal.SIGSEGV)
        if self.fault == "exit":
            os._exit(3)
        if self.fault == "sleep":
            time.sleep(600)
        if self.fault == "gate":
            with open(self.options["pidfile"], "w") as f:
                f.write(str(os.getpid()))
            while os.path.exists(self.options["gate"]):
                time.sleep(0.05)

    def predict(self, pairs, batch_size):
        self.fail()
        self.calls += 1
        drift = 1e-3 * self.calls if self.fault == "drift" else 0.0
        return -np.arange(len(pairs), dtype=np.float32) + np.float32(drift)

    def token_counts(self, pairs):
        return np.array([min(self.max_length, 2 + len(q.split()) + len(d.split())) for q, d in pairs])

    def reset_peak_memory(self):
        pass

    def peak_memory_mb(self):
        return None


def load(spec, max_length, model_dir):
    return FaultyBackend(spec, max_length, model_dir)


def register(monkeypatch, cache_dir) -> None:
    """For a test: this module as backend ``faulty`` (the workers import it: tests/ goes on PYTHONPATH) and a model
    cache of the test's own (``RERANKER_HARNESS_CACHE``)."""
    from pathlib import Path

    from harness import backends

    monkeypatch.setitem(backends.BACKENDS, "faulty", backends.BackendInfo("faulty", "faulty_backend", "test faults"))
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    monkeypatch.setenv("RERANKER_HARNESS_CACHE", str(cache_dir))
