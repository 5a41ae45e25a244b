"""A reader for COCO-style instance annotations (``instances_*.json``, the export format of
most labelling tools) with :mod:`pycocotools` (the optional extra ``coco``).

Layout::

    images_dir/<file_name>          file_name as in the JSON (may contain sub-folders)
    annotation_file                 {"images": [...], "annotations": [...], "categories": [...]}
"""
from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path, PurePosixPath
from typing import Any, Callable

import numpy as np

from .io import IGNORE, CategoryMap, DatasetError, LabelDataset

__all__ = ["COCODataset", "coco_box"]

#: Tolerance of the float -> pixel box conversion (absorbs float noise such as 10.000000001).
BOX_EPS = 1e-6


def _mask_utils() -> Any:
    try:
        from pycocotools import mask as mask_utils
    except ImportError as err:
        raise ImportError(
            "COCODataset needs the optional package 'pycocotools', which is not installed. "
            'Install it with: pip install "pyg-wsss[coco]"'
        ) from err
    return mask_utils


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_NUMBER_TYPES = frozenset((int, float))


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _all_numbers(values: list) -> bool:
    """Every entry a finite int or float (not bool); fast for long polygons."""
    return set(map(type, values)) <= _NUMBER_TYPES and all(map(math.isfinite, values))


def _get(obj: dict, key: str, where: str, required: bool = True) -> Any:
    if key not in obj:
        if required:
            raise DatasetError(f"{where}: missing field {key!r}")
        return None
    return obj[key]


def _int_field(obj: dict, key: str, where: str) -> int:
    """The required integer field ``obj[key]`` (an integral float is accepted)."""
    v = _get(obj, key, where, True)
    if isinstance(v, float) and _is_number(v) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise DatasetError(f"{where}.{key}: expected an integer, got {_short(v)}")
    return v


def _list_field(data: dict, key: str) -> list:
    if key not in data:
        raise DatasetError(f"{key}: missing (a COCO instances file has 'images', "
                           "'annotations' and 'categories')")
    v = data[key]
    if not isinstance(v, list):
        raise DatasetError(f"{key}: expected a list, got {type(v).__name__}")
    return v


def coco_box(bbox: Any, height: int, width: int) -> tuple[tuple[int, int, int, int], bool]:
    """A COCO ``[x, y, w, h]`` float box as an inclusive integer box, clipped to the image.

    ``x1 = floor(x)``, ``y1 = floor(y)``, ``x2 = ceil(x + w) - 1``, ``y2 = ceil(y + h) - 1``
    (with a ``1e-6`` tolerance against float noise), then clipped to ``[0, W-1] x [0, H-1]``.

    Returns:
        ``((x1, y1, x2, y2), clipped)``.

    Raises:
        ValueError: a negative width/height, an empty box, or a box entirely outside the
            image.
    """
    x, y, w, h = (float(v) for v in bbox)
    if w < 0 or h < 0:
        raise ValueError(f"inverted box {list(bbox)} (negative width or height)")
    x1, y1 = math.floor(x + BOX_EPS), math.floor(y + BOX_EPS)
    x2, y2 = math.ceil(x + w - BOX_EPS) - 1, math.ceil(y + h - BOX_EPS) - 1
    if x2 < x1 or y2 < y1:
        raise ValueError(f"empty box {list(bbox)} (covers no pixel)")
    if x1 > width - 1 or y1 > height - 1 or x2 < 0 or y2 < 0:
        raise ValueError(f"box {list(bbox)} is entirely outside the {height}x{width} image")
    c = (max(x1, 0), max(y1, 0), min(x2, width - 1), min(y2, height - 1))
    return c, c != (x1, y1, x2, y2)


def _check_segmentation(seg: Any, where: str) -> str | None:
    """Type-check a ``segmentation`` field (DatasetError); return a per-image problem or None.
    Returns ``"none"`` when there is no segmentation."""
    if seg is None or (isinstance(seg, list) and not seg):
        return "none"
    if isinstance(seg, list):
        for p, poly in enumerate(seg):
            if not isinstance(poly, list) or not _all_numbers(poly):
                raise DatasetError(
                    f"{where}.segmentation[{p}]: expected a polygon (a list of numbers "
                    f"x1, y1, x2, y2, ...), got {_short(poly)}"
                )
            if len(poly) < 6 or len(poly) % 2:
                return (
                    f"{where}.segmentation[{p}]: a polygon needs an even number (>= 6) of "
                    f"coordinates, got {len(poly)}"
                )
        return None
    if isinstance(seg, dict):
        size, counts = seg.get("size"), seg.get("counts")
        if (
            not isinstance(size, list)
            or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in size)
        ):
            raise DatasetError(f"{where}.segmentation.size: expected [height, width], got "
                               f"{_short(size)}")
        if isinstance(counts, list):
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts):
                raise DatasetError(f"{where}.segmentation.counts: expected non-negative "
                                   "integers (uncompressed RLE)")
        elif not isinstance(counts, str):
            raise DatasetError(f"{where}.segmentation.counts: expected a list of run lengths "
                               f"or an RLE string, got {_short(counts)}")
        return None
    raise DatasetError(
        f"{where}.segmentation: expected a list of polygons or an RLE object, got "
        f"{type(seg).__name__}"
    )


