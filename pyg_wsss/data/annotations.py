"""Weak annotations derived from dense masks: image tags, boxes, scribbles, points, void bands.

All functions work on numpy arrays in the sample format of :mod:`pyg_wsss.data`:

* ``mask``: ``uint8 [H, W]`` class ids (``0`` = background, ``1..C`` foreground, ``255`` = void);
* ``instances``: integer ``[H, W]`` instance ids (``0`` = no instance, ``k`` = ``k``-th instance);
* ``boxes``: ``int64 [M, 4]`` ``(x1, y1, x2, y2)``, 0-based and *inclusive*;
* ``scribbles``: ``uint8 [H, W]`` class id on scribble pixels, ``255`` elsewhere;
* ``points``: ``int64 [P, 3]`` ``(row, col, class id)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy import ndimage

from .._checks import check_positive

IGNORE = 255


def _as_label_array(labels: Any, name: str, ndim: int | None = 2) -> np.ndarray:
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    if not isinstance(labels, np.ndarray):
        raise TypeError(
            f"'{name}' must be a numpy array or torch.Tensor, got {type(labels).__name__}"
        )
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"'{name}' must be an integer label map, got dtype {labels.dtype}")
    if ndim is not None and labels.ndim != ndim:
        raise ValueError(f"'{name}' must have {ndim} dimensions, got shape {labels.shape}")
    return labels


def _check_range(arr: np.ndarray, name: str, low: int, high: int, what: str = "labels") -> None:
    """Values of an integer map must lie in ``[low, high]`` (numpy side: always checked)."""
    if arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < low or hi > high:
            raise ValueError(
                f"'{name}' has {what} in [{lo}, {hi}], outside [{low}, {high}]"
            )


def _check_ignore(ignore_index: Any) -> None:
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
        raise TypeError(f"'ignore_index' must be an int, got {ignore_index!r}")
    if not 0 <= ignore_index <= 255:
        raise ValueError(f"'ignore_index' must be in [0, 255], got {ignore_index}")


def _check_num_classes(num_classes: Any) -> None:
    check_positive(num_classes, "num_classes", strict=True, integer=True)
    if num_classes < 2:
        raise ValueError(f"'num_classes' (including background) must be >= 2, got {num_classes}")
    if num_classes > 255:
        raise ValueError(f"'num_classes' must be <= 255 (255 is the void label), got {num_classes}")


def mask_to_tags(mask: Any, num_classes: int, ignore_index: int = IGNORE) -> np.ndarray:
    """Image-level tags of a class mask: a multi-hot ``float32 [C]`` vector over the
    ``C = num_classes - 1`` foreground classes (``tags[c - 1] = 1`` iff class ``c`` occurs).

    Args:
        mask: Integer label map (any shape; numpy or torch), ``0`` = background,
            ``ignore_index`` = void (neither counts as a tag).
        num_classes: Number of classes *including* background (21 for VOC).
        ignore_index: Void label.

    Raises:
        ValueError: labels outside ``[0, num_classes)`` that are not ``ignore_index``.
    """
    _check_num_classes(num_classes)
    arr = _as_label_array(mask, "mask", ndim=None)
    values = np.unique(arr)
    values = values[values != ignore_index]
    bad = values[(values < 0) | (values >= num_classes)]
    if bad.size:
        raise ValueError(
            f"'mask' has labels outside [0, {num_classes - 1}] (and not {ignore_index}): "
            f"{bad[:10].tolist()}"
        )
    tags = np.zeros(num_classes - 1, dtype=np.float32)
    fg = values[values > 0].astype(np.int64)
    tags[fg - 1] = 1.0
    return tags


def instance_boxes(instances: Any, num_instances: int | None = None) -> np.ndarray:
    """Tight ``(x1, y1, x2, y2)`` boxes (0-based inclusive) of instance ids ``1..M``.

    Args:
        instances: Integer ``[H, W]`` instance map (``0`` = none).
        num_instances: ``M``; default ``instances.max()``. Instances with no pixels get the
            box ``(-1, -1, -1, -1)``.

    Returns:
        ``int64 [M, 4]``.
    """
    inst = _as_label_array(instances, "instances")
    if inst.size and inst.min() < 0:
        raise ValueError("'instances' must be non-negative")
    if num_instances is not None:
        check_positive(num_instances, "num_instances", strict=False, integer=True)
        if inst.size and int(inst.max()) > num_instances:
            raise ValueError(
                f"'instances' has ids up to {int(inst.max())} but num_instances={num_instances}"
            )
    m = int(inst.max()) if num_instances is None and inst.size else int(num_instances or 0)
    boxes = np.full((m, 4), -1, dtype=np.int64)
    if m == 0:
        return boxes
    for k, sl in enumerate(ndimage.find_objects(inst.astype(np.int64), max_label=m)):
        if sl is not None:
            boxes[k] = (sl[1].start, sl[0].start, sl[1].stop - 1, sl[0].stop - 1)
    return boxes


def add_void_border(mask: Any, width: int = 5, ignore_index: int = IGNORE) -> np.ndarray:
    """Mark a band of ``width`` pixels along every class boundary as void (``ignore_index``),
    like the PASCAL VOC ground truth (which has a 5-pixel void band around objects).

    A pixel becomes void when a pixel of another (non-void) class lies within Chebyshev
    distance ``width // 2`` of it (so the band is about ``width`` pixels wide in total).
    ``width = 0`` returns a copy.
    """
    arr = _as_label_array(mask, "mask")
    _check_range(arr, "mask", 0, 255)
    arr = arr.astype(np.uint8, copy=True)
    check_positive(width, "width", strict=False, integer=True)
    _check_ignore(ignore_index)
    r = int(width) // 2 if width > 1 else int(width)
    if r == 0:
        return arr
    size = 2 * r + 1
    valid = arr != ignore_index
    lo = np.where(valid, arr, 255).astype(np.uint8)
    hi = np.where(valid, arr, 0).astype(np.uint8)
    mn = ndimage.minimum_filter(lo, size=size, mode="nearest")
    mx = ndimage.maximum_filter(hi, size=size, mode="nearest")
    border = valid & ((mn != arr) | (mx != arr))
    arr[border] = ignore_index
    return arr


def _as_region(region: Any, name: str = "region") -> np.ndarray:
    """A boolean ``[H, W]`` region (bool, or integers/floats holding only 0 and 1)."""
    arr = region.detach().cpu().numpy() if isinstance(region, torch.Tensor) else region
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"'{name}' must be a numpy array or torch.Tensor, got {type(arr).__name__}")
    if arr.ndim != 2:
        raise ValueError(f"'{name}' must be a binary [H, W] map, got shape {arr.shape}")
    if arr.dtype != bool:
        if not np.issubdtype(arr.dtype, np.number) or (arr.size and not np.isin(arr, (0, 1)).all()):
            raise ValueError(f"'{name}' must be binary (bool, or only 0 and 1)")
    return arr.astype(bool)


def _check_dist(dist: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    if dist is None:
        return None
    d = np.asarray(dist)
    if d.shape != shape:
        raise ValueError(f"'dist' has shape {d.shape}, the region is {shape}")
    if not np.issubdtype(d.dtype, np.number) or d.dtype == bool:
        raise TypeError(f"'dist' must be a numeric distance map, got {d.dtype}")
    if d.size and not np.isfinite(d).all():
        raise ValueError("'dist' contains NaN or infinite values")
    return d


def _skeleton(region: np.ndarray) -> np.ndarray:
    from skimage.morphology import skeletonize

    return skeletonize(region)


def _inner_distance(region: np.ndarray) -> np.ndarray:
    """Distance to the nearest pixel outside ``region`` (the image border counts as outside)."""
    return ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]


def object_scribble(
    region: np.ndarray, erosion: float = 0.25, width: int = 1, dist: np.ndarray | None = None
) -> np.ndarray:
    """A thin stroke inside a binary region: the skeleton (medial line) of the region eroded
    by ``erosion`` times its maximal inscribed radius, thickened to ``width`` pixels but kept
    inside the region. Falls back to the most interior pixel for tiny regions.
    """
    region = _as_region(region)
    if isinstance(erosion, bool) or not isinstance(erosion, (int, float, np.integer, np.floating)):
        raise TypeError(f"'erosion' must be a number, got {erosion!r}")
    if not 0 <= erosion <= 1:
        raise ValueError(f"'erosion' must be in [0, 1], got {erosion!r}")
    check_positive(width, "width", integer=True)
    dist = _check_dist(dist, region.shape)
    out = np.zeros_like(region)
    if not region.any():
        return out
    dist = _inner_distance(region) if dist is None else dist
    core = dist > max(1.0, erosion * float(dist.max()))
    if core.sum() < 3:
        core = region
    skel = _skeleton(core)
    if not skel.any():
        skel = dist == dist.max()
    if width > 1:
        skel = ndimage.binary_dilation(skel, iterations=int(width) // 2) & region
    return skel


def interior_point(
    region: np.ndarray,
    rng: np.random.Generator | None = None,
    depth: float = 0.5,
    dist: np.ndarray | None = None,
) -> tuple[int, int]:
    """``(row, col)`` of an interior pixel of a binary region: a random pixel (or, without
    ``rng``, the first pixel) whose distance to the region border is at least ``depth``
    times the maximal one."""
    region = _as_region(region)
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise TypeError(f"'rng' must be a numpy.random.Generator, got {type(rng).__name__}")
    if isinstance(depth, bool) or not isinstance(depth, (int, float, np.integer, np.floating)):
        raise TypeError(f"'depth' must be a number, got {depth!r}")
    if not 0 <= depth <= 1:
        raise ValueError(f"'depth' must be in [0, 1], got {depth!r}")
    dist = _check_dist(dist, region.shape)
    if not region.any():
        raise ValueError("interior_point: the region is empty")
    dist = _inner_distance(region) if dist is None else dist
    rows, cols = np.nonzero(dist >= depth * dist.max())
    k = int(rng.integers(len(rows))) if rng is not None else 0
    return int(rows[k]), int(cols[k])


def background_region(mask: np.ndarray, margin: int) -> np.ndarray:
    """Background pixels (label 0) at least ``margin`` pixels away from any other label
    (foreground or void) and from nothing else."""
    mask = _as_label_array(mask, "mask")
    if isinstance(margin, bool) or not isinstance(margin, (int, float, np.integer, np.floating)):
        raise TypeError(f"'margin' must be a number, got {margin!r}")
    if not np.isfinite(margin):
        raise ValueError(f"'margin' must be finite, got {margin!r}")
    bg = mask == 0
    if margin <= 0 or not bg.any():
        return bg
    dist = ndimage.distance_transform_edt(bg)
    return bg & (dist > margin)


def _check_weak_label_args(
    mask: Any,
    instances: Any,
    rng: Any,
    num_background_scribbles: Any,
    num_background_points: Any,
    scribble_width: Any,
    background_margin: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """The checked ``(mask, instances)`` label arrays of :func:`weak_labels_from_instances`
    after checking its other arguments."""
    mask = _as_label_array(mask, "mask")
    inst = _as_label_array(instances, "instances")
    if mask.shape != inst.shape:
        raise ValueError(f"'mask' {mask.shape} and 'instances' {inst.shape} differ in shape")
    _check_range(mask, "mask", 0, 255)
    if inst.size and inst.min() < 0:
        raise ValueError("'instances' must be non-negative")
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise TypeError(f"'rng' must be a numpy.random.Generator, got {type(rng).__name__}")
    check_positive(num_background_scribbles, "num_background_scribbles", strict=False,
                   integer=True)
    check_positive(num_background_points, "num_background_points", strict=False, integer=True)
    check_positive(scribble_width, "scribble_width", integer=True)
    if background_margin is not None:
        check_positive(background_margin, "background_margin", strict=False, integer=True)
    return mask, inst


def _background_weak_labels(
    bg: np.ndarray,
    rng: np.random.Generator,
    num_scribbles: int,
    num_points: int,
    scribbles: np.ndarray,
    points: list[tuple[int, int, int]],
) -> None:
    """Draw ``num_scribbles`` random straight background strokes (label 0, clipped to ``bg``)
    into ``scribbles`` and append ``num_points`` distinct background points of ``bg`` to
    ``points`` (in place; ``bg`` has at least one pixel)."""
    from skimage.draw import line

    h, w = bg.shape
    for _ in range(num_scribbles):
        rows, cols = np.nonzero(bg)
        j = int(rng.integers(len(rows)))
        length = rng.uniform(0.2, 0.5) * min(h, w)
        angle = rng.uniform(0, np.pi)
        dr, dc = np.sin(angle) * length / 2, np.cos(angle) * length / 2
        rr, cc = line(
            int(np.clip(rows[j] - dr, 0, h - 1)),
            int(np.clip(cols[j] - dc, 0, w - 1)),
            int(np.clip(rows[j] + dr, 0, h - 1)),
            int(np.clip(cols[j] + dc, 0, w - 1)),
        )
        on = bg[rr, cc]
        scribbles[rr[on], cc[on]] = 0
    rows, cols = np.nonzero(bg)
    for j in rng.choice(len(rows), size=min(num_points, len(rows)), replace=False):
        points.append((int(rows[j]), int(cols[j]), 0))


def weak_labels_from_instances(
    mask: Any,
    instances: Any,
    rng: np.random.Generator | None = None,
    num_background_scribbles: int = 2,
    num_background_points: int = 3,
    scribble_width: int = 1,
    background_margin: int | None = None,
) -> dict[str, np.ndarray]:
    """Boxes, box labels, scribbles and points for every instance of ``instances`` (ids
    ``1..M``; the class of an instance is the majority label of ``mask`` on it).

    Object scribbles are :func:`object_scribble` strokes, background scribbles are random
    straight segments clipped to background pixels at least ``background_margin`` pixels away
    from objects (default: 3% of the shorter side, at least 2), object points are
    :func:`interior_point` s and background points random pixels of that same region.

    Returns:
        ``{"boxes", "box_labels", "scribbles", "points"}`` in the sample format; boxes of
        instances without pixels are dropped.
    """
    mask, inst = _check_weak_label_args(mask, instances, rng, num_background_scribbles,
                                        num_background_points, scribble_width,
                                        background_margin)
    rng = rng if rng is not None else np.random.default_rng(0)
    h, w = mask.shape
    if background_margin is None:
        background_margin = max(2, int(round(0.03 * min(h, w))))
    m = int(inst.max()) if inst.size else 0
    boxes = instance_boxes(inst, m)
    scribbles = np.full((h, w), IGNORE, dtype=np.uint8)
    points: list[tuple[int, int, int]] = []
    keep, labels = [], []
    slices = ndimage.find_objects(inst.astype(np.int64), max_label=m) if m else []
    for k, sl in enumerate(slices):
        if sl is None:
            continue
        # work on a padded window around the instance
        r0, r1 = max(sl[0].start - 1, 0), min(sl[0].stop + 1, h)
        c0, c1 = max(sl[1].start - 1, 0), min(sl[1].stop + 1, w)
        region = inst[r0:r1, c0:c1] == k + 1
        values = mask[r0:r1, c0:c1][region]
        values = values[values != IGNORE]
        if values.size == 0:
            continue
        cls = int(np.bincount(values).argmax())
        keep.append(k)
        labels.append(cls)
        dist = _inner_distance(region)
        stroke = object_scribble(region, width=scribble_width, dist=dist)
        scribbles[r0:r1, c0:c1][stroke] = cls
        pr, pc = interior_point(region, rng, dist=dist)
        points.append((pr + r0, pc + c0, cls))
    bg = background_region(mask, background_margin)
    if bg.any():
        _background_weak_labels(bg, rng, num_background_scribbles, num_background_points,
                                scribbles, points)
    return {
        "boxes": boxes[keep].reshape(-1, 4),
        "box_labels": np.asarray(labels, dtype=np.int64),
        "scribbles": scribbles,
        "points": np.asarray(points, dtype=np.int64).reshape(-1, 3),
    }


def connected_instances(mask: Any, ignore_index: int = IGNORE) -> np.ndarray:
    """An instance map from a class mask: one instance per 8-connected component of each
    foreground class (``int32 [H, W]``, ``0`` = background/void). A stand-in when no instance
    annotation exists (touching objects of one class merge)."""
    from skimage.measure import label

    mask = _as_label_array(mask, "mask")
    _check_ignore(ignore_index)
    if mask.size and mask.min() < 0:
        raise ValueError(f"'mask' has negative labels (min {int(mask.min())})")
    out = np.zeros(mask.shape, dtype=np.int32)
    offset = 0
    for c in np.unique(mask):
        if c == 0 or c == ignore_index:
            continue
        lab = label(mask == c, connectivity=2)
        out[lab > 0] = lab[lab > 0] + offset
        offset += int(lab.max())
    return out
