"""Graph builders: pixel graphs, edge weights, superpixel, image-group and class-relation graphs."""
from pyg_wsss._lazy import lazy_getattr

_MEMBERS = {
    "pixel_graph": "pixel",
    "batch_pixel_graphs": "pixel",
    "PixelGraph": "pixel",
    "half_plane_offsets": "pixel",
    "stencil_offsets": "pixel",
    "gaussian_edge_weight": "weights",
    "feature_affinity": "weights",
    "GAUSSIAN_PRESETS": "weights",
    "superpixel_graph": "superpixel",
    "SuperpixelGraph": "superpixel",
    "slic_segments": "superpixel",
    "region_adjacency": "superpixel",
    "image_group_graph": "group",
    "GreedyGroupSampler": "group",
    "random_walk_with_restart": "knowledge",
    "class_relation_graph": "knowledge",
    "mlgcn_reweight": "knowledge",
    "normalize_relation": "knowledge",
    "load_class_knowledge": "knowledge",
    "cooccurrence_matrix": "knowledge",
    "ClassKnowledge": "knowledge",
    "KNOWLEDGE_DATASETS": "knowledge",
}

__all__ = sorted(_MEMBERS)
__getattr__ = lazy_getattr(__name__, _MEMBERS)


def __dir__() -> list[str]:
    return __all__
