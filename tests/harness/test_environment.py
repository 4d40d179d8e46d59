"""Environment capture: every figure is stored with chip, versions, BLAS, commit and date."""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import platform
import socket
import subprocess
import sys

from harness.environment import REPO_ROOT, capture_environment


def test_environment_fields():
    env = capture_environment()
    assert set(env) >= {"chip", "os", "python", "packages", "blas", "git", "date", "hostname_hash"}

    chip = env["chip"]
    assert chip["name"] and chip["cpu_cores"] == os.cpu_count()
    assert set(chip) >= {"cpu", "gpu", "gpu_cores", "gpu_memory", "memory_bytes"}
    if sys.platform.startswith("linux"):
        model = next(
            (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), None
        )
        if model:
            assert chip["cpu"] == model and chip["name"].startswith(f"{model} ({os.cpu_count()} cores)")

    assert env["os"]["system"] == platform.system() and env["python"]["version"] == platform.python_version()
    for name in ("mlx", "mlx-lm", "torch", "transformers", "sentence-transformers", "tokenizers", "ranx", "numpy"):
        assert env["packages"][name] == importlib.metadata.version(name)
    assert "mlx-metal" in env["packages"] and "mlx-cpu" in env["packages"]

    import mlx_cross_encoder._blas as blas

    assert env["blas"] == blas.loaded_library

    head = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert env["git"]["commit"] == head.stdout.strip() and isinstance(env["git"]["dirty"], bool)

    date = dt.datetime.fromisoformat(env["date"])
    assert date.utcoffset() == dt.timedelta(0)
    assert abs((dt.datetime.now(dt.timezone.utc) - date).total_seconds()) < 3600

    host = socket.gethostname()
    assert env["hostname_hash"] == hashlib.sha256(host.encode()).hexdigest()[:12]
    if len(host) >= 6:  # a short name could occur by chance
        assert host not in json.dumps(env)
