"""The bad-input test matrix (issue 17, item 6), shared by the per-area modules.

A :class:`Spec` is one public callable: a canonical call (``base()`` returns fresh keyword
arguments, ``fn(**kwargs)`` runs it) and its cases:

* ``bad``: ``(label, mutate, match)`` -- the mutated call must raise ``ValueError`` or
  ``TypeError`` whose message matches ``match`` (the name of the bad argument);
* ``ok``: ``(label, mutate)`` -- accepted variants (int32 indices, non-contiguous tensors, ...)
  that must give exactly the canonical result;
* ``runs``: ``(label, mutate)`` -- edge cases (empty graphs, isolated nodes) that must run and
  give a finite result.

``REGISTRY`` records every callable and case; ``conftest.py`` prints the totals.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pytest
import torch
from torch import Tensor

REGISTRY: dict[str, dict[str, int]] = {}  # area -> {callable: number of cases}

Mutate = Callable[[dict], dict]


@dataclass
class Spec:
    name: str
    fn: Callable[..., Any]
    base: Callable[[], dict]
    bad: list = field(default_factory=list)
    ok: list = field(default_factory=list)
    runs: list = field(default_factory=list)

    def __repr__(self) -> str:
        return self.name


# ------------------------------------------------------------------------------------------
# mutations
# ------------------------------------------------------------------------------------------
def put(name: str, value: Any) -> Mutate:
    """Replace argument ``name`` (``value`` may be a function of the old value and kwargs)."""

    def mutate(kw: dict) -> dict:
        kw = dict(kw)
        kw[name] = value(kw.get(name), kw) if callable(value) else value
        return kw

    return mutate


def _set_first(t: Tensor, v: Any) -> Tensor:
    t = t.clone()
    t.view(-1)[0] = v
    return t


def feature_cases(name: str, nan: bool = True, ndim: int = 2) -> tuple[list, list]:
    """Float feature tensor: wrong rank, integer dtype, NaN/Inf; accepted: non-contiguous."""
    bad = [
        (f"{name}-rank", put(name, lambda x, kw: x.reshape(-1) if ndim > 1 else x.view(1, -1)),
         name),
        (f"{name}-int", put(name, lambda x, kw: x.round().long()), name),
        (f"{name}-list", put(name, lambda x, kw: x.tolist()), name),
    ]
    if nan:
        bad += [
            (f"{name}-nan", put(name, lambda x, kw: _set_first(x, math.nan)), name),
            (f"{name}-inf", put(name, lambda x, kw: _set_first(x, math.inf)), name),
        ]
    return bad, [(f"{name}-noncontig", put(name, lambda x, kw: noncontig(x)))]


def noncontig(x: Tensor) -> Tensor:
    """The same values in a non-contiguous tensor."""
    if x.dim() == 0:
        return x
    big = torch.stack([x, torch.zeros_like(x)], dim=-1)
    out = big[..., 0]
    assert not out.is_contiguous() or x.numel() <= 1
    return out


def edge_index_cases(name: str, num_nodes: Callable[[dict], int]) -> tuple[list, list]:
    """``[2, E]`` index: float, wrong shape, out of range, negative; ok: int32, non-contig."""
    bad = [
        (f"{name}-float", put(name, lambda e, kw: e.float()), name),
        (f"{name}-shape", put(name, lambda e, kw: torch.cat([e, e[:1]], 0)), name),
        (f"{name}-1d", put(name, lambda e, kw: e.reshape(-1)), name),
        (f"{name}-range", put(name, lambda e, kw: _set_first(e, num_nodes(kw))), name),
        (f"{name}-negative", put(name, lambda e, kw: _set_first(e, -1)), name),
    ]
    ok = [
        (f"{name}-int32", put(name, lambda e, kw: e.int())),
        (f"{name}-noncontig", put(name, lambda e, kw: noncontig(e))),
    ]
    return bad, ok


def index_cases(
    name: str, size: Callable[[dict], int] | None, length: bool = True
) -> tuple[list, list]:
    """1-D index vector: float, 2-D, out of range, negative, wrong length; ok: int32."""
    bad = [
        (f"{name}-float", put(name, lambda b, kw: b.float()), name),
        (f"{name}-2d", put(name, lambda b, kw: b.view(1, -1)), name),
        (f"{name}-negative", put(name, lambda b, kw: _set_first(b, -1)), name),
    ]
    if size is not None:
        bad.append((f"{name}-range", put(name, lambda b, kw: _set_first(b, size(kw))), name))
    if length:
        bad.append((f"{name}-length", put(name, lambda b, kw: b[1:]), name))
    ok = [
        (f"{name}-int32", put(name, lambda b, kw: b.int())),
        (f"{name}-noncontig", put(name, lambda b, kw: noncontig(b))),
    ]
    return bad, ok


def weight_cases(name: str, nan: bool = True) -> tuple[list, list]:
    """``[E]`` float weights: wrong length, 2-D, integer, NaN/Inf; ok: non-contiguous."""
    bad = [
        (f"{name}-length", put(name, lambda w, kw: w[1:]), name),
        (f"{name}-int", put(name, lambda w, kw: w.round().long()), name),
    ]
    if nan:
        bad += [
            (f"{name}-nan", put(name, lambda w, kw: _set_first(w, math.nan)), name),
            (f"{name}-inf", put(name, lambda w, kw: _set_first(w, math.inf)), name),
        ]
    return bad, [(f"{name}-noncontig", put(name, lambda w, kw: noncontig(w)))]


def label_cases(name: str, num_classes: int, ignore: int | None = 255) -> tuple[list, list]:
    """Integer labels: float, out of range, negative (not the ignore index); ok: int32."""
    bad = [
        (f"{name}-float", put(name, lambda y, kw: y.float()), name),
        (f"{name}-range", put(name, lambda y, kw: _set_first(y, num_classes + 3)), name),
        (f"{name}-negative", put(name, lambda y, kw: _set_first(y, -2)), name),
        (f"{name}-length", put(name, lambda y, kw: y[1:]), name),
    ]
    return bad, [(f"{name}-int32", put(name, lambda y, kw: y.int()))]


def merge(*groups: tuple[list, list]) -> tuple[list, list]:
    bad, ok = [], []
    for b, o in groups:
        bad += b
        ok += o
    return bad, ok


# ------------------------------------------------------------------------------------------
# comparison and parametrisation
# ------------------------------------------------------------------------------------------
def equal(a: Any, b: Any) -> bool:
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        if not (isinstance(a, Tensor) and isinstance(b, Tensor)):
            return False
        if a.layout != torch.strided:
            a, b = a.to_dense(), b.to_dense()
        return a.shape == b.shape and a.dtype == b.dtype and torch.equal(
            torch.nan_to_num(a.detach()), torch.nan_to_num(b.detach())
        )
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    if isinstance(a, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(map(equal, a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if hasattr(a, "to_dict") and callable(a.to_dict):  # PyG Data / Batch
        return equal(a.to_dict(), b.to_dict())
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


def finite(a: Any) -> bool:
    if isinstance(a, Tensor):
        if a.layout != torch.strided:
            a = a.to_dense()
        return not a.is_floating_point() or bool(torch.isfinite(a).all())
    if isinstance(a, np.ndarray):
        return a.dtype.kind != "f" or bool(np.isfinite(a).all())
    if isinstance(a, (tuple, list)):
        return all(map(finite, a))
    if isinstance(a, float):
        return math.isfinite(a)
    return True


def base(spec: Spec) -> dict:
    """The canonical arguments (random ones drawn from a fixed seed)."""
    torch.manual_seed(1)
    return spec.base()


def run(spec: Spec, kw: dict) -> Any:
    torch.manual_seed(0)
    np.random.seed(0)
    return spec.fn(**kw)


def parametrize(area: str, specs: list[Spec]) -> tuple[list, list, list]:
    """pytest params for the bad, ok and runs cases of ``specs`` (recorded in REGISTRY)."""
    bad, ok, runs = [], [], []
    names = [s.name for s in specs]
    assert len(names) == len(set(names)), "duplicate spec names"
    reg = REGISTRY.setdefault(area, {})
    for s in specs:
        for label, mutate, match in s.bad:
            bad.append(pytest.param(s, mutate, match, id=f"{s.name}:{label}"))
        for label, mutate in s.ok:
            ok.append(pytest.param(s, mutate, id=f"{s.name}:{label}"))
        for label, mutate in s.runs:
            runs.append(pytest.param(s, mutate, id=f"{s.name}:{label}"))
        reg[s.name] = len(s.bad) + len(s.ok) + len(s.runs)
    return bad, ok, runs


def check_bad(spec: Spec, mutate: Mutate, match: str) -> None:
    kw = mutate(base(spec))
    with pytest.raises((ValueError, TypeError), match=match):
        run(spec, kw)


_REFS: dict[str, Any] = {}


def check_ok(spec: Spec, mutate: Mutate) -> None:
    if spec.name not in _REFS:  # the canonical result, computed once per callable
        _REFS[spec.name] = run(spec, base(spec))
    ref = _REFS[spec.name]
    out = run(spec, mutate(base(spec)))
    assert equal(out, ref), f"{spec.name}: accepted variant differs from the canonical call"


def check_runs(spec: Spec, mutate: Mutate) -> None:
    out = run(spec, mutate(base(spec)))
    assert finite(out), f"{spec.name}: non-finite result"


def deep(kw: dict) -> dict:
    return copy.deepcopy(kw)
