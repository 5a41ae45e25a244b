"""Input validation shared by the public functions: clear errors naming the argument."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor


def check_type(value: Any, types: type | tuple[type, ...], name: str) -> None:
    if not isinstance(value, types):
        names = (
            " or ".join(t.__name__ for t in types) if isinstance(types, tuple) else types.__name__
        )
        raise TypeError(f"'{name}' must be {names}, got {type(value).__name__}")


def check_tensor(
    value: Any,
    name: str,
    ndim: int | tuple[int, ...] | None = None,
    floating: bool | None = None,
    finite: bool = False,
) -> Tensor:
    """Check that ``value`` is a tensor with the given number of dimensions and kind."""
    if not isinstance(value, Tensor):
        raise TypeError(f"'{name}' must be a torch.Tensor, got {type(value).__name__}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if value.dim() not in allowed:
            raise ValueError(
                f"'{name}' must have {' or '.join(map(str, allowed))} dimensions, "
                f"got shape {tuple(value.shape)}"
            )
    if floating is True and not value.is_floating_point():
        raise TypeError(f"'{name}' must be a floating-point tensor, got {value.dtype}")
    if floating is False and (value.is_floating_point() or value.is_complex()):
        raise TypeError(f"'{name}' must be an integer tensor, got {value.dtype}")
    if finite and value.is_floating_point() and value.numel() and not torch.isfinite(value).all():
        raise ValueError(f"'{name}' contains NaN or infinite values")
    return value


def check_edge_index(
    edge_index: Any, num_nodes: int | None = None, name: str = "edge_index"
) -> Tensor:
    """Check a ``[2, E]`` integer edge index (int64 or int32) with indices in range."""
    check_tensor(edge_index, name, ndim=2, floating=False)
    if edge_index.size(0) != 2:
        raise ValueError(f"'{name}' must have shape [2, E], got {tuple(edge_index.shape)}")
    if edge_index.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"'{name}' must be int64 or int32, got {edge_index.dtype}")
    if num_nodes is not None and edge_index.numel() > 0:
        lo, hi = int(edge_index.min()), int(edge_index.max())
        if lo < 0 or hi >= num_nodes:
            raise ValueError(
                f"'{name}' has node indices in [{lo}, {hi}], outside [0, {num_nodes - 1}]"
            )
    return edge_index


def check_positive(value: Any, name: str, strict: bool = True, integer: bool = False) -> None:
    kinds: tuple[type, ...] = (int, np.integer)
    if not integer:
        kinds = (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise TypeError(f"'{name}' must be {'an int' if integer else 'a number'}, got {value!r}")
    if (strict and not value > 0) or (not strict and not value >= 0):
        raise ValueError(f"'{name}' must be {'> 0' if strict else '>= 0'}, got {value!r}")


def check_fraction(value: Any, name: str, closed: bool = True) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"'{name}' must be a number, got {value!r}")
    ok = 0.0 <= value <= 1.0 if closed else 0.0 < value < 1.0
    if not ok:
        raise ValueError(f"'{name}' must be in [0, 1], got {value!r}")


def check_choice(value: Any, choices: tuple[str, ...] | list[str], name: str) -> str:
    if value not in choices:
        raise ValueError(f"'{name}' must be one of {tuple(choices)}, got {value!r}")
    return value


def as_rgb_image(image: Any, name: str = "image") -> np.ndarray:
    """Return an ``[H, W, 3]`` ``uint8`` RGB array.

    Accepts a numpy array or tensor of shape ``[H, W, 3]`` (uint8, or float in ``[0, 1]``), or a
    tensor of shape ``[3, H, W]``. Grey, RGBA and other shapes raise :class:`ValueError`.
    """
    if isinstance(image, Tensor):
        arr = image.detach().cpu()
        if arr.dim() == 3 and arr.size(0) == 3 and arr.size(-1) != 3:
            arr = arr.permute(1, 2, 0)
        arr = arr.numpy()
    elif isinstance(image, np.ndarray):
        arr = image
    else:
        raise TypeError(
            f"'{name}' must be a numpy array or torch.Tensor, got {type(image).__name__}"
        )
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"'{name}' must be an RGB image of shape [H, W, 3], got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"'{name}' is empty (shape {arr.shape})")
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ValueError(f"'{name}' contains NaN or infinite values")
        if arr.min() < 0 or arr.max() > 1:
            raise ValueError(f"float '{name}' must have values in [0, 1]")
        return np.ascontiguousarray(np.round(arr * 255).astype(np.uint8))
    raise TypeError(f"'{name}' must be uint8 or float, got {arr.dtype}")


def check_label_map(
    labels: Any, num_classes: int, name: str = "labels", ignore_index: int = 255
) -> None:
    """Check an integer label map whose values are in ``[0, num_classes)`` or ``ignore_index``."""
    arr = labels.detach().cpu().numpy() if isinstance(labels, Tensor) else np.asarray(labels)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"'{name}' must be an integer label map, got {arr.dtype}")
    if arr.size:
        bad = (arr != ignore_index) & ((arr < 0) | (arr >= num_classes))
        if bad.any():
            raise ValueError(
                f"'{name}' has labels outside [0, {num_classes - 1}] (and not {ignore_index}): "
                f"{np.unique(arr[bad])[:10].tolist()}"
            )
