"""Readers for folders: images + label PNGs (+ scribble PNGs, point JSON, tag CSV/JSON), and
images + Pascal VOC XML boxes; :func:`open_dataset` picks one from command-line style
arguments.

Layouts (``<stem>`` is the image path relative to ``images_dir`` without its extension, so
sub-folders are mirrored)::

    images_dir/<stem>.{jpg,jpeg,png,bmp,tif,tiff}
    masks_dir/<stem>.png          label PNG (palette or grey): category ids, 255 = void
    scribbles_dir/<stem>.png      category ids on scribble pixels (0 = background), 255 = none
    points_file                   {"<stem>": [[row, col, class_id], ...], ...}
    tags_file                     CSV lines "<stem>,<id>;<id>" or JSON {"<stem>": [ids]}
    xml_dir/<stem>.xml            Pascal VOC annotation XML
"""
from __future__ import annotations

import csv
import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .annotations import connected_instances, instance_boxes, mask_to_tags
from .io import (
    IGNORE,
    IMAGE_EXTENSIONS,
    CategoryMap,
    DatasetError,
    LabelDataset,
    list_images,
    parse_class_names,
    read_label_png,
)
from .voc import VOC_CLASSES, parse_voc_xml, read_voc_objects

__all__ = ["MaskFolderDataset", "VOCXMLDataset", "open_dataset"]

_HEADER_NAMES = ("name", "stem", "image", "file_name", "filename", "file")


def _folder(path: Any, what: str) -> Path | None:
    if path is None:
        return None
    p = Path(path)
    if not p.is_dir():
        raise DatasetError(f"{what} folder not found: {p}")
    return p


def _key_index(keys: list[str], names: list[str], source: Path) -> dict[int, str]:
    """Map the keys of a points/tags file to dataset indices (a key is a stem, or a stem with
    an image extension). Unknown keys are reported by one warning."""
    where = {n: i for i, n in enumerate(names)}
    out: dict[int, str] = {}
    unknown = []
    for key in keys:
        k = key.replace("\\", "/").strip()
        i = where.get(k)
        if i is None and os.path.splitext(k)[1].lower() in IMAGE_EXTENSIONS:
            i = where.get(os.path.splitext(k)[0])
        if i is None:
            unknown.append(key)
            continue
        if i in out:
            raise DatasetError(f"{source}: entries {out[i]!r} and {key!r} are the same image")
        out[i] = key
    if unknown:
        warnings.warn(
            f"{source}: {len(unknown)} entr(y/ies) match no image and are ignored "
            f"(first: {unknown[0]!r})",
            stacklevel=4,
        )
    return out


def _int_id(v: Any, where: str) -> int:
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise DatasetError(f"{where}: expected an integer category id, got {v!r}")
    if not 0 <= v <= 254:
        raise DatasetError(f"{where}: category id {v} outside 0..254 (255 is unlabelled)")
    return v


def read_points_file(path: Path) -> dict[str, np.ndarray]:
    """``{stem: int64 [P, 3] (row, col, category id)}`` from a points JSON."""
    if not path.is_file():
        raise DatasetError(f"points file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise DatasetError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected an object {{stem: [[row, col, class_id], ...]}}, "
                           f"got {type(data).__name__}")
    out = {}
    for key, pts in data.items():
        where = f"{path}: points[{key!r}]"
        if not isinstance(pts, list):
            raise DatasetError(f"{where}: expected a list of [row, col, class_id], got "
                               f"{type(pts).__name__}")
        rows = []
        for k, p in enumerate(pts):
            if not isinstance(p, list) or len(p) != 3:
                raise DatasetError(f"{where}[{k}]: expected [row, col, class_id], got {p!r}")
            r, c = (_int_id_coord(v, f"{where}[{k}]") for v in p[:2])
            rows.append((r, c, _int_id(p[2], f"{where}[{k}][2]")))
        out[key] = np.asarray(rows, dtype=np.int64).reshape(-1, 3)
    return out


