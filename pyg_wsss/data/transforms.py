"""Geometric transforms of whole sample dicts (image and every annotation stay aligned), and
the conversion of a sample to tensors.

Label maps (``mask``, ``scribbles``, ``instances``) are resized with nearest neighbour, the
image bilinearly; boxes and points are mapped with the same pixel-centre convention.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

_LABEL_KEYS = ("mask", "scribbles", "instances")


def _int_array(value: Any, name: str, cols: int, what: str) -> np.ndarray:
    """An ``[M, cols]`` integer array (whole floats accepted), named in errors."""
    arr = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value)
    if arr.size == 0:
        arr = arr.reshape(0, cols)
    if arr.ndim != 2 or arr.shape[1] != cols:
        raise ValueError(f"sample['{name}'] must have shape [M, {cols}] {what}, got {arr.shape}")
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise TypeError(f"sample['{name}'] must hold integer coordinates, got {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) and not (
        np.isfinite(arr).all() and (arr == np.round(arr)).all()
    ):
        raise TypeError(f"sample['{name}'] must hold integer coordinates, got fractions/NaN")
    return arr


def _check_sample(sample: Any) -> tuple[int, int]:
    """Check a sample dict: ``uint8 [H, W, 3]`` image, label maps ``[H, W]`` of integers,
    ``boxes [M, 4]`` with ``box_labels [M]``, ``points [P, 3]``, ``tags [C]``."""
    if not isinstance(sample, dict) or "image" not in sample:
        raise TypeError("'sample' must be a sample dict with an 'image' key")
    img = sample["image"]
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(
            f"sample['image'] must be an RGB array [H, W, 3], got {getattr(img, 'shape', None)}"
        )
    if img.dtype != np.uint8:
        raise TypeError(f"sample['image'] must be uint8 RGB (0..255), got {img.dtype}")
    h, w = int(img.shape[0]), int(img.shape[1])
    if h == 0 or w == 0:
        raise ValueError(f"sample['image'] is empty (shape {img.shape})")
    for key in _LABEL_KEYS:
        if key in sample:
            lab = sample[key]
            if not isinstance(lab, np.ndarray):
                raise TypeError(
                    f"sample['{key}'] must be a numpy array, got {type(lab).__name__}"
                )
            if lab.shape != (h, w):
                raise ValueError(
                    f"sample['{key}'] has shape {lab.shape}, the image is {(h, w)}"
                )
            if lab.dtype == bool or not np.issubdtype(lab.dtype, np.integer):
                raise TypeError(f"sample['{key}'] must be an integer label map, got {lab.dtype}")
    if "boxes" in sample:
        boxes = _int_array(sample["boxes"], "boxes", 4, "(x1, y1, x2, y2)")
        if "box_labels" in sample:
            n = np.asarray(sample["box_labels"]).reshape(-1).shape[0]
            if n != boxes.shape[0]:
                raise ValueError(
                    f"sample['box_labels'] has {n} entries for {boxes.shape[0]} boxes"
                )
    if "points" in sample:
        _int_array(sample["points"], "points", 3, "(row, col, class id)")
    if "tags" in sample and np.asarray(sample["tags"]).ndim != 1:
        raise ValueError(
            f"sample['tags'] must be a vector [C], got shape {np.asarray(sample['tags']).shape}"
        )
    return h, w


def _new_size(size: Any) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (int(size), int(size))
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s <= 0 for s in size)
    ):
        raise ValueError(f"'size' must be a positive int or (H, W), got {size!r}")
    return int(size[0]), int(size[1])


def resize_sample(sample: dict[str, Any], size: int | tuple[int, int]) -> dict[str, Any]:
    """Resize a sample to ``size`` (``(H, W)`` or ``int`` for a square). Boxes are scaled as
    pixel extents (``x1 -> floor(x1 * sx)``, ``x2 -> ceil((x2 + 1) * sx) - 1``), points as pixel
    centres; scribble pixels are kept by nearest-neighbour sampling (thin strokes may thin out
    when shrinking)."""
    import cv2

    h, w = _check_sample(sample)
    nh, nw = _new_size(size)
    sy, sx = nh / h, nw / w
    out = dict(sample)
    out["image"] = cv2.resize(sample["image"], (nw, nh), interpolation=cv2.INTER_LINEAR)
    for key in _LABEL_KEYS:
        if key in sample:
            out[key] = cv2.resize(sample[key], (nw, nh), interpolation=cv2.INTER_NEAREST)
    if "boxes" in sample:
        b = np.asarray(sample["boxes"], dtype=np.float64).reshape(-1, 4)
        nb = np.stack(
            [
                np.floor(b[:, 0] * sx),
                np.floor(b[:, 1] * sy),
                np.ceil((b[:, 2] + 1) * sx) - 1,
                np.ceil((b[:, 3] + 1) * sy) - 1,
            ],
            1,
        )
        nb[:, [0, 2]] = nb[:, [0, 2]].clip(0, nw - 1)
        nb[:, [1, 3]] = nb[:, [1, 3]].clip(0, nh - 1)
        out["boxes"] = nb.astype(np.int64)
    if "points" in sample:
        p = np.asarray(sample["points"], dtype=np.int64).reshape(-1, 3).copy()
        p[:, 0] = np.clip(np.floor((p[:, 0] + 0.5) * sy), 0, nh - 1)
        p[:, 1] = np.clip(np.floor((p[:, 1] + 0.5) * sx), 0, nw - 1)
        out["points"] = p
    return out


def hflip_sample(sample: dict[str, Any]) -> dict[str, Any]:
    """Mirror a sample left-right."""
    h, w = _check_sample(sample)
    out = dict(sample)
    out["image"] = np.ascontiguousarray(sample["image"][:, ::-1])
    for key in _LABEL_KEYS:
        if key in sample:
            out[key] = np.ascontiguousarray(sample[key][:, ::-1])
    if "boxes" in sample:
        b = np.asarray(sample["boxes"], dtype=np.int64).reshape(-1, 4).copy()
        b[:, [0, 2]] = w - 1 - b[:, [2, 0]]
        out["boxes"] = b
    if "points" in sample:
        p = np.asarray(sample["points"], dtype=np.int64).reshape(-1, 3).copy()
        p[:, 1] = w - 1 - p[:, 1]
        out["points"] = p
    return out


def crop_sample(
    sample: dict[str, Any], top: int, left: int, height: int, width: int
) -> dict[str, Any]:
    """Crop a sample to rows ``top .. top + height - 1`` and columns ``left .. left + width - 1``
    (inside the image). Boxes are clipped to the crop and dropped when nothing of them is
    left; points outside are dropped; ``tags`` are recomputed from the cropped ``mask`` when
    there is one (otherwise kept)."""
    from .annotations import mask_to_tags

    h, w = _check_sample(sample)
    for name, v in (("top", top), ("left", left), ("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"'{name}' must be an int, got {v!r}")
    if top < 0 or left < 0 or height <= 0 or width <= 0 or top + height > h or left + width > w:
        raise ValueError(
            f"crop (top={top}, left={left}, height={height}, width={width}) is not inside the "
            f"{h}x{w} image"
        )
    out = dict(sample)
    rs, cs = slice(top, top + height), slice(left, left + width)
    out["image"] = np.ascontiguousarray(sample["image"][rs, cs])
    for key in _LABEL_KEYS:
        if key in sample:
            out[key] = np.ascontiguousarray(sample[key][rs, cs])
    if "boxes" in sample:
        b = np.asarray(sample["boxes"], dtype=np.int64).reshape(-1, 4) - [left, top, left, top]
        keep = (b[:, 2] >= 0) & (b[:, 3] >= 0) & (b[:, 0] < width) & (b[:, 1] < height)
        b = b[keep]
        b[:, [0, 2]] = b[:, [0, 2]].clip(0, width - 1)
        b[:, [1, 3]] = b[:, [1, 3]].clip(0, height - 1)
        out["boxes"] = b
        if "box_labels" in sample:
            out["box_labels"] = np.asarray(sample["box_labels"], dtype=np.int64)[keep]
    if "points" in sample:
        p = np.asarray(sample["points"], dtype=np.int64).reshape(-1, 3) - [top, left, 0]
        keep = (p[:, 0] >= 0) & (p[:, 0] < height) & (p[:, 1] >= 0) & (p[:, 1] < width)
        out["points"] = p[keep]
    if "mask" in sample and "tags" in sample:
        out["tags"] = mask_to_tags(out["mask"], len(sample["tags"]) + 1)
    return out


def sample_to_tensors(
    sample: dict[str, Any], device: torch.device | str | None = None
) -> dict[str, Any]:
    """Tensors for a model: ``image`` float ``[3, H, W]`` in ``[0, 1]``; ``mask``,
    ``scribbles``, ``instances`` int64 ``[H, W]``; ``tags`` float32; ``boxes``, ``box_labels``,
    ``points`` int64; other entries unchanged."""
    _check_sample(sample)
    if device is not None:
        try:
            torch.device(device)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"'device' is not a torch device: {device!r} ({err})") from None
    out: dict[str, Any] = {}
    for key, val in sample.items():
        if key == "image":
            out[key] = (
                torch.from_numpy(np.ascontiguousarray(val))
                .permute(2, 0, 1)
                .float()
                .div(255)
                .to(device)
            )
        elif key in _LABEL_KEYS or key in ("boxes", "box_labels", "points"):
            out[key] = torch.as_tensor(np.asarray(val), dtype=torch.long, device=device)
        elif key == "tags":
            out[key] = torch.as_tensor(np.asarray(val), dtype=torch.float32, device=device)
        else:
            out[key] = val
    return out
