r"""Box seeds with GrabCut (OpenCV) and their fusion with CAM seeds (A2GNN, A 2-5).

Notation of the paper (section 3 and 4.2): :math:`M_I` the image-level (CAM) seed map,
:math:`M'_I` its confident top-40 % part, :math:`M_{B_k}` GrabCut inside box :math:`B_k`
(Eq. 2), :math:`M_B` the box seed map (Eq. 3), :math:`M_F` the fused map (Eq. 4) and
:math:`M_g` the confident seeds (Eq. 5). The authors' repository does not contain this step
(NOTES.md 3.5), so it is written from the equations.

Boxes are ``int64 [M, 4]`` ``(x1, y1, x2, y2)``, 0-based **inclusive** pixel coordinates;
``box_labels`` are class ids ``1..C``.

**Overlapping boxes** (not specified by the paper): a pixel covered by several boxes takes the
label of the **smallest** box (by area; ties: the later box) among those whose GrabCut
foreground contains it; if none does, it is 255. This is the usual rule (SDI, BoxSup):
a small box inside a large one is usually an object in front of the large one.
"""
from __future__ import annotations

from typing import Sequence, Union, cast, overload

import numpy as np
from torch import Tensor

from .._checks import check_positive
from .crf import _as_uint8_rgb

__all__ = [
    "check_boxes",
    "grabcut_box_masks",
    "box_seed_labels",
    "grabcut_seeds",
    "fuse_box_seeds",
    "a2gnn_box_seeds",
]

ArrayLike = Union[np.ndarray, Tensor]
IGNORE = 255


def _np(x: ArrayLike | Sequence, name: str) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, (np.ndarray, list, tuple)):
        return np.asarray(x)
    raise TypeError(f"'{name}' must be a numpy array, tensor or sequence, got {type(x).__name__}")


def _parse_boxes(boxes: ArrayLike | Sequence) -> np.ndarray:
    """``[M, 4]`` int64 boxes (shape and dtype only; the image range is checked later)."""
    b = _np(boxes, "boxes")
    if b.size == 0:
        b = b.reshape(0, 4)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"'boxes' must have shape [M, 4] (x1, y1, x2, y2), got {b.shape}")
    if b.dtype == bool:
        raise TypeError("'boxes' must hold integer pixel coordinates, got bool")
    if not np.issubdtype(b.dtype, np.integer):
        whole = np.issubdtype(b.dtype, np.floating) and np.isfinite(b).all()
        if whole and (b == np.round(b)).all():
            b = b.astype(np.int64)
        else:
            raise TypeError(f"'boxes' must hold integer pixel coordinates, got {b.dtype}")
    return b.astype(np.int64)


