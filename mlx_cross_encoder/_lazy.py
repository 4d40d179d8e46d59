"""Public names of a package imported on first use (PEP 562), so that importing the package loads no MLX.

``__getattr__, __dir__ = lazy_exports(__name__, {"Name": "module", ...})`` in a package's ``__init__``: ``Name``
comes from ``<package>.module`` when first read, and is then kept in the package like any imported name (except a
name that is also its module's name: the package attribute stays that submodule, which imports rely on).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The package's module-level ``__getattr__`` and ``__dir__`` for ``exports`` (public name -> module)."""

    def __getattr__(name: str) -> object:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{exports[name]}", package), name)
        if exports[name] != name:  # a name that is also its module's (tribrid.promote): the attribute stays the
            setattr(sys.modules[package], name, value)  # submodule the import set, as ``import pkg.name`` needs
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
