"""Message-passing layers (one per module)."""
from pyg_wsss._lazy import lazy_getattr

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
