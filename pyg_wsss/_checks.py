"""Input validation shared by the public functions: clear errors naming the argument.

Validation policy (issue 17, item 2)
------------------------------------
Every public callable of :mod:`pyg_wsss` names the offending argument in a
:class:`ValueError` or :class:`TypeError`. Checks come in two kinds:

* **Cheap checks** -- types, shapes, dtypes, devices, lengths and the Python-side
  hyper-parameters. They never read tensor values (no host-device synchronisation) and
  **always** run.
* **Value checks** -- anything that reads tensor values: NaN/Inf, index ranges
  (``edge_index``, ``batch``, ``points``, region ids), label ranges. On a GPU they force a
  host sync, so they are governed by one switch, like :func:`torch.autograd.set_detect_anomaly`:

  ======================  ============================================================
  level                   value checks run
  ======================  ============================================================
  ``"auto"`` (default)    when all the tensors of the call are on the CPU (where they
                          are cheap); skipped for CUDA tensors, so GPU training loops
                          stay sync-free
  ``"full"``              always (debugging a GPU run: ``with pyg_wsss.checks("full")``)
  ``"cheap"``             never (only the cheap checks)
  ======================  ============================================================

  Set it globally with ``pyg_wsss.set_checks(level)`` or for a block with
  ``with pyg_wsss.checks(level): ...``; :func:`get_checks` returns the current level.
  Value checks are always skipped while :func:`torch.compiler.is_compiling` is true.

  Functions whose own work already needs the values on the host (e.g. inferring
  ``num_graphs`` from ``batch.max()``, the CSR builders on a cache miss, metrics, label-map
  tools) and one-off set-ups outside training loops (graph builders such as
  ``wsgcn_adjacency`` and ``laplacian_matrix``, ``BatchedWSGCN`` / ``fit_wsgcn``,
  ``prepare_boxes``, ``consistency_check`` with raw boxes) check them regardless of the
  level, since the check is cheap relative to the call there.

Training loops and ``torch.compile`` (issue 18)
-----------------------------------------------
The training steps (``a2gnn_train_step``, ``wsgcn_train_step``) validate their static
inputs once, before the loop (``prepare_a2gnn_inputs``, ``prepare_boxes``, the
``BatchedWSGCN`` / ``WSGCNObjective`` constructors); per step only the cheap checks and the
level-governed value checks run, so at ``"auto"`` on a GPU a step reads nothing back to the
host, and under :func:`torch.compile` (where value checks are skipped and the cheap ones are
evaluated at trace time) the losses and steps trace without graph breaks
(``tests/test_compile.py``).

Losses check their inputs for NaN (``-inf`` log-probabilities and masked logits are
valid there); layers check their inputs for NaN/Inf. The low-level kernels of
:mod:`pyg_wsss.ops` (``spmm``, ``sddmm``, ``fixed_spmm``, ``edge_softmax``) check shapes,
indices and edge weights but not the feature values they multiply (NaN propagates, as in
``torch.sparse.mm``): the layers and losses built on them check those.

With value checks skipped a bad value is not detected: an out-of-range index may then fail
deep inside torch (or, on CUDA, with a device-side assert) and a NaN propagates.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence, TypeVar, cast

import numpy as np
import torch
from torch import Tensor

_C = TypeVar("_C")

LEVELS = ("auto", "cheap", "full")
_level = "auto"


def set_checks(level: str) -> None:
    """Set the validation level: ``"auto"`` (default), ``"cheap"`` or ``"full"`` (see the
    module docstring of :mod:`pyg_wsss._checks`)."""
    global _level
    if level not in LEVELS:
        raise ValueError(f"'level' must be one of {LEVELS}, got {level!r}")
    _level = level


def get_checks() -> str:
    """The current validation level."""
    return _level


@contextlib.contextmanager
def checks(level: str) -> Iterator[None]:
    """Context manager: run the block with validation level ``level`` (restored after)."""
    previous = _level
    set_checks(level)
    try:
        yield
    finally:
        set_checks(previous)


def value_checks(*tensors: Any) -> bool:
    """Whether value checks (those needing a host sync) run for a call on ``tensors``."""
    if _level == "cheap" or torch.compiler.is_compiling():
        return False
    if _level == "full":
        return True
    return all(t.device.type == "cpu" for t in tensors if isinstance(t, Tensor))


def check_finite(value: Tensor, name: str, nan_only: bool = False) -> None:
    """NaN/Inf check of a floating tensor (a value check: follows the level). With
    ``nan_only`` infinities pass (log-probabilities and masked logits may hold ``-inf``)."""
    if not (value.is_floating_point() and value.numel() and value_checks(value)):
        return
    if nan_only:
        if bool(torch.isnan(value).any()):
            raise ValueError(f"'{name}' contains NaN values")
    elif not bool(torch.isfinite(value).all()):
        raise ValueError(f"'{name}' contains NaN or infinite values")


def check_index(
    index: Any,
    name: str,
    size: int | None,
    ndim: int | tuple[int, ...] = 1,
    what: str = "indices",
    always: bool = False,
) -> Tensor:
    """Check an int64/int32 index tensor with values in ``[0, size)``. The range is a value
    check (it follows the level) unless ``always`` (for callers that sync anyway)."""
    check_tensor(index, name, ndim=ndim, floating=False)
    if index.dtype == torch.bool:
        raise TypeError(f"'{name}' must be an int64 or int32 index tensor, got {index.dtype}")
    if size is not None and index.numel() and (always or value_checks(index)):
        lo, hi = int(index.min()), int(index.max())
        if lo < 0 or hi >= size:
            raise ValueError(
                f"'{name}' has {what} in [{lo}, {hi}], outside [0, {size - 1}]"
                if size > 0
                else f"'{name}' has {what} but the valid range is empty (size 0)"
            )
    return index


def check_batch(
    batch: Tensor | None,
    num_nodes: int,
    num_graphs: int | None,
    device: torch.device | None = None,
    name: str = "batch",
) -> tuple[Tensor, int]:
    """Validate a PyG ``batch`` vector (``None`` = one graph); return ``(batch, num_graphs)``.

    Length and dtype are always checked; values must lie in ``[0, num_graphs)``. Without
    ``num_graphs`` it is inferred as ``batch.max() + 1`` (a sync anyway, so the range is
    always checked); with it, the range check is a value check. The order is free (the
    losses reduce per graph with ``index_add``)."""
    if batch is None:
        if num_graphs not in (None, 1):
            raise ValueError(f"'num_graphs' must be 1 (or None) without '{name}', got {num_graphs}")
        return torch.zeros(num_nodes, dtype=torch.long, device=device), 1
    check_tensor(batch, name, ndim=1, floating=False)
    if batch.dtype == torch.bool:
        raise TypeError(f"'{name}' must be an int64 or int32 tensor, got {batch.dtype}")
    if batch.numel() != num_nodes:
        raise ValueError(f"'{name}' has {batch.numel()} entries but there are {num_nodes} nodes")
    if num_graphs is None:
        if batch.numel():
            lo, hi = int(batch.min()), int(batch.max())
            if lo < 0:
                raise ValueError(f"'{name}' has negative graph indices (min {lo})")
            num_graphs = hi + 1
        else:
            num_graphs = 0
    else:
        check_positive(num_graphs, "num_graphs", strict=False, integer=True)
        num_graphs = int(num_graphs)
        if batch.numel() and value_checks(batch):
            lo, hi = int(batch.min()), int(batch.max())
            if lo < 0 or hi >= num_graphs:
                raise ValueError(
                    f"'{name}' has graph indices in [{lo}, {hi}], outside "
                    f"[0, {num_graphs - 1}] for num_graphs={num_graphs}"
                )
    batch = batch.long()
    if device is not None:
        batch = batch.to(device)
    return batch, int(num_graphs)

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
    if finite:
        check_finite(value, name)
    return value


def check_edge_index(
    edge_index: Any, num_nodes: int | None = None, name: str = "edge_index", always: bool = False
) -> Tensor:
    """Check a ``[2, E]`` integer edge index (int64 or int32) with indices in
    ``[0, num_nodes)`` (the range is a value check, unless ``always``: one-off builders)."""
    check_tensor(edge_index, name, ndim=2, floating=False)
    if edge_index.size(0) != 2:
        raise ValueError(f"'{name}' must have shape [2, E], got {tuple(edge_index.shape)}")
    if edge_index.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"'{name}' must be int64 or int32, got {edge_index.dtype}")
    if num_nodes is not None and edge_index.numel() > 0 and (always or value_checks(edge_index)):
        lo, hi = int(edge_index.min()), int(edge_index.max())
        if lo < 0 or hi >= num_nodes:
            raise ValueError(
                f"'{name}' has node indices in [{lo}, {hi}], outside [0, {num_nodes - 1}]"
                if num_nodes > 0
                else f"'{name}' has edges but there are no nodes"
            )
    return edge_index


def check_positive(value: Any, name: str, strict: bool = True, integer: bool = False) -> None:
    kinds: tuple[type, ...] = (int, np.integer)
    if not integer:
        kinds = (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise TypeError(f"'{name}' must be {'an int' if integer else 'a number'}, got {value!r}")
    v = cast(float, value)  # an int, float or numpy scalar (checked above); compared as is
    if (strict and not v > 0) or (not strict and not v >= 0):
        raise ValueError(f"'{name}' must be {'> 0' if strict else '>= 0'}, got {value!r}")


def check_fraction(value: Any, name: str, closed: bool = True) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"'{name}' must be a number, got {value!r}")
    v = cast(float, value)  # an int, float or numpy scalar (checked above); compared as is
    ok = 0.0 <= v <= 1.0 if closed else 0.0 < v < 1.0
    if not ok:
        raise ValueError(f"'{name}' must be in [0, 1], got {value!r}")


def check_choice(value: Any, choices: Sequence[_C], name: str) -> _C:
    if value not in choices:
        raise ValueError(f"'{name}' must be one of {tuple(choices)}, got {value!r}")
    return value


def as_rgb_image(image: Any, name: str = "image") -> np.ndarray:
    """Return an ``[H, W, 3]`` ``uint8`` RGB array.

    Accepts a numpy array or tensor of shape ``[H, W, 3]`` (uint8, or float in ``[0, 1]``), or a
    tensor of shape ``[3, H, W]``. Grey, RGBA and other shapes raise :class:`ValueError`.
    """
    arr: np.ndarray
    if isinstance(image, Tensor):
        t = image.detach().cpu()
        if t.dim() == 3 and t.size(0) == 3 and t.size(-1) != 3:
            t = t.permute(1, 2, 0)
        arr = t.numpy()
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
