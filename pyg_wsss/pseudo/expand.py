r"""Superpixel expansion of sparse annotations (scribbles, points) — A2GNN section 7.1.

"Superpixel method [SLIC] is used to get the expanded labels :math:`M_S` from the initial
scribbles" (and :math:`M_P` from points). The rule implemented here (ScribbleSup-style):

* a SLIC region that contains seed pixels of exactly one class takes that class;
* a region with seeds of two or more classes is a conflict and stays 255 (its seed pixels
  keep their own labels when ``keep_seeds=True``, the default);
* regions without seeds stay 255.

The A2GNN merge of :math:`M_S` with the CAM seeds :math:`M'_I` ("known in :math:`M_S`:
take it, else :math:`M'_I`") is :func:`merge_seeds`.
"""
from __future__ import annotations

from typing import Sequence, Union

import numpy as np
from torch import Tensor

from .._checks import check_positive
from .crf import _as_uint8_rgb

__all__ = [
    "slic_segments",
    "expand_seeds_by_superpixels",
    "expand_scribbles",
    "points_to_seeds",
    "expand_points",
    "merge_seeds",
]

ArrayLike = Union[np.ndarray, Tensor]
IGNORE = 255


def _label_map(x: ArrayLike, name: str, shape: tuple[int, int] | None = None) -> np.ndarray:
    arr = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"'{name}' must be a [H, W] label map, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"'{name}' must be an integer label map, got {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise ValueError(f"'{name}' must hold values in 0..255 (255 = unlabelled)")
    if shape is not None and arr.shape != tuple(shape):
        raise ValueError(f"'{name}' has shape {arr.shape}, expected {tuple(shape)}")
    return arr.astype(np.int64)


def slic_segments(
    image: ArrayLike, n_segments: int = 400, compactness: float = 10.0, sigma: float = 1.0
) -> np.ndarray:
    """SLIC superpixels as an ``int64 [H, W]`` map of region ids ``0..R-1``
    (:func:`pyg_wsss.graphs.superpixel.slic_segments`, the segmentation of
    :func:`~pyg_wsss.graphs.superpixel_graph`, with a Gaussian pre-smoothing ``sigma``)."""
    from ..graphs.superpixel import slic_segments as _slic

    img = _as_uint8_rgb(image)
    check_positive(sigma, "sigma", strict=False)
    return _slic(img, n_segments=n_segments, compactness=compactness, sigma=float(sigma))


def expand_seeds_by_superpixels(
    image: ArrayLike | None,
    seeds: ArrayLike,
    n_segments: int = 400,
    compactness: float = 10.0,
    segments: ArrayLike | None = None,
    keep_seeds: bool = True,
    _name: str = "seeds",
) -> np.ndarray:
    """Expand a sparse seed map over the superpixels that contain its pixels.

    Args:
        image: ``uint8 [H, W, 3]`` (only used to compute SLIC; may be ``None`` when
            ``segments`` is given).
        seeds: ``[H, W]`` class ids on seed pixels, 255 elsewhere.
        n_segments, compactness: SLIC parameters (:func:`slic_segments`).
        segments: Precomputed ``[H, W]`` integer region map (e.g. the ``segments`` of
            :func:`pyg_wsss.graphs.superpixel_graph`); overrides SLIC.
        keep_seeds: Seed pixels always keep their label (also inside conflicting regions).

    Returns:
        ``uint8 [H, W]`` expanded labels (255 = unlabelled).
    """
    if segments is None:
        if image is None:
            raise ValueError("give 'image' (for SLIC) or 'segments'")
        img = _as_uint8_rgb(image)
        seg = slic_segments(img, n_segments, compactness)
    else:
        seg = (segments.detach().cpu().numpy() if isinstance(segments, Tensor)
               else np.asarray(segments))
        if seg.ndim != 2 or not np.issubdtype(seg.dtype, np.integer):
            raise ValueError(
                f"'segments' must be an integer [H, W] map, got {seg.dtype} {seg.shape}"
            )
        if seg.size and seg.min() < 0:
            raise ValueError("'segments' has negative region ids")
        if image is not None:
            img = _as_uint8_rgb(image)
            if img.shape[:2] != seg.shape:
                raise ValueError(f"'segments' {seg.shape} and 'image' {img.shape[:2]} differ")
        seg = np.unique(seg, return_inverse=True)[1].reshape(seg.shape)
    lab = _label_map(seeds, _name, seg.shape)
    n_regions = int(seg.max()) + 1 if seg.size else 0
    seeded = lab != IGNORE
    # counts[region, class] of seed pixels
    counts = np.bincount(
        seg[seeded] * 256 + lab[seeded], minlength=n_regions * 256
    ).reshape(n_regions, 256)
    n_classes_in = (counts > 0).sum(1)
    region_label = np.where(n_classes_in == 1, counts.argmax(1), IGNORE)
    out = region_label[seg]
    if keep_seeds:
        out[seeded] = lab[seeded]
    return out.astype(np.uint8)


def expand_scribbles(image: ArrayLike, scribbles: ArrayLike, **kwargs) -> np.ndarray:
    """:math:`M_S`: superpixel expansion of a scribble map (class id incl. 0 on scribble
    pixels, 255 elsewhere). Keyword arguments go to :func:`expand_seeds_by_superpixels`."""
    return expand_seeds_by_superpixels(image, scribbles, **kwargs, _name="scribbles")


def points_to_seeds(points: ArrayLike | Sequence, shape: tuple[int, int]) -> np.ndarray:
    """Rasterise ``[P, 3]`` ``(row, col, class)`` points into a ``uint8 [H, W]`` seed map.
    Two points of different classes on one pixel: the later one wins."""
    p = points.detach().cpu().numpy() if isinstance(points, Tensor) else np.asarray(points)
    if p.size == 0:
        p = p.reshape(0, 3)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"'points' must have shape [P, 3] (row, col, class), got {p.shape}")
    if p.size and not np.issubdtype(p.dtype, np.integer):
        raise TypeError(f"'points' must be integer, got {p.dtype}")
    if not isinstance(shape, (tuple, list)) or len(shape) != 2:
        raise TypeError(f"'shape' must be a pair (H, W), got {shape!r}")
    check_positive(shape[0], "shape", integer=True)
    check_positive(shape[1], "shape", integer=True)
    h, w = int(shape[0]), int(shape[1])
    out = np.full((h, w), IGNORE, dtype=np.uint8)
    for k, (r, c, cls) in enumerate(p.astype(np.int64).tolist()):
        if not (0 <= r < h and 0 <= c < w):
            raise ValueError(f"'points' row {k} {(r, c)} is outside the {h}x{w} image")
        if not 0 <= cls < 255:
            raise ValueError(f"'points' row {k} has class {cls}, outside 0..254")
        out[r, c] = cls
    return out


def expand_points(image: ArrayLike, points: ArrayLike | Sequence, **kwargs) -> np.ndarray:
    """:math:`M_P`: superpixel expansion of ``[P, 3]`` ``(row, col, class)`` points."""
    img = _as_uint8_rgb(image)
    return expand_seeds_by_superpixels(img, points_to_seeds(points, img.shape[:2]), **kwargs)


def merge_seeds(primary: ArrayLike, fallback: ArrayLike) -> np.ndarray:
    """``primary`` where it is known (not 255), else ``fallback`` (A2GNN 7.1: :math:`M_S`
    over :math:`M'_I`). Returns ``uint8 [H, W]``."""
    a = _label_map(primary, "primary")
    b = _label_map(fallback, "fallback")
    if a.shape != b.shape:
        raise ValueError(f"'primary' {a.shape} and 'fallback' {b.shape} must have the same shape")
    return np.where(a != IGNORE, a, b).astype(np.uint8)
