"""A deterministic backend with planted regressions, run by the real harness (registered by a test in BACKENDS).

Options: ``ms_per_pair`` (each ``predict`` sleeps this long per pair: the time a pass takes), ``slowdown`` (1.2 = 20%
more latency), ``degrade`` (every 10th query, ``q0``, ``q10``, ..., gets its ranking reversed: scores degraded on
10% of the queries), ``extra_mb`` (memory held: the peak reported is this much higher). Scores otherwise follow the
document's number (``d0`` first), so quality is known in advance.
"""

from __future__ import annotations

import time

import numpy as np

from harness.backends import Backend

BASE_MB = 100.0


class PlantedBackend(Backend):
    name = "planted"
    device = "test-cpu"
    memory_measure = "planted: a fixed figure plus options.extra_mb"

    def predict(self, pairs, batch_size):
        time.sleep(
            len(pairs) * float(self.options.get("ms_per_pair", 2.0)) * float(self.options.get("slowdown", 1.0)) / 1000
        )
        scores = np.array([-float(doc.split()[0][1:]) for _, doc in pairs], dtype=np.float32)
        if self.options.get("degrade"):
            flip = np.array([int(query.split()[0][1:]) % 10 == 0 for query, _ in pairs])
            scores = np.where(flip, -scores, scores)
        return scores

    def token_counts(self, pairs):
        return np.array([min(self.max_length, 2 + len(q.split()) + len(d.split())) for q, d in pairs])

    def reset_peak_memory(self):
        pass

    def peak_memory_mb(self):
        return BASE_MB + float(self.options.get("extra_mb", 0.0))


def load(spec, max_length, model_dir):
    return PlantedBackend(spec, max_length, model_dir)
