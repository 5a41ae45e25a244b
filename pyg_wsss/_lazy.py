"""Lazy attribute loading for packages whose members live in separate modules (PEP 562)."""
from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_getattr(package: str, mapping: dict[str, str]) -> Callable[[str], Any]:
    """Return a module ``__getattr__`` that imports ``package.<mapping[name]>`` on first use."""

    def __getattr__(name: str) -> Any:
        if name in mapping:
            module = importlib.import_module(f"{package}.{mapping[name]}")
            return getattr(module, name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