def _int_id_coord(v: Any, where: str) -> int:
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise DatasetError(f"{where}: expected integer pixel coordinates, got {v!r}")
    return v


def read_tags_file(path: Path) -> dict[str, list[int]]:
    """``{stem: [category ids]}`` from a tags CSV (``stem,id;id``, optional header row) or
    JSON (``{stem: [ids]}``); chosen by the ``.json`` extension."""
    if not path.is_file():
        raise DatasetError(f"tags file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DatasetError(f"{path}: not a UTF-8 text file ({err})") from err
    out: dict[str, list[int]] = {}
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as err:
            raise DatasetError(f"{path}: not valid JSON ({err})") from err
        if not isinstance(data, dict):
            raise DatasetError(f"{path}: expected an object {{stem: [ids]}}, got "
                               f"{type(data).__name__}")
        for key, ids in data.items():
            if not isinstance(ids, list):
                raise DatasetError(f"{path}: tags[{key!r}]: expected a list of ids, got {ids!r}")
            out[key] = [_int_id(v, f"{path}: tags[{key!r}][{k}]") for k, v in enumerate(ids)]
        return out
    for line_no, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if line_no == 1 and row[0].strip().lower() in _HEADER_NAMES:
            continue
        if len(row) > 2:
            raise DatasetError(f"{path}:{line_no}: expected 'stem,id;id;...', got {len(row)} "
                               "columns (separate ids with ';')")
        key = row[0].strip()
        cells = row[1].replace(";", " ").split() if len(row) == 2 else []
        ids = []
        for cell in cells:
            try:
                ids.append(_int_id(int(cell), f"{path}:{line_no}"))
            except ValueError as err:
                if isinstance(err, DatasetError):
                    raise
                raise DatasetError(f"{path}:{line_no}: {cell!r} is not an integer id") from None
        if key in out:
            raise DatasetError(f"{path}:{line_no}: duplicate entry for {key!r}")
        out[key] = ids
    return out


def _scan_ids(path: Path) -> np.ndarray:
    arr = read_label_png(path)
    present = np.bincount(arr.ravel(), minlength=256) > 0
    return np.nonzero(present)[0]


class MaskFolderDataset(LabelDataset):
    """An image folder with label PNGs and/or scribbles, points and tags.

    Label values *are* the category ids (0 background, 255 void); contiguous classes are the
    ids in ``class_names`` or, without it, the sorted set of ids found in the masks,
    scribbles, points and tags (every mask is read once at construction; classes are then
    named ``"class_<id>"``).

    Per image: ``image``; ``mask`` (when ``masks_dir``); ``boxes`` / ``box_labels`` (the
    8-connected components of each class of the mask; absent without masks); ``tags`` (from
    ``tags_file`` if given, else from the mask, else from the scribbles and points);
    ``scribbles`` / ``points`` (when given); ``name``, ``file_name``. Every given source must
    cover every image: a missing mask / scribble file or a missing points / tags entry, an
    unreadable file, a shape mismatch, a point outside the image or an id unknown to
    ``class_names`` raises :class:`ValueError` naming the image from ``__getitem__``.

    Args:
        images_dir: Image folder (searched recursively; hidden files skipped).
        masks_dir: Label-PNG folder (``<stem>.png``).
        scribbles_dir: Scribble-PNG folder (``<stem>.png``).
        points_file: Points JSON ``{stem: [[row, col, class_id], ...]}``.
        tags_file: Tags CSV (``stem,id;id``) or JSON (``{stem: [ids]}``).
        class_names: ``{id: name}``, a list indexed by id (``[0]`` = ``"background"``) or a
            JSON file of either (e.g. a ``classes.json`` written by ``pyg-wsss``).
        transform: Optional callable applied to each sample dict.
    """

    def __init__(
        self,
        images_dir: str | os.PathLike,
        masks_dir: str | os.PathLike | None = None,
        scribbles_dir: str | os.PathLike | None = None,
        points_file: str | os.PathLike | None = None,
        tags_file: str | os.PathLike | None = None,
        class_names: Any = None,
        *,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        if masks_dir is None and scribbles_dir is None and points_file is None and (
            tags_file is None
        ):
            raise DatasetError(
                "MaskFolderDataset needs at least one of masks_dir, scribbles_dir, "
                "points_file, tags_file"
            )
        self.images_dir = Path(images_dir)
        file_names = list_images(self.images_dir)
        self.masks_dir = _folder(masks_dir, "masks")
        self.scribbles_dir = _folder(scribbles_dir, "scribbles")
        self.points_file = Path(points_file) if points_file is not None else None
        self.tags_file = Path(tags_file) if tags_file is not None else None
        names = [os.path.splitext(f)[0] for f in file_names]
        points = read_points_file(self.points_file) if self.points_file else None
        tags = read_tags_file(self.tags_file) if self.tags_file else None
        self._points: dict[int, np.ndarray] | None = None
        self._tags: dict[int, list[int]] | None = None
        if points is not None and self.points_file is not None:
            keys = _key_index(list(points), names, self.points_file)
            self._points = {i: points[k] for i, k in keys.items()}
        if tags is not None and self.tags_file is not None:
            keys = _key_index(list(tags), names, self.tags_file)
            self._tags = {i: tags[k] for i, k in keys.items()}
        errors: dict[int, str] = {}
        if class_names is not None:
            categories = parse_class_names(class_names)
        else:
            categories = self._scan(names, errors)
        super().__init__(CategoryMap(categories), file_names, transform)
        self.errors.update(errors)
        self._check_entries()

    def _scan(self, names: list[str], errors: dict[int, str]) -> dict[int, str]:
        ids: set[int] = set()
        for source in (self._points or {}).values():
            ids.update(int(v) for v in source[:, 2])
        for tag_ids in (self._tags or {}).values():
            ids.update(tag_ids)
        for folder, what in ((self.masks_dir, "mask"), (self.scribbles_dir, "scribble")):
            if folder is None:
                continue
            for i, stem in enumerate(names):
                p = folder / f"{stem}.png"
                if not p.is_file():
                    continue  # reported by __getitem__
                try:
                    ids.update(int(v) for v in _scan_ids(p))
                except ValueError as err:
                    errors.setdefault(i, f"{what} PNG: {err}")
        ids.discard(0)
        ids.discard(IGNORE)
        if not ids:
            raise DatasetError(
                f"no foreground category id found in the annotations of {self.images_dir} "
                "(all background or void); pass class_names to declare the classes"
            )
        return {i: f"class_{i}" for i in sorted(ids)}

    def _check_entries(self) -> None:
        for i in range(len(self)):
            if i in self.errors:
                continue
            for source, what in ((self._tags, self.tags_file), (self._points, self.points_file)):
                if source is not None and i not in source:
                    self.errors[i] = f"no entry for this image in {what}"
                    break
            else:
                try:
                    if self._tags is not None:
                        self.categories.ids_to_contiguous(np.asarray(self._tags[i]),
                                                          f"tags in {self.tags_file}")
                    if self._points is not None:
                        self.categories.ids_to_contiguous(self._points[i][:, 2],
                                                          f"points in {self.points_file}")
                except ValueError as err:
                    self.errors[i] = str(err)

    def _read_labels(self, folder: Path, i: int, shape: tuple[int, int], what: str) -> np.ndarray:
        path = folder / f"{self.names[i]}.png"
        if not path.is_file():
            raise ValueError(f"{what} PNG not found: {path}")
        arr = read_label_png(path)
        if arr.shape != shape:
            raise ValueError(
                f"{what} {path} is {arr.shape[0]}x{arr.shape[1]} but the image is "
                f"{shape[0]}x{shape[1]}"
            )
        return self.categories.ids_to_contiguous(arr, f"{what} {path}")

    def _load(self, i: int) -> dict[str, Any]:
        image = self._read_image(i)
        h, w = image.shape[:2]
        sample: dict[str, Any] = {"image": image}
        mask = None
        if self.masks_dir is not None:
            mask = self._read_labels(self.masks_dir, i, (h, w), "mask")
            sample["mask"] = mask
            inst = connected_instances(mask)
            boxes = instance_boxes(inst)
            labels = np.zeros(len(boxes) + 1, dtype=np.int64)
            labels[inst.ravel()] = mask.ravel()
            sample["boxes"] = boxes
            sample["box_labels"] = labels[1:]
        if self.scribbles_dir is not None:
            sample["scribbles"] = self._read_labels(self.scribbles_dir, i, (h, w), "scribble")
        if self._points is not None:
            pts = self._points[i].copy()
            out = (pts[:, 0] < 0) | (pts[:, 0] >= h) | (pts[:, 1] < 0) | (pts[:, 1] >= w)
            if out.any():
                r, c, _ = pts[out][0].tolist()
                raise ValueError(
                    f"point (row {r}, col {c}) in {self.points_file} is outside the "
                    f"{h}x{w} image"
                )
            pts[:, 2] = self.categories.ids_to_contiguous(pts[:, 2], "points")
            sample["points"] = pts
        if self._tags is not None:
            sample["tags"] = self._tags_from_ids(self._tags[i], f"tags in {self.tags_file}")
        elif mask is not None:
            sample["tags"] = mask_to_tags(mask, self.num_classes)
        else:
            present = []
            if "scribbles" in sample:
                present.extend(np.unique(sample["scribbles"]).tolist())
            if "points" in sample:
                present.extend(sample["points"][:, 2].tolist())
            tags = np.zeros(self.num_classes - 1, dtype=np.float32)
            fg = np.asarray([k for k in present if 0 < k < IGNORE], dtype=np.int64)
            tags[fg - 1] = 1.0
            sample["tags"] = tags
        return sample


def _voc_categories(found: set[str], class_names: Any) -> dict[int, str]:
    if class_names is not None:
        cats = parse_class_names(class_names)
        if len(set(cats.values())) != len(cats):
            raise DatasetError("'class_names' has duplicate names")
        return cats
    found = {n for n in found if n}
    if not found:
        raise DatasetError("no object names found in the XML files; pass class_names")
    if found <= set(VOC_CLASSES[1:]):
        return {i: n for i, n in enumerate(VOC_CLASSES) if i > 0}
    return {i: n for i, n in enumerate(sorted(found), start=1)}


class VOCXMLDataset(LabelDataset):
    """An image folder with Pascal VOC annotation XMLs (``xml_dir/<stem>.xml``) as box samples.

    Boxes are read by :func:`~pyg_wsss.data.voc.parse_voc_xml` (VOC's 1-based inclusive
    coordinates -> 0-based inclusive, clipped to the image); ``difficult`` boxes are dropped
    unless ``use_difficult``. ``tags`` list every annotated class (difficult objects too).
    No ``mask``.

    Classes: ``class_names`` (``{id: name}``, a list indexed by id with ``[0]`` =
    ``"background"``, or a JSON file); without it, the object names of all XMLs (read at
    construction): if they are all VOC names, the 20 VOC classes with their VOC ids, else the
    sorted names as ids ``1..C``.

    A missing / malformed XML, an object name not in the classes, or an image whose size
    differs from the XML ``<size>`` raises :class:`ValueError` naming the image from
    ``__getitem__``.
    """

    def __init__(
        self,
        images_dir: str | os.PathLike,
        xml_dir: str | os.PathLike,
        class_names: Any = None,
        use_difficult: bool = False,
        *,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.images_dir = Path(images_dir)
        file_names = list_images(self.images_dir)
        xml = _folder(xml_dir, "XML")
        assert xml is not None
        self.xml_dir = xml
        self.use_difficult = bool(use_difficult)
        errors: dict[int, str] = {}
        found: set[str] = set()
        xml_sizes: list[tuple[int, int] | None] = []
        object_names: list[list[str]] = []
        for i, f in enumerate(file_names):
            path = self.xml_dir / f"{os.path.splitext(f)[0]}.xml"
            try:
                raw = read_voc_objects(path)
            except (OSError, ValueError) as err:
                errors[i] = str(err)
                xml_sizes.append(None)
                object_names.append([])
                continue
            xml_sizes.append(raw["size"])
            object_names.append([o["name"] for o in raw["objects"]])
            found.update(object_names[-1])
        super().__init__(CategoryMap(_voc_categories(found, class_names)), file_names, transform)
        self.errors.update(errors)
        known = set(self.categories.class_names[1:])
        for i, objs in enumerate(object_names):
            bad = sorted({n for n in objs if n not in known})
            if bad and i not in self.errors:
                self.errors[i] = (
                    f"object name(s) {bad} in {self.xml_dir / (self.names[i] + '.xml')} are "
                    f"not among the classes {sorted(known)}"
                )
        self._xml_sizes = xml_sizes

    @property
    def sizes(self) -> list[tuple[int, int] | None]:
        """``(H, W)`` per index from the XML ``<size>`` (else the image header; ``None`` if
        neither is readable)."""
        if getattr(self, "_sizes", None) is None:
            from .io import image_size

            self._sizes = [
                s if s is not None else image_size(p)
                for s, p in zip(self._xml_sizes, self.image_paths())
            ]
        return self._sizes

    def _load(self, i: int) -> dict[str, Any]:
        image = self._read_image(i, expected=self._xml_sizes[i])
        h, w = image.shape[:2]
        path = self.xml_dir / f"{self.names[i]}.xml"
        out = parse_voc_xml(path, self.categories.class_names, True, (h, w))
        keep = ~out["difficult"] if not self.use_difficult else np.ones(len(out["difficult"]),
                                                                        dtype=bool)
        tags = np.zeros(self.num_classes - 1, dtype=np.float32)
        tags[out["box_labels"] - 1] = 1.0
        return {
            "image": image,
            "boxes": out["boxes"][keep].reshape(-1, 4),
            "box_labels": out["box_labels"][keep],
            "tags": tags,
        }


def open_dataset(
    images: str | os.PathLike,
    coco: str | os.PathLike | None = None,
    voc_xml: str | os.PathLike | None = None,
    masks: str | os.PathLike | None = None,
    scribbles: str | os.PathLike | None = None,
    points: str | os.PathLike | None = None,
    tags: str | os.PathLike | None = None,
    class_names: Any = None,
) -> LabelDataset:
    """Open a dataset from command-line style arguments.

    Exactly one of ``coco`` (a COCO JSON -> :class:`~pyg_wsss.data.coco.COCODataset`),
    ``voc_xml`` (an XML folder -> :class:`VOCXMLDataset`) or ``masks`` (a label-PNG folder ->
    :class:`MaskFolderDataset`, with optional ``scribbles`` / ``points`` / ``tags``); or none
    of them and at least one of ``tags`` / ``scribbles`` / ``points`` (a
    :class:`MaskFolderDataset` without masks).

    Raises:
        DatasetError: a wrong combination of arguments or an unusable dataset.
    """
    chosen = [k for k, v in (("coco", coco), ("voc_xml", voc_xml), ("masks", masks)) if v]
    if len(chosen) > 1:
        raise DatasetError(f"give only one of coco, voc_xml, masks (got {', '.join(chosen)})")
    extras = [k for k, v in (("scribbles", scribbles), ("points", points), ("tags", tags)) if v]
    if chosen and chosen[0] != "masks" and extras:
        raise DatasetError(
            f"{', '.join(extras)} can be combined only with masks or used alone, not with "
            f"{chosen[0]}"
        )
    if not chosen and not extras:
        raise DatasetError("no annotations given: pass coco, voc_xml, masks, or tags / "
                           "scribbles / points")
    if coco:
        if class_names is not None:
            raise DatasetError("class_names cannot be used with coco (the JSON's "
                               "'categories' name the classes)")
        from .coco import COCODataset

        return COCODataset(images, coco)
    if voc_xml:
        return VOCXMLDataset(images, voc_xml, class_names=class_names)
    return MaskFolderDataset(images, masks_dir=masks, scribbles_dir=scribbles,
                             points_file=points, tags_file=tags, class_names=class_names)
