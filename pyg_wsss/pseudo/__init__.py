"""Pseudo-label tools: CAMs, seeds, GrabCut box seeds, dense CRF, random walk, superpixel
expansion, and the dataset-scale driver :func:`generate`."""
from pyg_wsss._lazy import lazy_getattr

_MEMBERS = {
    # CAM generation (cam.py)
    "multiscale_cam": "cam",
    "classifier_cams": "cam",
    # the rest: seeds.py, grabcut.py, crf.py, random_walk.py, expand.py, generate.py
}

__all__ = sorted(_MEMBERS)
__getattr__ = lazy_getattr(__name__, _MEMBERS)


def __dir__() -> list[str]:
    return __all__
