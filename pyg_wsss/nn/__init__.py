"""Neural-network building blocks: layers (``conv``), cells, losses (``functional``), models."""
import importlib
from typing import Any

from pyg_wsss._lazy import lazy_getattr

_MEMBERS = {
    "ConvGRUCell": "conv_gru",
    "GraphDropout": "graph_dropout",
    "graph_dropout_masks": "graph_dropout",
}
_SUBPACKAGES = ("conv", "functional", "models")
__all__ = sorted(_MEMBERS) + list(_SUBPACKAGES)
_lazy = lazy_getattr(__name__, _MEMBERS)


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    return _lazy(name)


def __dir__() -> list[str]:
    return __all__
