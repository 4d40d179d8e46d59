"""Reading and writing results files so that they cannot be lost, overwritten or half-written.

* Writes are atomic: a temporary file in the same folder, ``fsync``, ``os.replace``, ``fsync`` of the folder. A
  crash at any point leaves the previous file whole (a stray ``.NAME.*.tmp`` at worst, which nothing reads).
* New files get the user's umask (``mkstemp``'s 0600 is widened to ``0666 & ~umask``).
* ``OutputLock``: one ``harness run`` per output file (``fcntl.flock`` on a ``.NAME.lock`` file beside it); a
  second one is refused with a message naming the file.
* ``claim_default_output``: default names are created exclusively (``O_EXCL``), so two runs started in the same
  second get different files.
* ``ResultsWriter``: a save that fails (disk full, folder gone) is retried once at a fallback path, and says where.
* Older files are read as schema 3 (``upgrade``): schema 1 only lacks ``complete`` (null: not recorded), schema 2
  only lacks ``scenarios`` (its runs are the single-query protocol, in ``perf``).
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..records import problems
from .models import SCHEMA_VERSION, ResultsFile

READABLE_SCHEMAS = (1, 2, 3)


class ResultsError(ValueError):
    """A results file is missing, unreadable, does not follow the schema, or may not be written."""


def default_output(suite_name: str, now: _dt.datetime | None = None, directory: str | Path = "results") -> Path:
    """``results/<suite>-<UTC timestamp>.json`` (``claim_default_output`` makes it unique)."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", suite_name) or "suite"
    return Path(directory) / f"{safe}-{now.strftime('%Y%m%dT%H%M%SZ')}.json"


def claim_default_output(suite_name: str, directory: str | Path = "results") -> Path:
    """Create the default results file exclusively: ``NAME.json``, else ``NAME-2.json``, ``NAME-3.json``, ..."""
    first = default_output(suite_name, directory=directory)
    first.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        path = first if n == 1 else first.with_name(f"{first.stem}-{n}{first.suffix}")
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return path
    raise ResultsError(f"{first.parent}: no free results file name for {first.name}")


def finite_or_none(value):
    """JSON has no NaN/inf: non-finite floats are stored as null (``None``), recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def upgrade(obj: Any) -> Any:
    """An older document as the current schema; others unchanged. Schema 1 -> 2: ``complete`` null (not
    recorded). Schema 2 -> 3: nothing to change (``scenarios`` is optional; such runs measured single_query only,
    figures in ``perf``)."""
    if isinstance(obj, dict) and obj.get("schema") == 1:
        obj = {**obj, "schema": 2, "complete": obj.get("complete")}
    if isinstance(obj, dict) and obj.get("schema") == 2:
        obj = {**obj, "schema": SCHEMA_VERSION}
    return obj


def _label(obj: Any, path: str) -> str:
    """``runs[3] (minilm-mlx on dl19).perf``: a run's place with its names."""
    m = re.match(r"^runs\[(\d+)\]", path)
    runs = obj.get("runs") if isinstance(obj, dict) else None
    if m and isinstance(runs, list) and int(m.group(1)) < len(runs) and isinstance(runs[int(m.group(1))], dict):
        run = runs[int(m.group(1))]
        if isinstance(run.get("reranker"), str) and isinstance(run.get("dataset"), str):
            return f"{m.group(0)} ({run['reranker']} on {run['dataset']}){path[m.end() :]}"
    return path


def validate(obj: Any) -> ResultsFile:
    """The typed results (schema 3; older ones upgraded); ResultsError listing every problem on one line."""
    if not isinstance(obj, dict):
        raise ResultsError(f"expected a JSON object at the top level, got {type(obj).__name__}")
    if "schema" not in obj:
        raise ResultsError("no 'schema' key: not a harness results file")
    if obj["schema"] not in READABLE_SCHEMAS:
        readable = ", ".join(map(str, READABLE_SCHEMAS))
        raise ResultsError(f"schema {obj['schema']!r} is not supported: this harness reads schemas {readable}")
    obj = upgrade(obj)
    try:
        return ResultsFile.model_validate(obj)
    except ValidationError as exc:
        found = [f"{_label(obj, where)}: {message}" if where else message for where, message in problems(exc)]
        raise ResultsError("; ".join(found)) from None


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomically(text: str, path: Path) -> None:
    """``text`` at ``path``, all or nothing: temp file + fsync + os.replace + fsync of the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:  # some filesystems cannot fsync a folder; the data itself is synced
        pass


def save_results(obj: dict, path: str | Path) -> Path:
    """Validate and write ``obj`` atomically (a reader never sees half a file; a crash keeps the old one)."""
    obj = finite_or_none(obj)
    validate(obj)
    path = Path(path)
    write_atomically(json.dumps(obj, indent=1, allow_nan=False) + "\n", path)
    return path


def load_results(path: str | Path) -> dict:
    """Read and validate a results file (older schemas read as the current one); ResultsError (one line, with the
    path) otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such results file") from None
    except UnicodeDecodeError as exc:
        raise ResultsError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not text.strip():
        raise ResultsError(f"{path}: empty file (a run that was just starting, or not a results file)")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not valid JSON ({exc})") from None
    try:
        validate(obj)
    except ResultsError as exc:
        raise ResultsError(f"{path}: {exc}") from None
    return upgrade(obj)


def read_results(path: str | Path) -> ResultsFile:
    """``load_results`` as the typed record."""
    return ResultsFile.model_validate(load_results(path))


def check_writable(path: str | Path, what: str) -> None:
    """ResultsError now, before any work, when ``path`` could not be written later."""
    path = Path(path)
    if path.is_dir():
        raise ResultsError(f"{what} {path} is a folder, not a file")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ResultsError(f"{what} {path}: cannot write in {folder} (not a writable folder)")
    if path.exists() and not os.access(path.parent, os.W_OK):
        raise ResultsError(f"{what} {path}: cannot replace it (folder not writable)")


class OutputLock:
    """An exclusive, non-blocking lock for one output file (held for the whole ``harness run``)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.lock_path = self.path.with_name(f".{self.path.name}.lock")
        self._fd: int | None = None

    def acquire(self) -> OutputLock:
        import fcntl

        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                holder = self.lock_path.read_text().strip() if self.lock_path.is_file() else ""
                raise ResultsError(
                    f"{self.path} is being written by another harness run{f' (pid {holder})' if holder else ''}; "
                    "wait for it to finish or choose another --output"
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            self.lock_path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def fallback_path(path: Path) -> Path:
    """Where results go when ``path`` cannot be written: the temp folder, same name, unique."""
    folder = Path(tempfile.gettempdir()) / "harness-results-fallback"
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f"{path.stem}-", suffix=path.suffix, dir=folder)
    os.close(fd)
    return Path(name)


class ResultsWriter:
    """Saves one run's results after every step; a failed save is retried once at a fallback path."""

    def __init__(self, path: Path, log=None):
        self.path = Path(path)
        self.requested = Path(path)
        self.log = log or (lambda message: None)

    def save(self, obj: dict) -> Path:
        try:
            return save_results(obj, self.path)
        except OSError as exc:
            if self.path != self.requested:  # already on the fallback: nothing more to try
                raise
            failed = self.path
            self.path = fallback_path(failed)
            self.log(f"harness: could not write {failed} ({exc.strerror or exc}); results go to {self.path}")
            return save_results(obj, self.path)
