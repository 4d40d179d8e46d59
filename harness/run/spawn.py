"""Spawn one worker process for one job and turn whatever happens to it into a result (never an exception).

``spawn_worker(job, workdir, timeout_s, progress, module)`` runs ``python -m <module> JOB.json RESULT.json`` in
its own process group with an explicitly built environment (``worker_environment``), copies its output to our
stderr (keeping the tail for error messages), and returns the worker's ok result or a ``WorkerFailure`` (as a dict)
with the cause: the worker's own error (a Python exception), a crash, a kill (the OOM killer's SIGKILL), a timeout,
an exit before the result was written, an unreadable result or one of a shape no worker writes; each with the exit
status or signal and the tail of the worker's output. If the parent is interrupted (Ctrl-C, SIGTERM, SIGHUP), the
worker's whole process group is killed before the interruption goes on.
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
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .. import USER_BLAS_ENVIRONMENT
from ..environment import REPO_ROOT

OUTPUT_TAIL_BYTES = 4000
RESULT_SHOWN_CHARS = 200  # of a result of no known shape, in the error message
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


class WorkerFailure(BaseModel):
    """A failed job as the parent records it: always the cause, never an unknown failure. ``exit_code`` is the
    worker's exit status (negative: the signal that ended it, named in ``signal``), ``log_tail`` the last lines it
    printed (stdout and stderr), ``traceback`` the worker's own record of a Python exception."""

    model_config = ConfigDict(extra="forbid")
    status: Literal["error"] = "error"
    error: str = Field(min_length=1)  # what went wrong, one line first
    exit_code: int | None = None
    signal: str | None = None
    traceback: str | None = None
    log_tail: str | None = None


def _ended(code: int) -> str:
    return f"status {code}" if code >= 0 else f"signal {_signal_name(-code)}"


def _read_result(result_file: Path) -> tuple[Any, str | None]:
    """The worker's result (None when it wrote none) and why it cannot be read, if it cannot."""
    if not result_file.is_file():
        return None, None
    try:
        return json.loads(result_file.read_text()), None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"worker wrote an unreadable result ({exc})"


def _outcome(code: int, result_file: Path, output: str) -> dict[str, Any]:
    """The result of a worker that exited with ``code``: its ok result, or a ``WorkerFailure`` saying why not
    (whatever the worker left: no result, an unreadable one, one of a shape no worker writes)."""
    cause = {"exit_code": code, "signal": _signal_name(-code) if code < 0 else None, "log_tail": output or None}

    def failure(message: str, traceback: str | None = None) -> dict[str, Any]:
        return WorkerFailure(error=message, traceback=traceback, **cause).model_dump(exclude_none=True)

    result, unreadable = _read_result(result_file)
    if unreadable:
        return failure(f"{unreadable}; it exited with {_ended(code)}")
    if isinstance(result, dict) and result.get("status") == "ok":
        return result if code == 0 else failure(f"worker exited with {_ended(code)} after writing its result")
    if isinstance(result, dict) and result.get("status") == "error" and str(result.get("error") or "").strip():
        return failure(str(result["error"]), result.get("traceback"))  # a Python exception, recorded by the worker
    if result is not None:
        shown = repr(result)[:RESULT_SHOWN_CHARS]
        return failure(f"worker wrote a result of no known shape ({shown}) and exited with {_ended(code)}")
    if code < 0:
        detail = "killed (likely out of memory)" if -code == signal.SIGKILL else f"crashed ({_signal_name(-code)})"
        return failure(f"worker {detail}")
    last = output.splitlines()[-1] if output else "no output"
    return failure(f"worker exited with status {code} without a result: {last}")


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
        return WorkerFailure(
            error=f"timed out after {timeout_s:g} s (worker killed)",
            exit_code=proc.returncode,
            signal=_signal_name(signal.SIGKILL),
            log_tail=_tail_lines(tail) or None,
        ).model_dump(exclude_none=True)
    except BaseException:  # Ctrl-C, SIGTERM, SIGHUP in the parent: do not leave the worker running
        _kill_group(proc)
        raise
    pump.join(timeout=10)
    proc.stdout.close()
    return _outcome(code, result_file, _tail_lines(tail))
