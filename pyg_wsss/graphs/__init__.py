"""Graph builders: pixel graphs, edge weights, superpixel, image-group and class-relation graphs."""
from typing import TYPE_CHECKING

from pyg_wsss._lazy import lazy_getattr

if TYPE_CHECKING:  # the static view of the lazy members below (mypy, pyright, IDEs)
    from .group import GreedyGroupSampler as GreedyGroupSampler
    from .group import image_group_graph as image_group_graph
    from .knowledge import KNOWLEDGE_DATASETS as KNOWLEDGE_DATASETS
    from .knowledge import ClassKnowledge as ClassKnowledge
    from .knowledge import class_relation_graph as class_relation_graph
    from .knowledge import cooccurrence_matrix as cooccurrence_matrix
    from .knowledge import load_class_knowledge as load_class_knowledge
    from .knowledge import mlgcn_reweight as mlgcn_reweight
    from .knowledge import normalize_relation as normalize_relation
    from .knowledge import random_walk_with_restart as random_walk_with_restart
    from .pixel import PixelGraph as PixelGraph
    from .pixel import batch_pixel_graphs as batch_pixel_graphs
    from .pixel import half_plane_offsets as half_plane_offsets
    from .pixel import pixel_graph as pixel_graph
    from .pixel import stencil_offsets as stencil_offsets
    from .superpixel import SuperpixelGraph as SuperpixelGraph
    from .superpixel import region_adjacency as region_adjacency
    from .superpixel import slic_segments as slic_segments
    from .superpixel import superpixel_graph as superpixel_graph
    from .weights import GAUSSIAN_PRESETS as GAUSSIAN_PRESETS
    from .weights import feature_affinity as feature_affinity
    from .weights import gaussian_edge_weight as gaussian_edge_weight

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
