"""Stage 2 shared by every system: a DeepLab-style network (ASPP over a backbone, optional GRM
head) trained on pseudo-labels, evaluation (mIoU) and dense-CRF post-processing."""

from typing import TYPE_CHECKING

from pyg_wsss._lazy import lazy_getattr

if TYPE_CHECKING:  # the static view of the lazy members below (mypy, pyright, IDEs)
    from .data import PseudoLabelDataset as PseudoLabelDataset
    from .data import image_to_tensor as image_to_tensor
    from .data import load_label_map as load_label_map
    from .data import save_label_maps as save_label_maps
    from .deeplab import ASPP as ASPP
    from .deeplab import DeepLab as DeepLab
    from .deeplab import build_deeplab as build_deeplab
    from .evaluate import evaluate_segmentation as evaluate_segmentation
    from .evaluate import predict_probabilities as predict_probabilities
    from .evaluate import predict_segmentation as predict_segmentation
    from .train import SegmentationTrainConfig as SegmentationTrainConfig
    from .train import poly_lr as poly_lr
    from .train import segmentation_loss as segmentation_loss
    from .train import train_segmentation as train_segmentation

_MEMBERS = {
    "ASPP": "deeplab",
    "DeepLab": "deeplab",
    "build_deeplab": "deeplab",
    "PseudoLabelDataset": "data",
    "save_label_maps": "data",
    "load_label_map": "data",
    "image_to_tensor": "data",
    "train_segmentation": "train",
    "SegmentationTrainConfig": "train",
    "poly_lr": "train",
    "segmentation_loss": "train",
    "predict_probabilities": "evaluate",
    "predict_segmentation": "evaluate",
    "evaluate_segmentation": "evaluate",
}

__all__ = sorted(_MEMBERS)
__getattr__ = lazy_getattr(__name__, _MEMBERS)


def __dir__() -> list[str]:
    return __all__
