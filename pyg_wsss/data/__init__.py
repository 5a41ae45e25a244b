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

from typing import TYPE_CHECKING

from pyg_wsss._lazy import lazy_getattr

if TYPE_CHECKING:  # the static view of the lazy members below (mypy, pyright, IDEs)
    from .annotations import add_void_border as add_void_border
    from .annotations import connected_instances as connected_instances
    from .annotations import instance_boxes as instance_boxes
    from .annotations import mask_to_tags as mask_to_tags
    from .annotations import weak_labels_from_instances as weak_labels_from_instances
    from .coco import COCODataset as COCODataset
    from .folders import MaskFolderDataset as MaskFolderDataset
    from .folders import VOCXMLDataset as VOCXMLDataset
    from .folders import open_dataset as open_dataset
    from .io import DatasetError as DatasetError
    from .io import label_png_bytes as label_png_bytes
    from .io import read_image as read_image
    from .io import to_uint8_rgb as to_uint8_rgb
    from .io import write_label_png as write_label_png
    from .samples import REAL_SAMPLE_NAMES as REAL_SAMPLE_NAMES
    from .samples import real_samples as real_samples
    from .synthetic import SHAPES as SHAPES
    from .synthetic import SyntheticWSSS as SyntheticWSSS
    from .transforms import crop_sample as crop_sample
    from .transforms import hflip_sample as hflip_sample
    from .transforms import resize_sample as resize_sample
    from .transforms import sample_to_tensors as sample_to_tensors
    from .voc import VOC_CLASSES as VOC_CLASSES
    from .voc import VOCSegmentation as VOCSegmentation
    from .voc import parse_voc_xml as parse_voc_xml
    from .voc import read_label_png as read_label_png

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
