"""Lazy attribute loading for packages whose members live in separate modules (PEP 562).

A package lists its public names in a ``_MEMBERS`` map (name -> sub-module) and sets
``__getattr__ = lazy_getattr(__name__, _MEMBERS)``; a member is imported on first use.

A member always wins over a sub-module of the same name: Python's import system stores every
imported sub-module as an attribute of its package (``import pkg.sub`` sets ``pkg.sub``),
which would shadow a member ``sub`` and turn ``from pkg import sub`` into the module.
:func:`lazy_getattr` therefore gives the package a module class that ignores that one
assignment, so ``pkg.sub`` stays the member even after ``pkg.sub`` (the module) was imported;
the module itself is still in :data:`sys.modules` and ``from pkg.sub import x`` works.
New code should not name a member like a module at all (``pyg_wsss.pseudo`` keeps the
driver in ``driver.py`` and the walk in ``walk.py`` for that reason).
"""
from __future__ import annotations

import importlib
import sys
import types
from typing import Any, Callable

#: package name -> its ``_MEMBERS`` map, for :class:`_LazyPackage`.
_REGISTRY: dict[str, dict[str, str]] = {}


class _LazyPackage(types.ModuleType):
    """A package module that does not let a sub-module shadow a lazy member of its name."""

    def __setattr__(self, name: str, value: Any) -> None:
        members = _REGISTRY.get(self.__name__, {})
        if (
            name in members
            and isinstance(value, types.ModuleType)
            and value.__name__ == f"{self.__name__}.{name}"
        ):
            return  # the import system binding ``pkg.name`` to the sub-module: keep the member
        super().__setattr__(name, value)


def lazy_getattr(package: str, mapping: dict[str, str]) -> Callable[[str], Any]:
    """Return a module ``__getattr__`` that imports ``package.<mapping[name]>`` on first use.

    Also makes sure a sub-module never shadows a member of the same name (see the module
    docstring). ``package`` must be the calling package's ``__name__``.
    """
    if not isinstance(package, str) or not package:
        raise TypeError(f"'package' must be a non-empty module name, got {package!r}")
    if not isinstance(mapping, dict):
        raise TypeError(f"'mapping' must be a dict, got {type(mapping).__name__}")
    _REGISTRY[package] = mapping
    module = sys.modules.get(package)
    if module is not None and type(module) is types.ModuleType:
        module.__class__ = _LazyPackage
        for name in mapping:  # a sub-module imported before this call already shadows it
            value = module.__dict__.get(name)
            if isinstance(value, types.ModuleType) and value.__name__ == f"{package}.{name}":
                del module.__dict__[name]

    def __getattr__(name: str) -> Any:
        if name in mapping:
            module = importlib.import_module(f"{package}.{mapping[name]}")
            return getattr(module, name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
