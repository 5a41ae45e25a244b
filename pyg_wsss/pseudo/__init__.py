"""Pseudo-label tools: CAMs, seeds, GrabCut box seeds, dense CRF, random walk, superpixel
expansion, and the dataset-scale driver :func:`generate`."""
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
    # random-walk propagation (random_walk.py)
    "transition_matrix": "random_walk",
    "random_walk": "random_walk",
    "random_walk_dense": "random_walk",
    "random_walk_propagate": "random_walk",
    "random_walk_from_image": "random_walk",
    # superpixel expansion of scribbles / points (expand.py)
    "slic_segments": "expand",
    "expand_seeds_by_superpixels": "expand",
    "expand_scribbles": "expand",
    "points_to_seeds": "expand",
    "expand_points": "expand",
    "merge_seeds": "expand",
    # dataset-scale driver (generate.py)
    "generate": "generate",
    "GenerateSummary": "generate",
    "save_label_png": "generate",
    "atomic_write": "generate",
}

__all__ = sorted(_MEMBERS)
__getattr__ = lazy_getattr(__name__, _MEMBERS)


def __dir__() -> list[str]:
    return __all__
