"""A reader for PASCAL VOC 2012 segmentation in the standard VOCdevkit layout, with the SBD
augmented masks (``SegmentationClassAug``) and the ``train_aug`` split.

Layout (``root`` may be the ``VOCdevkit`` folder or its ``VOC2012`` sub-folder)::

    VOC2012/JPEGImages/<id>.jpg
    VOC2012/SegmentationClass/<id>.png           palette PNGs, 255 = void
    VOC2012/SegmentationClassAug/<id>.png        SBD-converted masks (grey or palette)
    VOC2012/Annotations/<id>.xml                 boxes (1-based inclusive pixel coords)
    VOC2012/ImageSets/Segmentation/{train,val,trainval}.txt
    VOC2012/ImageSets/SegmentationAug/train_aug.txt   (or any list via ``list_file``)
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from torch.utils.data import Dataset

from .._checks import check_choice
from .annotations import connected_instances, mask_to_tags, weak_labels_from_instances
from .io import read_label_png as _read_label_png

#: The 21 PASCAL VOC class names, background first (VOC's own spellings).
VOC_CLASSES: tuple[str, ...] = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
_CLASS_INDEX = {name: i for i, name in enumerate(VOC_CLASSES)}

TAG_SOURCES = ("auto", "mask", "xml")
DERIVABLE = ("scribbles", "points", "instances")


def read_label_png(path: str | os.PathLike, num_classes: int | None = 21) -> np.ndarray:
    """Read a label PNG as ``uint8 [H, W]`` class indices.

    Palette (``"P"``) PNGs give their palette indices (VOC's ``SegmentationClass``); grey
    (``"L"``) PNGs their values (``SegmentationClassAug``); RGB PNGs are mapped back through
    the VOC colour palette (unknown colours raise). Values must be ``< num_classes`` or 255.
    The same as :func:`pyg_wsss.data.io.read_label_png` with VOC's 21 classes by default.
    """
    return _read_label_png(path, num_classes)


def read_voc_objects(path: str | os.PathLike) -> dict[str, Any]:
    """The raw content of a VOC annotation XML: ``{"size": (H, W) or None, "objects":
    [{"name", "difficult", "bndbox": (xmin, ymin, xmax, ymax) floats or None}]}`` (names
    stripped; coordinates as written, 1-based). :func:`parse_voc_xml` builds on it.

    Raises:
        FileNotFoundError: no such file. ValueError: malformed XML or a non-numeric
            coordinate (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation XML not found: {path}")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise ValueError(f"{path}: malformed XML ({err})") from err
    size = None
    node = root.find("size")
    height = node.findtext("height") if node is not None else None
    width = node.findtext("width") if node is not None else None
    if height and width:
        try:
            size = (int(float(height)), int(float(width)))
        except ValueError as err:
            raise ValueError(f"{path}: bad <size> ({err})") from err
    objects = []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        diff = (obj.findtext("difficult") or "0").strip() not in ("0", "")
        bb = obj.find("bndbox")
        coords = None
        if bb is not None:
            try:
                coords = tuple(float(bb.findtext(k))  # type: ignore[arg-type]  # None: TypeError
                               for k in ("xmin", "ymin", "xmax", "ymax"))
            except (TypeError, ValueError) as err:
                raise ValueError(f"{path}: bad <bndbox> for object {name!r}") from err
        objects.append({"name": name, "difficult": diff, "bndbox": coords})
    return {"size": size, "objects": objects}


def parse_voc_xml(
    path: str | os.PathLike,
    class_names: Sequence[str] = VOC_CLASSES,
    include_difficult: bool = True,
    image_size: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Parse a VOC annotation XML.

    VOC boxes are 1-based inclusive pixel coordinates; they are returned 0-based inclusive
    (``x - 1``), rounded (a few VOC files have fractional values) and clipped to the image
    (``image_size = (H, W)``, default the XML's ``<size>``).

    Returns:
        ``{"boxes": int64 [M, 4] (x1, y1, x2, y2), "box_labels": int64 [M], "difficult":
        bool [M], "size": (H, W) or None}``.
    """
    raw = read_voc_objects(path)
    index = {n: i for i, n in enumerate(class_names)}
    size = raw["size"]
    hw = image_size if image_size is not None else size
    boxes, labels, difficult = [], [], []
    for obj in raw["objects"]:
        name, diff = obj["name"], obj["difficult"]
        if name not in index:
            raise ValueError(f"{path}: unknown class name {name!r}")
        if diff and not include_difficult:
            continue
        if obj["bndbox"] is None:
            raise ValueError(f"{path}: object {name!r} has no <bndbox>")
        x1, y1, x2, y2 = (int(round(v)) - 1 for v in obj["bndbox"])
        if hw is not None:
            h, w = hw
            x1, x2 = min(max(x1, 0), w - 1), min(max(x2, 0), w - 1)
            y1, y2 = min(max(y1, 0), h - 1), min(max(y2, 0), h - 1)
        if x2 < x1 or y2 < y1:
            raise ValueError(f"{path}: empty box {(x1, y1, x2, y2)} for object {name!r}")
        boxes.append((x1, y1, x2, y2))
        labels.append(index[name])
        difficult.append(diff)
    return {
        "boxes": np.asarray(boxes, dtype=np.int64).reshape(-1, 4),
        "box_labels": np.asarray(labels, dtype=np.int64),
        "difficult": np.asarray(difficult, dtype=bool),
        "size": size,
    }


def _find_base(root: Path) -> Path:
    if not root.exists():
        raise FileNotFoundError(f"VOC root folder not found: {root}")
    for cand in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
        if (cand / "JPEGImages").is_dir():
            return cand
    raise FileNotFoundError(
        f"no JPEGImages folder under {root} (looked in {root}, {root / 'VOC2012'} and "
        f"{root / 'VOCdevkit' / 'VOC2012'})"
    )


def _read_list(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"image list not found: {path}")
    ids = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        # "2007_000032" or "/JPEGImages/2007_000032.jpg /SegmentationClassAug/2007_000032.png"
        first = line.split()[0]
        ids.append(os.path.splitext(os.path.basename(first))[0])
    return ids


class VOCSegmentation(Dataset):
    """PASCAL VOC 2012 segmentation (+ SBD ``train_aug``) as sample dicts.

    Each item has ``image`` (uint8 RGB), ``mask`` (uint8, 255 = void; absent when the image
    has no mask file), ``tags`` (float32 [20]), ``boxes``/``box_labels`` (from the XML, if
    ``Annotations/<id>.xml`` exists; 0-based inclusive), ``name`` (the image id), and, when
    asked for with ``derive``, weak labels simulated from the ground-truth mask.

    Args:
        root: ``VOCdevkit`` folder or its ``VOC2012`` sub-folder.
        split: ``"train"``, ``"val"``, ``"trainval"``, ``"test"`` (lists in
            ``ImageSets/Segmentation``) or ``"train_aug"`` (``ImageSets/SegmentationAug/``;
            any ``<name>.txt`` there or in ``ImageSets/Segmentation`` works).
        list_file: Explicit image-list file (overrides ``split``); lines are ids or
            DeepLab-style ``"/JPEGImages/<id>.jpg /SegmentationClassAug/<id>.png"``.
        mask_dir: Mask folder (default ``SegmentationClassAug`` for ``*_aug`` splits,
            else ``SegmentationClass``; relative paths are relative to the ``VOC2012`` folder).
        tags_from: ``"auto"`` (mask if present, else XML), ``"mask"`` or ``"xml"``. XML tags
            include every annotated object (also tiny and ``difficult`` ones).
        include_difficult: Keep XML boxes flagged ``difficult``.
        scribble_dir: Optional folder of scribble PNGs (``<id>.png``; class ids on scribble
            pixels, 255 elsewhere, e.g. a rasterised ScribbleSup) read into ``scribbles``.
        derive: Subset of ``("scribbles", "points", "instances")`` to simulate from the
            ground-truth mask (connected components as instances; see
            :func:`~pyg_wsss.data.annotations.weak_labels_from_instances`). Seeded by the
            image index, so they are deterministic.
        transform: Optional callable applied to each sample dict.
    """

    num_classes: int = len(VOC_CLASSES)

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        *,
        list_file: str | os.PathLike | None = None,
        mask_dir: str | os.PathLike | None = None,
        tags_from: str = "auto",
        include_difficult: bool = True,
        scribble_dir: str | os.PathLike | None = None,
        derive: Sequence[str] = (),
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        seed: int = 0,
    ) -> None:
        check_choice(tags_from, TAG_SOURCES, "tags_from")
        derive = tuple(derive)
        for d in derive:
            check_choice(d, DERIVABLE, "derive")
        if transform is not None and not callable(transform):
            raise TypeError("'transform' must be callable")
        self.root = Path(root)
        self.base = _find_base(self.root)
        self.split = split
        if list_file is not None:
            lf = Path(list_file)
            self.list_file = lf if lf.is_absolute() or lf.exists() else self.base / lf
        else:
            if not isinstance(split, str) or not split:
                raise ValueError(f"'split' must be a non-empty string, got {split!r}")
            cands = [
                self.base / "ImageSets" / "Segmentation" / f"{split}.txt",
                self.base / "ImageSets" / "SegmentationAug" / f"{split}.txt",
            ]
            if split.endswith("_aug"):
                cands.reverse()
            found = [c for c in cands if c.is_file()]
            if not found:
                raise FileNotFoundError(
                    f"no image list for split {split!r}: looked for "
                    + " and ".join(str(c) for c in cands)
                )
            self.list_file = found[0]
        self.ids = _read_list(self.list_file)
        if not self.ids:
            raise ValueError(f"split {split!r} is empty: no image ids in {self.list_file}")
        if mask_dir is None:
            aug = (list_file is None and split.endswith("_aug")) or "aug" in self.list_file.stem
            mask_dir = "SegmentationClassAug" if aug else "SegmentationClass"
        md = Path(mask_dir)
        self.mask_dir = md if md.is_absolute() else self.base / md
        self.scribble_dir = None
        if scribble_dir is not None:
            sd = Path(scribble_dir)
            self.scribble_dir = sd if sd.is_absolute() else self.base / sd
            if not self.scribble_dir.is_dir():
                raise FileNotFoundError(f"scribble folder not found: {self.scribble_dir}")
        self.image_dir = self.base / "JPEGImages"
        self.annotation_dir = self.base / "Annotations"
        self.tags_from = tags_from
        self.include_difficult = include_difficult
        self.derive = derive
        self.transform = transform
        self.seed = int(seed)
        self.class_names: list[str] = list(VOC_CLASSES)

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(root={str(self.root)!r}, split={self.split!r}, images={len(self)})"

    def _index(self, index: Any) -> int:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an int, got {type(index).__name__}")
        n = len(self.ids)
        i = int(index) + n if index < 0 else int(index)
        if not 0 <= i < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} images")
        return i

    def __getitem__(self, index: int) -> dict[str, Any]:
        from PIL import Image

        i = self._index(index)
        name = self.ids[i]
        img_path = self.image_dir / f"{name}.jpg"
        if not img_path.is_file():
            raise FileNotFoundError(f"image not found: {img_path}")
        with Image.open(img_path) as im:
            image = np.array(im.convert("RGB"), dtype=np.uint8)
        h, w = image.shape[:2]
        sample: dict[str, Any] = {"image": image, "name": name}
        mask_path = self.mask_dir / f"{name}.png"
        mask = None
        if mask_path.is_file():
            mask = read_label_png(mask_path, self.num_classes)
            if mask.shape != (h, w):
                raise ValueError(
                    f"{mask_path}: mask shape {mask.shape} differs from the image's {(h, w)}"
                )
            sample["mask"] = mask
        elif self.tags_from == "mask":
            raise FileNotFoundError(f"mask not found: {mask_path} (tags_from='mask')")
        xml_path = self.annotation_dir / f"{name}.xml"
        xml = None
        if xml_path.is_file():
            xml = parse_voc_xml(xml_path, VOC_CLASSES, self.include_difficult, (h, w))
            sample["boxes"] = xml["boxes"]
            sample["box_labels"] = xml["box_labels"]
        if self.tags_from == "xml" or (self.tags_from == "auto" and mask is None):
            if xml is None:
                raise FileNotFoundError(
                    f"no mask ({mask_path}) and no annotation XML ({xml_path}) for image tags"
                )
            tags = np.zeros(self.num_classes - 1, dtype=np.float32)
            tags[xml["box_labels"] - 1] = 1.0
            sample["tags"] = tags
        else:
            sample["tags"] = mask_to_tags(mask, self.num_classes)
        if self.scribble_dir is not None:
            sp = self.scribble_dir / f"{name}.png"
            if sp.is_file():
                scr = read_label_png(sp, self.num_classes)
                if scr.shape != (h, w):
                    raise ValueError(
                        f"{sp}: scribble shape {scr.shape} differs from the image's {(h, w)}"
                    )
                sample["scribbles"] = scr
        if self.derive and mask is not None:
            inst = connected_instances(mask)
            rng = np.random.default_rng([self.seed, i])
            weak = weak_labels_from_instances(mask, inst, rng)
            if "scribbles" in self.derive and "scribbles" not in sample:
                sample["scribbles"] = weak["scribbles"]
            if "points" in self.derive:
                sample["points"] = weak["points"]
            if "instances" in self.derive:
                sample["instances"] = inst
        return self.transform(sample) if self.transform is not None else sample

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]
