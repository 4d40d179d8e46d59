"""Spawn one worker process for one job and turn whatever happens to it into a result (never an exception).

``spawn_worker(job, workdir, timeout_s, progress, module)`` runs ``python -m <module> JOB.json RESULT.json`` in
its own process group with an explicitly built environment (``worker_environment``), copies its output to our
stderr (keeping the tail for error messages), and returns the worker's result, or ``{"status": "error", ...}``
for a crash, a kill (the OOM killer's SIGKILL), a timeout or an unreadable result. If the parent is interrupted
(Ctrl-C, SIGTERM, SIGHUP), the worker's whole process group is killed before the interruption goes on.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import USER_BLAS_ENVIRONMENT
from ..environment import REPO_ROOT

OUTPUT_TAIL_BYTES = 4000
MEASURE_WORKER = "harness.run.worker"


def worker_environment() -> dict[str, str]:
    """The environment of a worker: ours, with the BLAS/OpenMP settings the user had (mlx_cross_encoder sets its
    own in the process that imports it; a torch worker must not inherit them), no tokenizer threads fighting the
    measured ones, and the repository on PYTHONPATH."""
    env = dict(os.environ)
    for name, value in USER_BLAS_ENVIRONMENT.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _pump(stream, sink: Callable[[str], None] | None, tail: deque) -> None:
    """Copy a worker's output (progress bars, logs) to our stderr, keeping its tail for error messages."""
    while chunk := os.read(stream.fileno(), 4096):
        text = chunk.decode(errors="replace")
        tail.append(text)
        while sum(len(t) for t in tail) > OUTPUT_TAIL_BYTES and len(tail) > 1:
            tail.popleft()
        if sink is not None:
            sink(text)


def _tail_lines(tail: deque, n: int = 8) -> str:
    lines = [line.rstrip() for line in "".join(tail).replace("\r", "\n").splitlines() if line.strip()]
    return "\n".join(lines[-n:])


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def _outcome(code: int, result_file: Path, output: str) -> dict[str, Any]:
    """The result of a worker that exited with ``code``."""
    if result_file.is_file():
        try:
            result = json.loads(result_file.read_text())
        except json.JSONDecodeError as exc:
            return {"status": "error", "error": f"worker wrote an unreadable result ({exc})", "log_tail": output}
        if result.get("status") == "ok" and code != 0:
            return {
                "status": "error",
                "error": f"worker exited with status {code} after writing its result",
                "log_tail": output,
            }
        return result
    if code < 0:
        name = _signal_name(-code)
        message = "killed (likely out of memory)" if -code == signal.SIGKILL else f"crashed ({name})"
        return {"status": "error", "error": f"worker {message}", "signal": name, "log_tail": output}
    last = output.splitlines()[-1] if output else "no output"
    return {
        "status": "error",
        "error": f"worker exited with status {code} without a result: {last}",
        "log_tail": output,
    }


def spawn_worker(
    job: dict[str, Any], workdir: Path, timeout_s: float | None, progress: bool = True, module: str = MEASURE_WORKER
) -> dict[str, Any]:
    """Run one job in ``python -m <module>`` (the measuring worker, or the training worker); always returns a
    result dict (status ok or error)."""
    index = len(list(workdir.glob("job-*.json")))
    job_file, result_file = workdir / f"job-{index}.json", workdir / f"result-{index}.json"
    job_file.write_text(json.dumps(job))
    proc = subprocess.Popen(
        [sys.executable, "-m", module, str(job_file), str(result_file)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=worker_environment(),
        start_new_session=True,  # its own process group: a timeout kills the worker and anything it started
    )
    tail: deque = deque()
    sink = (lambda text: (sys.stderr.write(text), sys.stderr.flush())) if progress else None
    pump = threading.Thread(target=_pump, args=(proc.stdout, sink, tail), daemon=True)
    pump.start()
    try:
        code = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        pump.join(timeout=10)
        proc.stdout.close()
        return {
            "status": "error",
            "error": f"timed out after {timeout_s:g} s (worker killed)",
            "log_tail": _tail_lines(tail),
        }
    except BaseException:  # Ctrl-C, SIGTERM, SIGHUP in the parent: do not leave the worker running
        _kill_group(proc)
        raise
    pump.join(timeout=10)
    proc.stdout.close()
    return _outcome(code, result_file, _tail_lines(tail))