def _annotation_fields(ann: Any, where: str) -> tuple[int, int, Any, int, Any, str | None]:
    """``(image_id, category_id, bbox or None, iscrowd, segmentation, segmentation problem)``
    of one COCO annotation object, raising :class:`DatasetError` on malformed fields."""
    if not isinstance(ann, dict):
        raise DatasetError(f"{where}: expected an object, got {type(ann).__name__}")
    iid = _int_field(ann, "image_id", where)
    cid = _int_field(ann, "category_id", where)
    bbox = _get(ann, "bbox", where, required=False)
    crowd = _get(ann, "iscrowd", where, required=False)
    if crowd is None:
        crowd = 0
    if isinstance(crowd, bool) or not isinstance(crowd, int) or crowd not in (0, 1):
        raise DatasetError(f"{where}.iscrowd: expected 0 or 1, got {_short(crowd)}")
    if bbox is not None and (
        not isinstance(bbox, list) or len(bbox) != 4 or not all(map(_is_number, bbox))
    ):
        raise DatasetError(f"{where}.bbox: expected 4 numbers, got {_short(bbox)}")
    seg = ann.get("segmentation")
    return iid, cid, bbox, crowd, seg, _check_segmentation(seg, where)


class COCODataset(LabelDataset):
    """COCO instances JSON + an image folder as sample dicts.

    Per image: ``image`` (uint8 RGB), ``boxes`` / ``box_labels`` (from ``bbox`` of the
    non-crowd annotations; see :func:`coco_box`; boxes partly outside the image are clipped
    and reported by one warning at construction), ``tags`` (every category annotated on the
    image, crowd ones included), ``mask`` (from the polygons / RLE, larger objects painted
    first so a smaller object on top stays visible, ``iscrowd`` regions set to 255 = void;
    absent when a non-crowd annotation has no segmentation or ``load_masks=False``),
    ``name`` (``file_name`` without extension) and ``file_name``. Images without annotations
    are kept: all-background mask, boxes ``[0, 4]``, zero tags.

    Category ids are kept as they are: contiguous class ``k`` is the ``k``-th category sorted
    by id (``category_ids[k]`` its id, ``category_ids[0] = 0``), and
    :meth:`to_category_ids` maps a label map back. Ids must be in ``1..254``.

    Errors: a malformed file (not JSON, missing ``images`` / ``annotations`` /
    ``categories``, a field of the wrong type, duplicate ids) raises :class:`DatasetError`
    at construction, naming the JSON path of the bad field (``annotations[3].bbox``). A
    problem of one image (a category id missing from ``categories``, a box outside the image,
    a bad polygon, a real size that disagrees with ``width`` / ``height``, a missing or
    unreadable file) raises :class:`ValueError` naming the image from ``__getitem__`` of that
    index only (JSON-level ones are found at construction; see :attr:`errors`).
    Annotations of an image id not in ``images`` are skipped with a warning.

    Args:
        images_dir: Folder the ``file_name`` s are relative to.
        annotation_file: The COCO JSON.
        load_masks: Decode the segmentations into ``mask`` (needed for evaluation).
        transform: Optional callable applied to each sample dict.
    """

    def __init__(
        self,
        images_dir: str | os.PathLike,
        annotation_file: str | os.PathLike,
        *,
        load_masks: bool = True,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        _mask_utils()  # fail early when pycocotools is missing
        self.images_dir = Path(images_dir)
        if not self.images_dir.is_dir():
            raise DatasetError(f"images folder not found: {self.images_dir}")
        self.annotation_file = Path(annotation_file)
        self.load_masks = bool(load_masks)
        data = self._load_json(self.annotation_file)
        images = _list_field(data, "images")
        annotations = _list_field(data, "annotations")
        categories = _list_field(data, "categories")
        categories_by_id = self._parse_categories(categories)
        file_names, image_ids, sizes = self._parse_images(images)
        super().__init__(CategoryMap(categories_by_id), file_names, transform)
        self.image_ids: list[int] = image_ids
        self._hw: list[tuple[int, int]] = sizes  # (H, W) per index, from the JSON
        self._parse_annotations(annotations, {iid: i for i, iid in enumerate(image_ids)})

    # -- JSON parsing ------------------------------------------------------------------------
    @staticmethod
    def _load_json(path: Path) -> dict:
        if not path.is_file():
            raise DatasetError(f"annotation file not found: {path}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as err:
            raise DatasetError(f"{path}: not a UTF-8 text file ({err})") from err
        except json.JSONDecodeError as err:
            raise DatasetError(
                f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})"
            ) from err
        if not isinstance(data, dict):
            raise DatasetError(f"{path}: the top level must be an object, got "
                               f"{type(data).__name__}")
        return data

    @staticmethod
    def _parse_categories(categories: list) -> dict[int, str]:
        out: dict[int, str] = {}
        for k, cat in enumerate(categories):
            where = f"categories[{k}]"
            if not isinstance(cat, dict):
                raise DatasetError(f"{where}: expected an object, got {type(cat).__name__}")
            cid = _int_field(cat, "id", where)
            name = _get(cat, "name", where)
            if not isinstance(name, str) or not name:
                raise DatasetError(f"{where}.name: expected a non-empty string, got "
                                   f"{_short(name)}")
            if cid in out:
                raise DatasetError(f"{where}.id: duplicate category id {cid} "
                                   f"({out[cid]!r} and {name!r})")
            if cid <= 0:
                raise DatasetError(f"{where}.id: category {name!r} has id {cid}; ids must be "
                                   ">= 1 (0 is background)")
            out[cid] = name
        if not out:
            raise DatasetError("categories: the list is empty (no classes defined)")
        return out

    @staticmethod
    def _parse_images(images: list) -> tuple[list[str], list[int], list[tuple[int, int]]]:
        if not images:
            raise DatasetError("images: the list is empty")
        file_names, ids, sizes = [], [], []
        seen: dict[int, int] = {}
        for k, img in enumerate(images):
            where = f"images[{k}]"
            if not isinstance(img, dict):
                raise DatasetError(f"{where}: expected an object, got {type(img).__name__}")
            iid = _int_field(img, "id", where)
            if iid in seen:
                raise DatasetError(f"{where}.id: duplicate image id {iid} (also images"
                                   f"[{seen[iid]}])")
            seen[iid] = k
            fn = _get(img, "file_name", where)
            if not isinstance(fn, str) or not fn.strip():
                raise DatasetError(f"{where}.file_name: expected a non-empty string, got "
                                   f"{_short(fn)}")
            pp = PurePosixPath(fn.replace("\\", "/"))
            if pp.is_absolute() or ".." in pp.parts or Path(fn).is_absolute():
                raise DatasetError(f"{where}.file_name: {fn!r} must be a relative path inside "
                                   "the images folder")
            h = _int_field(img, "height", where)
            w = _int_field(img, "width", where)
            if h <= 0 or w <= 0:
                raise DatasetError(f"{where}: width and height must be positive, got {w}x{h}")
            file_names.append(pp.as_posix())
            ids.append(iid)
            sizes.append((h, w))
        return file_names, ids, sizes

    def _annotation_box(
        self, bbox: list | None, crowd: bool, where: str, i: int
    ) -> tuple[Any, str | None, str]:
        """``(box or None, problem or None, clip description or "")`` of one annotation's
        ``bbox`` on image ``i``: a missing or empty box is a problem unless the annotation is
        a crowd; the description of a non-crowd box clipped to the image is non-empty."""
        h, w = self._hw[i]
        if bbox is None:
            return None, (None if crowd else f"{where}: missing field 'bbox'"), ""
        try:
            box, was_clipped = coco_box(bbox, h, w)
        except ValueError as err:
            return None, (None if crowd else f"{where}.bbox: {err}"), ""
        clip = ""
        if was_clipped and not crowd:
            clip = f"{where}.bbox {bbox} of {self.file_names[i]!r} ({h}x{w})"
        return box, None, clip

    def _parse_annotations(self, annotations: list, index_of: dict[int, int]) -> None:
        n = len(self.file_names)
        #: per image: list of (annotation index, contiguous class, box or None, crowd, seg)
        self._anns: list[list[dict[str, Any]]] = [[] for _ in range(n)]
        problems: list[list[str]] = [[] for _ in range(n)]
        orphans, clipped, first_clip = 0, 0, ""
        for j, ann in enumerate(annotations):
            where = f"annotations[{j}]"
            iid, cid, bbox, crowd, seg, seg_problem = _annotation_fields(ann, where)
            i = index_of.get(iid)
            if i is None:
                orphans += 1
                continue
            h, w = self._hw[i]
            try:
                k = self.categories.contiguous(cid)
            except KeyError:
                problems[i].append(
                    f"{where} uses category id {cid}, which is not in 'categories'"
                )
                continue
            rec: dict[str, Any] = {"index": j, "label": k, "crowd": bool(crowd), "box": None}
            if seg_problem == "none":
                rec["seg"] = None
            elif seg_problem is not None:
                problems[i].append(seg_problem)
                continue
            else:
                rec["seg"] = seg
                if isinstance(seg, dict) and list(seg["size"]) != [h, w]:
                    problems[i].append(
                        f"{where}.segmentation.size {seg['size']} differs from the image's "
                        f"[height, width] = {[h, w]}"
                    )
                    continue
            box, problem, clip = self._annotation_box(bbox, bool(crowd), where, i)
            if problem is not None:
                problems[i].append(problem)
                continue
            rec["box"] = box
            if clip:
                clipped += 1
                first_clip = first_clip or clip
            self._anns[i].append(rec)
        for i, p in enumerate(problems):
            if p:
                self.errors[i] = "; ".join(p)
        if orphans:
            warnings.warn(
                f"{self.annotation_file}: {orphans} annotation(s) refer to image ids not in "
                "'images'; they are ignored",
                stacklevel=3,
            )
        if clipped:
            warnings.warn(
                f"{self.annotation_file}: {clipped} box(es) extend beyond their image and were "
                f"clipped to it (first: {first_clip})",
                stacklevel=3,
            )

    # -- items ---------------------------------------------------------------------------------
    @property
    def sizes(self) -> list[tuple[int, int] | None]:
        """``(H, W)`` per index, from the JSON's ``height`` / ``width``."""
        return list(self._hw)

    def _decode(self, seg: Any, h: int, w: int) -> np.ndarray:
        mu = _mask_utils()
        if isinstance(seg, list):
            rle = mu.merge(mu.frPyObjects(seg, h, w))
        elif isinstance(seg["counts"], list):
            rle = mu.frPyObjects(seg, h, w)
        else:
            rle = {"size": seg["size"], "counts": seg["counts"].encode("ascii")}
        return mu.decode(rle).astype(bool)

    def _load(self, i: int) -> dict[str, Any]:
        h, w = self._hw[i]
        image = self._read_image(i, expected=(h, w))
        anns = self._anns[i]
        objects = [a for a in anns if not a["crowd"]]
        boxes = np.asarray([a["box"] for a in objects], dtype=np.int64).reshape(-1, 4)
        labels = np.asarray([a["label"] for a in objects], dtype=np.int64)
        tags = np.zeros(self.num_classes - 1, dtype=np.float32)
        for a in anns:
            tags[a["label"] - 1] = 1.0
        sample: dict[str, Any] = {"image": image, "tags": tags, "boxes": boxes,
                                  "box_labels": labels}
        if self.load_masks and all(a["seg"] is not None for a in objects):
            sample["mask"] = self._mask(i, h, w)
        return sample

    def _mask(self, i: int, h: int, w: int) -> np.ndarray:
        mask = np.zeros((h, w), dtype=np.uint8)
        painted = []
        for a in self._anns[i]:
            if a["crowd"]:
                continue
            try:
                region = self._decode(a["seg"], h, w)
            except Exception as err:  # noqa: BLE001 - pycocotools raises several types
                raise ValueError(
                    f"annotations[{a['index']}].segmentation cannot be decoded ({err})"
                ) from err
            painted.append((int(region.sum()), a["index"], region, a["label"]))
        for _, _, region, label in sorted(painted, key=lambda t: (-t[0], t[1])):
            mask[region] = label
        for a in self._anns[i]:
            if not a["crowd"]:
                continue
            if a["seg"] is not None:
                region = self._decode(a["seg"], h, w)
                mask[region] = IGNORE
            elif a["box"] is not None:
                x1, y1, x2, y2 = a["box"]
                mask[y1 : y2 + 1, x1 : x2 + 1] = IGNORE
        return mask
