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
from typing import Any, Sequence

from pyg_wsss._lazy import lazy_getattr

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
