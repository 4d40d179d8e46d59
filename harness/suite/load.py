"""Reading a suite file: YAML (duplicate keys refused) -> ``Suite`` record, every problem listed at once."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from ..records import lines
from .models import Suite


class SuiteError(ValueError):
    """A suite that cannot be used; ``errors`` holds one line per problem."""

    def __init__(self, errors: list[str] | str):
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("\n".join(self.errors))


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (PyYAML silently keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def suite_from_dict(data: dict, base_dir: Path, source: str = "<dict>") -> Suite:
    """Validate a parsed suite mapping (paths relative to ``base_dir``); raise SuiteError listing every problem."""
    try:
        suite = Suite.model_validate(data, context={"base_dir": Path(base_dir), "source": source})
    except ValidationError as exc:
        raise SuiteError(lines(exc, source)) from None
    suite.raw = data
    return suite


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite YAML file; raise SuiteError naming the file, field path and problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SuiteError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except OSError as exc:
        raise SuiteError(f"{path}: cannot read suite file ({exc.strerror or exc})") from exc
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SuiteError(f"{path}: invalid YAML: {where}{problem}") from exc
    if data is None:
        raise SuiteError(f"{path}: the suite file is empty")
    suite = suite_from_dict(data, path.parent, source=str(path))
    suite.path = path
    return suite
