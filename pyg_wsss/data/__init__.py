"""Datasets and sample helpers: the synthetic WSSS dataset, the PASCAL VOC 2012 (+SBD) reader,
real photos shipped in packages, and weak labels derived from masks.

Every dataset item is a *sample dict*: ``image`` uint8 ``[H, W, 3]`` RGB; ``mask`` uint8
``[H, W]`` (0 = background, 1..C classes, 255 = void); ``tags`` float32 ``[C]`` multi-hot over
the C foreground classes (``tags[c - 1]`` <-> class id ``c``); ``boxes`` int64 ``[M, 4]``
``(x1, y1, x2, y2)`` 0-based inclusive; ``box_labels`` int64 ``[M]`` (1..C); ``scribbles``
uint8 ``[H, W]`` (class id incl. 0 on scribble pixels, 255 elsewhere); ``points`` int64
``[P, 3]`` ``(row, col, class id)``; ``name`` str. Keys that a source cannot provide are absent.
Datasets expose ``num_classes`` (C + 1, incl. background) and ``class_names``.

Readers of your own data (:class:`COCODataset`, :class:`MaskFolderDataset`,
:class:`VOCXMLDataset`, picked by :func:`open_dataset`) also give ``file_name`` per sample and
expose ``category_ids`` (``[0, id_1, ..., id_C]``: samples use contiguous ids ``0..C``,
``category_ids[k]`` is the dataset id of class ``k``), ``to_category_ids(labels)``, ``names``
(output stems, may contain ``/``) and ``sizes``; see :mod:`pyg_wsss.data.io`.
"""

from pyg_wsss._lazy import lazy_getattr

_MEMBERS = {
    "SyntheticWSSS": "synthetic",
    "SHAPES": "synthetic",
    "VOCSegmentation": "voc",
    "VOC_CLASSES": "voc",
    "read_label_png": "voc",
    "parse_voc_xml": "voc",
    "real_samples": "samples",
    "REAL_SAMPLE_NAMES": "samples",
    "mask_to_tags": "annotations",
    "instance_boxes": "annotations",
    "add_void_border": "annotations",
    "connected_instances": "annotations",
    "weak_labels_from_instances": "annotations",
    "COCODataset": "coco",
    "MaskFolderDataset": "folders",
    "VOCXMLDataset": "folders",
    "open_dataset": "folders",
    "DatasetError": "io",
    "read_image": "io",
    "to_uint8_rgb": "io",
    "write_label_png": "io",
    "label_png_bytes": "io",
    "resize_sample": "transforms",
    "hflip_sample": "transforms",
    "crop_sample": "transforms",
    "sample_to_tensors": "transforms",
}

__all__ = sorted(_MEMBERS)
__getattr__ = lazy_getattr(__name__, _MEMBERS)


def __dir__() -> list[str]:
    return __all__
