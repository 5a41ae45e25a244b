"""Losses over edge lists and node sets (functional; ignore_index=255, never NaN on empty sets)."""
from pyg_wsss._lazy import lazy_getattr

_MEMBERS = {
    "partial_cross_entropy": "cross_entropy",
    "entropy_loss": "entropy",
    "laplacian_loss": "laplacian",
    "laplacian_matrix": "laplacian",
    "laplacian_quadratic_form": "laplacian",
    "gated_crf_loss": "gated_crf",
    "gated_crf_kernel": "gated_crf",
    "multi_point_loss": "multi_point",
    "consistency_check": "multi_point",
    "select_box_points": "multi_point",
    "affinity_loss": "affinity",
    "affinity_regularized_loss": "affinity",
    "multilabel_focal_loss": "focal",
}

__all__ = sorted(_MEMBERS)
__getattr__ = lazy_getattr(__name__, _MEMBERS)


def __dir__() -> list[str]:
    return __all__
