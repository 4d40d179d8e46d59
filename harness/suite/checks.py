"""Value checks of suite fields: ``(value, base_dir) -> value``, raising ``Invalid("must be ..., got ...")``.

Used as pydantic before-validators (``harness.records.Checked``): they keep the suite's wording, refuse what
pydantic's lax mode would coerce (``true`` as 1, ``"3"`` as 3) and resolve paths against the suite's folder.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..records import Invalid, got

Check = Callable[[Any, Path], Any]
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def integer(minimum: int, what: str) -> Check:
    def check(v: Any, _: Path) -> int:
        if not is_int(v) or v < minimum:
            raise Invalid(f"must be {what}, {got(v)}")
        return v

    return check


def optional(check: Check) -> Check:
    return lambda v, base: None if v is None else check(v, base)


def string(v: Any, _: Path) -> str:
    if not isinstance(v, str) or not v.strip():
        raise Invalid(f"must be a non-empty string, {got(v)}")
    return v


def name(v: Any, base: Path) -> str:
    if not NAME_RE.match(string(v, base)):
        raise Invalid(f"must be a name of letters, digits and . _ + - (starting with a letter or digit), {got(v)}")
    return v


def choice(*values: str) -> Check:
    def check(v: Any, _: Path) -> str:
        if v not in values:
            raise Invalid(f"must be one of {', '.join(values)}, {got(v)}")
        return v

    return check


def boolean(v: Any, _: Path) -> bool:
    if not isinstance(v, bool):
        raise Invalid(f"must be true or false, {got(v)}")
    return v


def mapping(v: Any, _: Path) -> dict:
    if not isinstance(v, dict):
        raise Invalid(f"must be a mapping, {got(v)}")
    return v


def path(kind: str) -> Check:
    """An existing file or folder, relative to the suite's folder (absolute after validation)."""

    def check(v: Any, base: Path) -> Path:
        if isinstance(v, Path):
            return v
        p = (base / Path(string(v, base)).expanduser()).resolve()
        if not (p.is_dir() if kind == "dir" else p.is_file()):
            raise Invalid(f"no such {'folder' if kind == 'dir' else 'file'}: {p}")
        return p

    return check


def model_ref(v: Any, base: Path) -> str:
    """A Hub id or ``local:<name>`` as written; a path (starting with ``.`` or ``/``) resolved and checked."""
    v = string(v, base)
    if v.startswith((".", "/")):
        p = (base / v).resolve()
        if not p.exists():
            raise Invalid(f"no such model path: {p}")
        return str(p)
    return v


def nonempty_list(what: str = "a non-empty list", allow_empty: bool = False) -> Check:
    def check(v: Any, _: Path) -> list:
        if not isinstance(v, list) or (not v and not allow_empty):
            raise Invalid(f"must be {what}, {got(v)}")
        return v

    return check


def number(minimum: float, maximum: float | None, what: str, open_min: bool = False, open_max: bool = False) -> Check:
    """A number in a range; a string that reads as a number is accepted too (YAML 1.1, which PyYAML follows,
    reads ``2e-5`` without a dot as a string)."""

    def check(v: Any, _: Path) -> float:
        value = v
        if isinstance(v, str):
            try:
                value = float(v)
            except ValueError:
                raise Invalid(f"must be {what}, {got(v)}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise Invalid(f"must be {what}, {got(v)}")
        low_bad = value <= minimum if open_min else value < minimum
        high_bad = maximum is not None and (value >= maximum if open_max else value > maximum)
        if low_bad or high_bad:
            raise Invalid(f"must be {what}, {got(v)}")
        return float(value)

    return check


def distinct_choices(*values: str) -> Check:
    def check(v: Any, _: Path) -> list:
        if not isinstance(v, list) or not v or any(x not in values for x in v) or len(set(v)) != len(v):
            raise Invalid(f"must be a non-empty list of distinct values among {', '.join(values)}, {got(v)}")
        return list(v)

    return check


def name_list(v: Any, _: Path) -> list:
    if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
        raise Invalid(f"must be a non-empty list of dataset names, {got(v)}")
    return list(v)


def ir_datasets_id_problem(dataset_id: str) -> str | None:
    """A message when ``dataset_id`` is not in ir_datasets' registry (needs no data, only the registry)."""
    try:
        import ir_datasets
    except ImportError:
        return "the ir_datasets package is not installed"
    try:
        ir_datasets.registry[dataset_id]
    except KeyError:
        close = difflib.get_close_matches(dataset_id, list(ir_datasets.registry), n=1, cutoff=0.6)
        return f"unknown ir_datasets id {dataset_id!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
    return None
