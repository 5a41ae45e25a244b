"""pyg_wsss: graph neural networks for weakly supervised semantic segmentation, on PyG."""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = (
    "data",
    "graphs",
    "metrics",
    "nn",
    "ops",
    "pretrained",
    "pseudo",
    "segmentation",
    "viz",
)

__all__ = ["__version__", "checks", "set_checks", *_SUBMODULES]


# the validation level switch (NaN/Inf and range checks; see pyg_wsss._checks)
_CHECKS = ("checks", "set_checks")


def __getattr__(name: str) -> Any:  # lazy sub-module import (PEP 562)
    if name in _CHECKS:
        value = getattr(importlib.import_module(f"{__name__}._checks"), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
