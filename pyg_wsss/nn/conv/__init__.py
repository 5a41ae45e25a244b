"""Message-passing layers (one per module)."""
from typing import TYPE_CHECKING

from pyg_wsss._lazy import lazy_getattr

if TYPE_CHECKING:  # the static view of the lazy members below (mypy, pyright, IDEs)
    from .affinity_attention import AffinityAttentionConv as AffinityAttentionConv
    from .co_attention import CoAttentionConv as CoAttentionConv
    from .co_attention import co_attention as co_attention
    from .graph_reasoning import GraphReasoningMapping as GraphReasoningMapping

_MEMBERS = {
    "AffinityAttentionConv": "affinity_attention",
    "CoAttentionConv": "co_attention",
    "co_attention": "co_attention",
    "GraphReasoningMapping": "graph_reasoning",
}

__all__ = sorted(_MEMBERS)
__getattr__ = lazy_getattr(__name__, _MEMBERS)


def __dir__() -> list[str]:
    return __all__