def _check_shape(shape: object, name: str = "shape") -> tuple[int, int]:
    if (
        not isinstance(shape, (tuple, list))
        or len(shape) != 2
        or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) for s in shape)
    ):
        raise TypeError(f"'{name}' must be an (H, W) pair of ints, got {shape!r}")
    h, w = int(shape[0]), int(shape[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"'{name}' must be positive (H, W), got {shape!r}")
    return h, w


def _check_masks(masks: object, num_boxes: int, shape: tuple[int, int] | None) -> np.ndarray:
    """Boolean ``[M, H, W]`` box masks (checked before the boxes' image range, so a wrong
    ``masks`` shape is reported as such)."""
    m = _np(masks, "masks")  # type: ignore[arg-type]  # _np checks the type
    if m.size == 0 and shape is not None and num_boxes == 0:
        return np.zeros((0,) + tuple(shape), dtype=bool)
    if m.ndim != 3:
        want = f"[{num_boxes}, H, W]" if shape is None else str((num_boxes,) + tuple(shape))
        raise ValueError(f"'masks' must have shape {want} (one mask per box), got {m.shape}")
    if shape is not None and m.shape != (num_boxes,) + tuple(shape):
        raise ValueError(
            f"'masks' must have shape {(num_boxes,) + tuple(shape)} (one [H, W] mask per box), "
            f"got {m.shape}"
        )
    if m.shape[0] != num_boxes:
        raise ValueError(f"'masks' has {m.shape[0]} masks for {num_boxes} boxes")
    if m.dtype != bool:
        if not (np.issubdtype(m.dtype, np.integer) or np.issubdtype(m.dtype, np.floating)):
            raise TypeError(f"'masks' must be boolean, got {m.dtype}")
        if m.size and not np.isin(m, (0, 1)).all():
            raise ValueError("'masks' must be boolean (or hold only 0 and 1)")
        m = m.astype(bool)
    return m


@overload
def check_boxes(
    boxes: ArrayLike | Sequence,
    shape: tuple[int, int],
    box_labels: None = None,
    clip: bool = False,
    num_classes: int | None = None,
) -> tuple[np.ndarray, None]: ...


@overload
def check_boxes(
    boxes: ArrayLike | Sequence,
    shape: tuple[int, int],
    box_labels: ArrayLike | Sequence,
    clip: bool = False,
    num_classes: int | None = None,
) -> tuple[np.ndarray, np.ndarray]: ...


def check_boxes(
    boxes: ArrayLike | Sequence,
    shape: tuple[int, int],
    box_labels: ArrayLike | Sequence | None = None,
    clip: bool = False,
    num_classes: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate ``[M, 4]`` inclusive ``(x1, y1, x2, y2)`` boxes inside an ``(H, W)`` image.

    Empty boxes (``x2 < x1`` or ``y2 < y1``) and boxes reaching outside the image raise
    :class:`ValueError` (with ``clip=True`` out-of-image boxes are clipped; a box left with
    no pixel is still an error). ``M = 0`` is valid. ``box_labels`` must be class ids in
    ``1..254``, or in ``1..num_classes`` when ``num_classes`` (the number of foreground
    classes, e.g. CAM channels) is given.

    Returns:
        ``(boxes int64 [M, 4], box_labels int64 [M] or None)``.
    """
    b = _parse_boxes(boxes)
    h, w = _check_shape(shape)
    if num_classes is not None:
        check_positive(num_classes, "num_classes", integer=True)
    if clip:
        for k, (x1, y1, x2, y2) in enumerate(b.tolist()):
            if x2 >= x1 and y2 >= y1 and (x1 >= w or y1 >= h or x2 < 0 or y2 < 0):
                raise ValueError(
                    f"box {k} {(x1, y1, x2, y2)} is empty after clipping (it lies entirely "
                    f"outside the {w}x{h} image)"
                )
        b = b.copy()
        b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, w - 1) if len(b) else b[:, [0, 2]]
        b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, h - 1) if len(b) else b[:, [1, 3]]
    for k, (x1, y1, x2, y2) in enumerate(b.tolist()):
        if x2 < x1 or y2 < y1:
            raise ValueError(
                f"'boxes': box {k} {(x1, y1, x2, y2)} is empty (need x1 <= x2, y1 <= y2)"
            )
        if x1 < 0 or y1 < 0 or x2 >= w or y2 >= h:
            raise ValueError(
                f"'boxes': box {k} {(x1, y1, x2, y2)} reaches outside the {w}x{h} image "
                "(inclusive 0-based coordinates; pass clip=True to clip)"
            )
    labels = None
    if box_labels is not None:
        labels = _np(box_labels, "box_labels")
        if labels.ndim > 1:
            raise ValueError(f"'box_labels' must be a vector [M], got shape {labels.shape}")
        labels = labels.reshape(-1)
        if labels.shape[0] != b.shape[0]:
            raise ValueError(f"'box_labels' has {labels.shape[0]} entries for {b.shape[0]} boxes")
        if labels.size and (labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer)):
            raise TypeError(f"'box_labels' must be integer class ids, got {labels.dtype}")
        labels = labels.astype(np.int64)
        top = 254 if num_classes is None else min(int(num_classes), 254)
        if labels.size and (labels.min() < 1 or labels.max() > top):
            what = "" if num_classes is None else f" (the {num_classes} CAM classes)"
            raise ValueError(
                f"'box_labels' must be foreground class ids in 1..{top}{what}, "
                f"got {labels.tolist()}"
            )
    return b, labels


def grabcut_box_masks(
    image: ArrayLike,
    boxes: ArrayLike | Sequence,
    n_iter: int = 5,
    min_size: int = 8,
    margin: int | None = None,
    clip: bool = False,
    seed: int | None = 0,
) -> np.ndarray:
    r"""GrabCut foreground of each box: :math:`\mathrm{Grab}(i) \ne c_0` for :math:`i \in B_k`.

    ``cv2.grabCut`` with rectangle initialisation (outside = definite background, inside =
    probable foreground), ``n_iter`` iterations. Fallbacks (documented, not in the paper):

    * a box thinner than ``min_size`` pixels in either direction is taken as all foreground
      (GrabCut's colour models cannot be fitted on a few pixels);
    * a box without background around it (covering the whole image or the whole crop) is
      initialised from a mask whose 1-pixel image border is probable background;
    * if OpenCV raises (degenerate colour models), the whole box is taken as foreground;
    * if GrabCut finds no foreground in a box, its mask stays empty (the box then
      contributes 255, per Eq. 2).

    Args:
        image: ``uint8 [H, W, 3]`` RGB.
        boxes: ``[M, 4]`` inclusive ``(x1, y1, x2, y2)``.
        n_iter: GrabCut iterations (> 0).
        min_size: Boxes with side < ``min_size`` skip GrabCut (>= 1).
        margin: If given, run GrabCut on a crop of the box enlarged by this many pixels (much
            faster on large images; the background model becomes local). ``None``: whole
            image, as SDI.
        clip: Clip out-of-image boxes instead of raising.
        seed: Seed of OpenCV's RNG (GrabCut's k-means), for reproducibility.

    Returns:
        Boolean ``[M, H, W]``, ``True`` = foreground of box ``k`` (always inside the box).
    """
    import cv2

    img = _as_uint8_rgb(image)
    h, w = img.shape[:2]
    b, _ = check_boxes(boxes, (h, w), clip=clip)
    check_positive(n_iter, "n_iter", integer=True)
    check_positive(min_size, "min_size", integer=True)
    if margin is not None:
        check_positive(margin, "margin", strict=False, integer=True)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise TypeError(f"'seed' must be an int or None, got {seed!r}")
    bgr = np.ascontiguousarray(img[..., ::-1])
    masks = np.zeros((len(b), h, w), dtype=bool)
    for k, (x1, y1, x2, y2) in enumerate(b.tolist()):
        bw, bh = x2 - x1 + 1, y2 - y1 + 1
        if bw < min_size or bh < min_size:
            masks[k, y1 : y2 + 1, x1 : x2 + 1] = True
            continue
        if margin is None:
            cy1, cx1, cy2, cx2 = 0, 0, h - 1, w - 1
        else:
            cy1, cx1 = max(0, y1 - margin), max(0, x1 - margin)
            cy2, cx2 = min(h - 1, y2 + margin), min(w - 1, x2 + margin)
        crop = np.ascontiguousarray(bgr[cy1 : cy2 + 1, cx1 : cx2 + 1])
        ch, cw = crop.shape[:2]
        rx1, ry1, rx2, ry2 = x1 - cx1, y1 - cy1, x2 - cx1, y2 - cy1
        mask = np.zeros((ch, cw), np.uint8)
        bgd = np.zeros((1, 65), np.float64)
        fgd = np.zeros((1, 65), np.float64)
        if seed is not None:
            cv2.setRNGSeed(int(seed))
        covers_all = rx1 == 0 and ry1 == 0 and rx2 == cw - 1 and ry2 == ch - 1
        try:
            if not covers_all:
                cv2.grabCut(crop, mask, (rx1, ry1, bw, bh), bgd, fgd, int(n_iter),
                            cv2.GC_INIT_WITH_RECT)
            else:
                mask[:] = cv2.GC_PR_FGD
                mask[0, :] = mask[-1, :] = cv2.GC_PR_BGD
                mask[:, 0] = mask[:, -1] = cv2.GC_PR_BGD
                cv2.grabCut(crop, mask, None, bgd, fgd, int(n_iter),  # type: ignore[call-overload]
                            cv2.GC_INIT_WITH_MASK)  # rect None: the stubs want a rectangle
            fg = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
        except cv2.error:
            fg = np.zeros((ch, cw), dtype=bool)
            fg[ry1 : ry2 + 1, rx1 : rx2 + 1] = True
        inside = np.zeros((ch, cw), dtype=bool)
        inside[ry1 : ry2 + 1, rx1 : rx2 + 1] = True
        masks[k, cy1 : cy2 + 1, cx1 : cx2 + 1] = fg & inside
    return masks


def _box_order(boxes: np.ndarray) -> np.ndarray:
    """Indices of the boxes from largest to smallest area (stable: later boxes win ties)."""
    area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    return np.argsort(-area, kind="stable")


def box_seed_labels(
    boxes: ArrayLike | Sequence,
    box_labels: ArrayLike | Sequence,
    masks: np.ndarray,
    shape: tuple[int, int] | None = None,
) -> np.ndarray:
    r"""The box seed map :math:`M_B` (A 2-3) from per-box foreground masks.

    Outside every box: background 0. Inside box :math:`B_k`: :math:`L_{B_k}` where the
    box's foreground mask is set, 255 elsewhere; overlaps: the smallest box wins (module
    docstring).

    Args:
        boxes: ``[M, 4]`` boxes; box_labels: ``[M]`` class ids 1..C.
        masks: Boolean ``[M, H, W]`` (:func:`grabcut_box_masks`).
        shape: ``(H, W)`` (default: from ``masks``; needed when ``M = 0``).
    """
    num_boxes = len(_parse_boxes(boxes))
    if box_labels is None:
        raise TypeError("'box_labels' must be given (one class id per box)")
    if shape is not None:
        shape = _check_shape(shape)
    elif _np(masks, "masks").ndim != 3:
        raise ValueError("'shape' is required when 'masks' has no [M, H, W] shape")
    m = _check_masks(masks, num_boxes, shape)  # before the boxes: a wrong shape is named
    h, w = m.shape[1:]
    try:
        b, lab = check_boxes(boxes, (h, w), box_labels)
    except ValueError as err:
        if shape is None and "outside" in str(err):  # the image size came from 'masks'
            raise ValueError(
                f"{err}; the image size {h}x{w} is taken from 'masks' of shape {m.shape} "
                "(expected [M, H, W] at the image size; or pass 'shape')"
            ) from None
        raise
    out = np.zeros((h, w), dtype=np.uint8)
    inside = np.zeros((h, w), dtype=bool)
    for k in range(len(b)):
        x1, y1, x2, y2 = b[k]
        inside[y1 : y2 + 1, x1 : x2 + 1] = True
    out[inside] = IGNORE
    for k in _box_order(b):  # largest first: smaller boxes overwrite
        x1, y1, x2, y2 = b[k]
        sub = out[y1 : y2 + 1, x1 : x2 + 1]
        sub[m[k, y1 : y2 + 1, x1 : x2 + 1]] = lab[k]
    return out


def grabcut_seeds(
    image: ArrayLike,
    boxes: ArrayLike | Sequence,
    box_labels: ArrayLike | Sequence,
    **kwargs,
) -> np.ndarray:
    r""":math:`M_B` (A 2-3): GrabCut in every box (:func:`grabcut_box_masks`, keyword
    arguments passed on), background outside the boxes, 255 for in-box pixels GrabCut calls
    background. ``uint8 [H, W]``."""
    img = _as_uint8_rgb(image)
    b, lab = check_boxes(boxes, img.shape[:2], box_labels, clip=kwargs.get("clip", False))
    masks = grabcut_box_masks(img, b, **kwargs)
    return box_seed_labels(b, lab, masks, img.shape[:2])


def fuse_box_seeds(
    cam_labels: ArrayLike,
    boxes: ArrayLike | Sequence,
    box_labels: ArrayLike | Sequence,
    masks: np.ndarray,
    confident: ArrayLike | None = None,
) -> np.ndarray:
    r"""Fuse image-level seeds with GrabCut box seeds (A 4, and A 5 with ``confident``).

    .. math::
        M_F(i) = \begin{cases} M_B(i) & i \notin B \\
        M_I(i) & i \in B,\ M_B(i) = M_I(i) \\
        M_{B_k}(i) & i \in B_k,\ L_{B_k} \notin S(M_I|_{B_k}) \\
        255 & \text{else} \end{cases}

    where :math:`S(M_I|_{B_k})` is the set of labels :math:`M_I` predicts inside
    :math:`B_k`. For a pixel inside several boxes, the boxes are tried from the smallest
    (the overlap rule of the module docstring). With ``confident`` (:math:`M'_I`, the top-40 %
    CAM seeds), Eq. 5 is applied:
    :math:`M_g(i) = M_F(i)` if :math:`M_F(i) = M_B(i)` or :math:`M_F(i) = M'_I(i)`, else 255.

    Args:
        cam_labels: :math:`M_I`, ``uint8 [H, W]`` (255 allowed).
        boxes, box_labels: The boxes and their classes.
        masks: Boolean ``[M, H, W]`` GrabCut foregrounds (:func:`grabcut_box_masks`).
        confident: :math:`M'_I` (``uint8 [H, W]``, 255 = not confident) or ``None``.

    Returns:
        :math:`M_F` (or :math:`M_g`), ``uint8 [H, W]``.
    """
    mi = _np(cam_labels, "cam_labels")
    if mi.ndim != 2:
        raise ValueError(f"'cam_labels' must be [H, W], got {mi.shape}")
    if not np.issubdtype(mi.dtype, np.integer):
        raise TypeError(f"'cam_labels' must be an integer label map, got {mi.dtype}")
    h, w = mi.shape
    if h == 0 or w == 0:
        raise ValueError(f"'cam_labels' is empty (shape {mi.shape})")
    if mi.size and (mi.min() < 0 or mi.max() > IGNORE):
        raise ValueError(
            f"'cam_labels' must hold class ids in 0..{IGNORE} (255 = unlabelled), "
            f"got values in [{int(mi.min())}, {int(mi.max())}]"
        )
    mi = mi.astype(np.int64)
    m = _check_masks(masks, len(_parse_boxes(boxes)), (h, w))  # named before the boxes
    b, lab = check_boxes(boxes, (h, w), box_labels)
    mb = box_seed_labels(b, lab, m, (h, w)).astype(np.int64)

    inside = np.zeros((h, w), dtype=bool)
    for x1, y1, x2, y2 in b:
        inside[y1 : y2 + 1, x1 : x2 + 1] = True
    out = np.full((h, w), IGNORE, dtype=np.int64)
    out[~inside] = mb[~inside]
    agree = inside & (mb == mi) & (mi != IGNORE)
    out[agree] = mi[agree]
    decided = ~inside | agree
    for k in _box_order(b)[::-1]:  # smallest first
        x1, y1, x2, y2 = b[k]
        box = np.zeros((h, w), dtype=bool)
        box[y1 : y2 + 1, x1 : x2 + 1] = True
        predicted = set(np.unique(mi[box]).tolist())
        if int(lab[k]) in predicted:
            continue
        take = box & ~decided & m[k]
        # M_Bk: the box label on its GrabCut foreground, 255 elsewhere in the box
        # a box whose GrabCut calls the pixel background leaves it to larger boxes
        out[take] = lab[k]
        decided |= take
    if confident is not None:
        mc = _np(confident, "confident")
        if mc.shape != (h, w):
            raise ValueError(f"'confident' has shape {mc.shape}, expected {(h, w)}")
        if mc.dtype == bool or not np.issubdtype(mc.dtype, np.integer):
            raise TypeError(f"'confident' must be an integer label map, got {mc.dtype}")
        if mc.size and (mc.min() < 0 or mc.max() > IGNORE):
            raise ValueError(f"'confident' must hold class ids in 0..{IGNORE}")
        mc = mc.astype(np.int64)
        keep = (out == mb) | (out == mc)
        out = np.where(keep, out, IGNORE)
    return out.astype(np.uint8)


def a2gnn_box_seeds(
    image: ArrayLike,
    cams: ArrayLike,
    tags: ArrayLike | Sequence[float] | None,
    boxes: ArrayLike | Sequence,
    box_labels: ArrayLike | Sequence,
    grabcut_kwargs: dict | None = None,
    seed_kwargs: dict | None = None,
    confident_only: bool = True,
) -> np.ndarray:
    """The whole A2GNN box-seed recipe: :math:`M_I` (:func:`~pyg_wsss.pseudo.seeds.cam_label_map`),
    :math:`M'_I` (:func:`~pyg_wsss.pseudo.seeds.a2gnn_tag_seeds`), GrabCut masks, then Eq. 4
    and (``confident_only``) Eq. 5. Returns ``uint8 [H, W]``."""
    from .seeds import _to_numpy_cams, a2gnn_tag_seeds, cam_label_map

    img = _as_uint8_rgb(image)
    num_classes = _to_numpy_cams(cams).shape[0]
    if num_classes == 0:
        raise ValueError("'cams' has no class channel")
    b, lab = check_boxes(boxes, img.shape[:2], box_labels, num_classes=num_classes)
    seed_kwargs = dict(seed_kwargs or {})
    mi = cam_label_map(img, cams, tags, **{k: v for k, v in seed_kwargs.items()
                                          if k in ("alpha_low", "alpha_high", "preset",
                                                   "n_iter", "normalize")})
    mci = (cast(np.ndarray, a2gnn_tag_seeds(img, cams, tags, **seed_kwargs))  # no scores
           if confident_only else None)
    masks = grabcut_box_masks(img, b, **(grabcut_kwargs or {}))
    return fuse_box_seeds(mi, b, lab, masks, confident=mci)
