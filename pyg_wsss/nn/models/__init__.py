"""Models of the four systems, backbones and classifiers."""
from pyg_wsss._lazy import lazy_getattr

_MEMBERS = {
    "WSGCN": "wsgcn",
    "BatchedWSGCN": "wsgcn",
    "fit_wsgcn": "wsgcn",
    "wsgcn_adjacency": "wsgcn",
    "wsgcn_graph": "wsgcn",
    "random_walk_transition": "wsgcn",
    "A2GNN": "a2gnn",
    "AffinityNet": "affinity_net",
    "GroupGNN": "group_gnn",
    "GroupGNNOutput": "group_gnn",
    "group_wsss_loss": "group_gnn",
    "OnlineCAMAccumulator": "group_gnn",
    "normalize_cam_maps": "group_gnn",
    "KnowledgeClassifier": "knowledge",
    "GRMHead": "knowledge",
    "Backbone": "backbones",
    "SmallCNN": "backbones",
    "EfficientNetLite0Backbone": "backbones",
    "VGG16Dilated": "backbones",
    "ResNetBackbone": "backbones",
    "build_backbone": "backbones",
    "CAMClassifier": "classifier",
    "train_classifier": "classifier",
}

__all__ = sorted(_MEMBERS)
__getattr__ = lazy_getattr(__name__, _MEMBERS)


def __dir__() -> list[str]:
    return __all__
