"""pyg_wsss: graph neural networks for weakly supervised semantic segmentation, on PyG."""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: The package version, its one source (setuptools reads it: pyproject ``tool.setuptools.dynamic``).
__version__ = "0.1.0"

if TYPE_CHECKING:  # the static view of the lazy sub-modules below (mypy, pyright, IDEs)
    from . import data as data
    from . import graphs as graphs
    from . import metrics as metrics
    from . import nn as nn
    from . import ops as ops
    from . import pretrained as pretrained
    from . import pseudo as pseudo
    from . import segmentation as segmentation
    from . import viz as viz
    from ._checks import checks as checks
    from ._checks import set_checks as set_checks

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
