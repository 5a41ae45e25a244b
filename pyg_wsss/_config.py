"""One config style (issue 18): a function's settings are one dataclass passed whole
(``config``), or -- the former keyword form, still accepted -- its fields by keyword, which
override the config's.

:func:`resolve_config` is the shared "config or keyword overrides" step of every function
that takes such a dataclass (``RandomWalkCRFConfig``, ``CRFSeedConfig``, ``GroupTrainConfig``,
``KnowledgeTrainConfig``, ``Stage2Config``, ``KnowledgeGRMConfig``); :func:`replace_fields`
is its keyword part (also the configs' ``replace`` methods).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional, TypeVar

T = TypeVar("T")

__all__ = ["resolve_config", "replace_fields"]


def replace_fields(config: T, overrides: Mapping[str, Any], where: str) -> T:
    """``config`` with the fields in ``overrides`` replaced (``config`` itself when there is
    none); an unknown name is a ``TypeError`` that lists the fields.

    ``where`` names the call in the message, e.g. ``"train_group_wsss()"``.
    """
    names = sorted(f.name for f in dataclasses.fields(config))  # type: ignore[arg-type]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise TypeError(f"{where} got unexpected keyword argument(s) {unknown}; the settings "
                        f"are the {type(config).__name__} fields {names}")
    if not overrides:
        return config
    return dataclasses.replace(config, **overrides)  # type: ignore[type-var]


def resolve_config(config: Optional[T], cls: type[T], overrides: Mapping[str, Any], where: str,
                   *, default: Optional[T] = None, hint: Optional[str] = None) -> T:
    """The settings of a call: ``config`` (``None``: ``default``, else ``cls()``) with the
    keyword ``overrides`` applied (:func:`replace_fields`).

    Args:
        config: What the caller gave in the config slot.
        cls: The dataclass expected there.
        overrides: The call's other keywords (the former keyword form).
        where: The call's new form, e.g. ``"train_group_wsss(model, samples, config)"``:
            a ``config`` that is not a ``cls`` (an old positional setting) is a ``TypeError``
            naming it.
        default: The config when ``config`` is ``None`` (a preset; default ``cls()``).
        hint: How to build one in that message (default ``"<cls name>(...)"``).
    """
    if config is None:
        config = default if default is not None else cls()
    elif not isinstance(config, cls):
        fields = [f.name for f in dataclasses.fields(cls)][:2]  # type: ignore[arg-type]
        example = ", ".join(f"{name}=..." for name in fields)
        raise TypeError(
            f"{where}: the config argument is a {cls.__name__}, got "
            f"{type(config).__name__} {config!r}; give the settings by keyword ({example}, "
            f"...) or as {hint or cls.__name__ + '(...)'}")
    return replace_fields(config, overrides, where.split("(", 1)[0] + "()")
