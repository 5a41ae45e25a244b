"""Stage 2 shared by every system: a DeepLab-style network (ASPP over a backbone, optional GRM
head) trained on pseudo-labels, evaluation (mIoU) and dense-CRF post-processing."""

from pyg_wsss._lazy import lazy_getattr

_MEMBERS = {
    "ASPP": "deeplab",
    "DeepLab": "deeplab",
    "build_deeplab": "deeplab",
    "PseudoLabelDataset": "data",
    "save_label_maps": "data",
    "load_label_map": "data",
    "image_to_tensor": "data",
    "train_segmentation": "train",
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
