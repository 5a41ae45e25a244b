"""Pseudo-label tools: CAMs, seeds, GrabCut box seeds, dense CRF, random walk, superpixel
expansion, and the dataset-scale driver :func:`generate`.

Every public name is a function or class (``pyg_wsss.pseudo.generate`` is the driver,
``pyg_wsss.pseudo.random_walk`` the walk); no member is named like the module it lives in
(the driver is in ``driver.py``, the walk in ``walk.py``). The former module paths
``pyg_wsss.pseudo.generate`` and ``pyg_wsss.pseudo.random_walk`` fail to import with a
message naming the new module.
"""
from __future__ import annotations

import sys
from importlib.abc import MetaPathFinder
from typing import TYPE_CHECKING, Any, Sequence

from pyg_wsss._lazy import lazy_getattr

if TYPE_CHECKING:  # the static view of the lazy members below (mypy, pyright, IDEs)
    from .cam import classifier_cams as classifier_cams
    from .cam import multiscale_cam as multiscale_cam
    from .crf import CRF_PRESETS as CRF_PRESETS
    from .crf import CRFParams as CRFParams
    from .crf import dense_crf as dense_crf
    from .driver import GenerateConfig as GenerateConfig
    from .driver import GenerateSummary as GenerateSummary
    from .driver import atomic_write as atomic_write
    from .driver import generate as generate
    from .driver import output_name as output_name
    from .driver import save_label_png as save_label_png
    from .driver import shard_indices as shard_indices
    from .expand import expand_points as expand_points
    from .expand import expand_scribbles as expand_scribbles
    from .expand import expand_seeds_by_superpixels as expand_seeds_by_superpixels
    from .expand import merge_seeds as merge_seeds
    from .expand import points_to_seeds as points_to_seeds
    from .expand import slic_segments as slic_segments
    from .grabcut import a2gnn_box_seeds as a2gnn_box_seeds
    from .grabcut import box_seed_labels as box_seed_labels
    from .grabcut import check_boxes as check_boxes
    from .grabcut import fuse_box_seeds as fuse_box_seeds
    from .grabcut import grabcut_box_masks as grabcut_box_masks
    from .grabcut import grabcut_seeds as grabcut_seeds
    from .seeds import CRFSeedConfig as CRFSeedConfig
    from .seeds import a2gnn_tag_seeds as a2gnn_tag_seeds
    from .seeds import cam_label_map as cam_label_map
    from .seeds import cam_labels as cam_labels
    from .seeds import cam_scores as cam_scores
    from .seeds import confident_regions as confident_regions
    from .seeds import crf_score_stack as crf_score_stack
    from .seeds import crf_seeds as crf_seeds
    from .seeds import crf_unsure as crf_unsure
    from .seeds import crf_with_alpha as crf_with_alpha
    from .seeds import la_ha_labels as la_ha_labels
    from .seeds import normalize_cams as normalize_cams
    from .seeds import scores_to_labels as scores_to_labels
    from .seeds import vote_filter as vote_filter
    from .seeds import wsgcn_partial_labels as wsgcn_partial_labels
    from .walk import random_walk as random_walk
    from .walk import random_walk_dense as random_walk_dense
    from .walk import random_walk_from_image as random_walk_from_image
    from .walk import random_walk_propagate as random_walk_propagate
    from .walk import transition_matrix as transition_matrix

_MEMBERS = {
    # CAM generation (cam.py)
    "multiscale_cam": "cam",
    "classifier_cams": "cam",
    # dense CRF (crf.py)
    "dense_crf": "crf",
    "CRF_PRESETS": "crf",
    "CRFParams": "crf",
    # CAM post-processing and seeds (seeds.py)
    "normalize_cams": "seeds",
    "cam_scores": "seeds",
    "scores_to_labels": "seeds",
    "cam_labels": "seeds",
    "crf_with_alpha": "seeds",
    "la_ha_labels": "seeds",
    "confident_regions": "seeds",
    "crf_score_stack": "seeds",
    "crf_unsure": "seeds",
    "vote_filter": "seeds",
    "wsgcn_partial_labels": "seeds",
    "CRFSeedConfig": "seeds",
    "crf_seeds": "seeds",
    "a2gnn_tag_seeds": "seeds",
    "cam_label_map": "seeds",
    # GrabCut box seeds and fusion (grabcut.py)
    "check_boxes": "grabcut",
    "grabcut_box_masks": "grabcut",
    "box_seed_labels": "grabcut",
    "grabcut_seeds": "grabcut",
    "fuse_box_seeds": "grabcut",
    "a2gnn_box_seeds": "grabcut",
    # random-walk propagation (walk.py)
    "transition_matrix": "walk",
    "random_walk": "walk",
    "random_walk_dense": "walk",
    "random_walk_propagate": "walk",
    "random_walk_from_image": "walk",
    # superpixel expansion of scribbles / points (expand.py)
    "slic_segments": "expand",
    "expand_seeds_by_superpixels": "expand",
    "expand_scribbles": "expand",
    "points_to_seeds": "expand",
    "expand_points": "expand",
    "merge_seeds": "expand",
    # dataset-scale driver (driver.py)
    "generate": "driver",
    "GenerateConfig": "driver",
    "GenerateSummary": "driver",
    "shard_indices": "driver",
    "output_name": "driver",
    "save_label_png": "driver",
    "atomic_write": "driver",
}

#: Former module paths -> their new module (the old names are now functions).
_MOVED = {
    f"{__name__}.generate": f"{__name__}.driver",
    f"{__name__}.random_walk": f"{__name__}.walk",
}


class _MovedModuleFinder(MetaPathFinder):
    """Refuses to import the former module paths in :data:`_MOVED`, naming the new module.

    Without it, ``import pyg_wsss.pseudo.generate`` would fail with a bare "No module named"
    and give no hint where the code went.
    """

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: Any = None) -> None:
        new = _MOVED.get(fullname)
        if new is not None:
            short = fullname.rsplit(".", 1)[1]
            raise ModuleNotFoundError(
                f"{fullname!r} is no longer a module: it moved to {new!r} "
                f"({fullname} is now the function {new}.{short}; "
                f"use 'from {__name__} import {short}' or 'import {new}')",
                name=fullname,
            )
        return None


if not any(type(f).__name__ == "_MovedModuleFinder" for f in sys.meta_path):
    sys.meta_path.insert(0, _MovedModuleFinder())

__all__ = sorted(_MEMBERS)
__getattr__ = lazy_getattr(__name__, _MEMBERS)


def __dir__() -> list[str]:
    return __all__
