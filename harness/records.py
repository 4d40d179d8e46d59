"""Typed records (pydantic v2) with the harness's error quality: every problem at once, one line each.

``Record`` is the base of every record read from a user's file (suites, results): unknown keys are refused
(``extra="forbid"``) with a did-you-mean hint, and a record may add cross-field rules (``cross_checks``) that are
checked on the raw input, so that they are reported together with the field errors of the same pass. Unknown
keys and cross-field rules apply to input read from a file (validation context with ``source``); records built
in Python are typed and field-checked only.

``Checked(check)`` turns a plain checker ``(value, base_dir) -> value`` (raising ``Invalid(message)``) into a
pydantic before-validator: the message is kept word for word (``must be a positive integer, got 0``), and
``base_dir`` comes from the validation context (``model_validate(data, context={"base_dir": ...})``), which is how
suite paths are resolved against the suite's folder.

``problems(exc)`` turns a ``ValidationError`` into ``[(field path, message)]`` lines (``datasets[0].top_k``).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, model_validator
from pydantic.functional_validators import BeforeValidator
from pydantic_core import InitErrorDetails, PydanticCustomError

ERROR_TYPE = "harness"  # the pydantic error type of every message written here


class Invalid(Exception):
    """A value that cannot be used; the message says why (``must be ..., got ...``)."""


def got(v: Any) -> str:
    """``got 3`` / ``got 'x'`` / ``got a list``: the offending value, short."""
    if isinstance(v, (int, float, str, bool)) or v is None:
        return f"got {v!r}"
    names = {list: "a list", dict: "a mapping", tuple: "a list"}
    return f"got {names.get(type(v), type(v).__name__)}"


def base_dir(info: ValidationInfo | None) -> Path:
    context = info.context if info is not None else None
    return Path((context or {}).get("base_dir") or ".")


def Checked(check: Callable[[Any, Path], Any]) -> BeforeValidator:  # noqa: N802 (reads as a type annotation)
    """A before-validator running ``check(value, base_dir)``; ``Invalid`` becomes one error with its message."""

    def validate(value: Any, info: ValidationInfo) -> Any:
        try:
            return check(value, base_dir(info))
        except Invalid as exc:
            raise PydanticCustomError(ERROR_TYPE, "{message}", {"message": str(exc)}) from None

    return BeforeValidator(validate)


def _detail(loc: tuple, message: str, value: Any) -> InitErrorDetails:
    return InitErrorDetails(
        type=PydanticCustomError(ERROR_TYPE, "{message}", {"message": message}), loc=loc, input=value
    )


def message_of(error: dict) -> str:
    """The harness wording of one pydantic error."""
    if error["type"] == ERROR_TYPE:
        return error["msg"]
    if error["type"] == "missing":
        return "missing (required)"
    if error["type"] == "value_error":  # a model's own rule: its message says it all
        return error["msg"].removeprefix("Value error, ")
    return f"{error['msg'][:1].lower()}{error['msg'][1:]}, {got(error.get('input'))}"


def _keep(error: dict) -> InitErrorDetails:
    """An error of an inner validation, in the harness wording."""
    return _detail(tuple(error["loc"]), message_of(error), error.get("input"))


class Record(BaseModel):
    """Base of the records read from files: unknown keys refused with a hint, cross-field rules, one pass."""

    model_config = ConfigDict(extra="forbid", validate_default=False, arbitrary_types_allowed=True)

    #: keys that are fields of the record but may not be given in a file (derived ones)
    derived_fields: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def input_keys(cls) -> list[str]:
        return [f.alias or name for name, f in cls.model_fields.items() if name not in cls.derived_fields]

    @classmethod
    def prepare(cls, data: dict, info: ValidationInfo) -> dict:
        """The raw mapping before its fields are validated (e.g. defaults inherited from a parent section)."""
        return data

    @classmethod
    def cross_checks(cls, data: dict, info: ValidationInfo) -> Iterable[tuple[tuple, str]]:
        """Rules between fields, on the raw mapping: ``(location under this record, message)`` per problem."""
        return ()

    @model_validator(mode="wrap")
    @classmethod
    def _validate_all(cls, data: Any, handler, info: ValidationInfo):
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            raise PydanticCustomError(ERROR_TYPE, "{message}", {"message": f"must be a mapping, {got(data)}"})
        from_file = bool(info.context and info.context.get("source"))
        if not from_file:  # built in Python: typed, not cross-checked (derived fields may be given)
            return handler(data)
        raw, data = data, cls.prepare(data, info)
        errors: list[InitErrorDetails] = []
        keys = cls.input_keys()
        for key in data:
            if key not in keys:
                close = difflib.get_close_matches(str(key), keys, n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else f"; valid keys: {', '.join(keys)}"
                errors.append(_detail((key,), f"unknown key{hint}", data[key]))
        known = {k: v for k, v in data.items() if k in keys}
        result = None
        try:
            result = handler(known)
        except ValidationError as exc:
            errors.extend(_keep(e) for e in exc.errors() if e["type"] != "extra_forbidden")
        errors.extend(_detail(loc, message, raw) for loc, message in cls.cross_checks(raw, info))
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return result


def problems(exc: ValidationError) -> list[tuple[str, str]]:
    """``[(field path, message)]``: ``("datasets[0].top_k", "must be a positive integer, got 0")``."""
    out = []
    for error in exc.errors():
        path = ""
        for part in error["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        out.append((path, message_of(error)))
    return out


def lines(exc: ValidationError, source: str) -> list[str]:
    """One line per problem: ``<source>: <field path>: <message>``."""
    return [f"{source}: {path}: {message}" if path else f"{source}: {message}" for path, message in problems(exc)]
