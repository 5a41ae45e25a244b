"""Neural-network building blocks: layers (``conv``), cells, losses (``functional``), models."""
import importlib
from typing import TYPE_CHECKING, Any

from pyg_wsss._lazy import lazy_getattr

if TYPE_CHECKING:  # the static view of the lazy members below (mypy, pyright, IDEs)
    from . import conv as conv
    from . import functional as functional
    from . import models as models
    from .conv_gru import ConvGRUCell as ConvGRUCell
    from .graph_dropout import GraphDropout as GraphDropout
    from .graph_dropout import graph_dropout_masks as graph_dropout_masks

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
