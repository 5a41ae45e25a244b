"""Losses over edge lists and node sets (functional; ignore_index=255, never NaN on empty sets)."""
from typing import TYPE_CHECKING

from pyg_wsss._lazy import lazy_getattr

if TYPE_CHECKING:  # the static view of the lazy members below (mypy, pyright, IDEs)
    from .affinity import affinity_loss as affinity_loss
    from .affinity import affinity_regularized_loss as affinity_regularized_loss
    from .cross_entropy import partial_cross_entropy as partial_cross_entropy
    from .entropy import entropy_loss as entropy_loss
    from .focal import multilabel_focal_loss as multilabel_focal_loss
    from .gated_crf import gated_crf_kernel as gated_crf_kernel
    from .gated_crf import gated_crf_loss as gated_crf_loss
    from .laplacian import laplacian_loss as laplacian_loss
    from .laplacian import laplacian_matrix as laplacian_matrix
    from .laplacian import laplacian_quadratic_form as laplacian_quadratic_form
    from .multi_point import consistency_check as consistency_check
    from .multi_point import multi_point_loss as multi_point_loss
    from .multi_point import select_box_points as select_box_points

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
