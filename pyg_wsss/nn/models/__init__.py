"""Models of the four systems, backbones and classifiers."""
from typing import TYPE_CHECKING

from pyg_wsss._lazy import lazy_getattr

if TYPE_CHECKING:  # the static view of the lazy members below (mypy, pyright, IDEs)
    from .a2gnn import A2GNN as A2GNN
    from .affinity_net import AffinityNet as AffinityNet
    from .backbones import Backbone as Backbone
    from .backbones import EfficientNetLite0Backbone as EfficientNetLite0Backbone
    from .backbones import ResNetBackbone as ResNetBackbone
    from .backbones import SmallCNN as SmallCNN
    from .backbones import VGG16Dilated as VGG16Dilated
    from .backbones import build_backbone as build_backbone
    from .classifier import CAMClassifier as CAMClassifier
    from .classifier import ClassifierTrainConfig as ClassifierTrainConfig
    from .classifier import train_classifier as train_classifier
    from .group_gnn import GroupGNN as GroupGNN
    from .group_gnn import GroupGNNOutput as GroupGNNOutput
    from .group_gnn import OnlineCAMAccumulator as OnlineCAMAccumulator
    from .group_gnn import group_wsss_loss as group_wsss_loss
    from .group_gnn import normalize_cam_maps as normalize_cam_maps
    from .knowledge import GRMHead as GRMHead
    from .knowledge import KnowledgeClassifier as KnowledgeClassifier
    from .wsgcn import WSGCN as WSGCN
    from .wsgcn import BatchedWSGCN as BatchedWSGCN
    from .wsgcn import fit_wsgcn as fit_wsgcn
    from .wsgcn import random_walk_transition as random_walk_transition
    from .wsgcn import wsgcn_adjacency as wsgcn_adjacency
    from .wsgcn import wsgcn_graph as wsgcn_graph

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
    "ClassifierTrainConfig": "classifier",
    "train_classifier": "classifier",
}

__all__ = sorted(_MEMBERS)
__getattr__ = lazy_getattr(__name__, _MEMBERS)


def __dir__() -> list[str]:
    return __all__
