"""Weighted aggregation ``out_i = sum_j w_ji x_j`` as a CSR sparse-dense product (SpMM) with
an autograd rule that never gathers ``[E, F]`` tensors (the weight gradient is an SDDMM)."""
from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import Function
from torch.autograd.function import once_differentiable

from .._checks import check_finite, check_tensor
from .csr import CSRGraph, csr_matrix, to_csr

__all__ = ["spmm", "sddmm", "fixed_spmm", "csr_matrix"]

_LOW = (torch.float16, torch.bfloat16)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    # sparse CSR kernels have no half/bfloat16 CPU paths: accumulate in float32
    return torch.float32 if dtype in _LOW else dtype


def sddmm(csr: CSRGraph, a: Tensor, b: Tensor) -> Tensor:
    """Sampled dense-dense product: ``out_e = <a[row_e], b[col_e]>`` for every CSR entry ``e``
    (CSR order), computed by ``torch.sparse.sampled_addmm`` without an ``[E, F]`` gather.

    Shapes:
        a ``[num_dst, F]``, b ``[num_src, F]`` -> ``[E]``.
    """
    if not isinstance(csr, CSRGraph):
        raise TypeError(f"'csr' must be a CSRGraph (see to_csr), got {type(csr).__name__}")
    check_tensor(a, "a", ndim=2, floating=True)
    check_tensor(b, "b", ndim=2, floating=True)
    if a.size(0) != csr.num_dst or b.size(0) != csr.num_src or a.size(1) != b.size(1):
        raise ValueError(
            f"'a' {tuple(a.shape)} must be [num_dst={csr.num_dst}, F] and 'b' {tuple(b.shape)} "
            f"[num_src={csr.num_src}, F]"
        )
    if csr.num_edges == 0:
        return a.new_zeros(0)
    pattern = csr.matrix(a.new_zeros(csr.num_edges))
    return torch.sparse.sampled_addmm(pattern, a, b.t(), beta=0.0).values()


class _SpMMFunction(Function):
    @staticmethod
    def forward(ctx, values: Tensor, x: Tensor, csr: CSRGraph) -> Tensor:  # type: ignore[override]
        ctx.csr = csr
        ctx.save_for_backward(values, x)
        if csr.num_edges == 0:
            return x.new_zeros(csr.num_dst, x.size(1))
        return torch.sparse.mm(csr.matrix(values), x)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        values, x = ctx.saved_tensors
        csr: CSRGraph = ctx.csr
        grad_values = grad_x = None
        grad_out = grad_out.contiguous()
        if ctx.needs_input_grad[1]:
            if csr.num_edges == 0:
                grad_x = torch.zeros_like(x)
            else:
                grad_x = torch.sparse.mm(csr.matrix_t(values), grad_out)
        if ctx.needs_input_grad[0]:
            grad_values = sddmm(csr, grad_out, x)
        return grad_values, grad_x, None


def spmm(
    edge_index: Tensor | CSRGraph,
    edge_weight: Tensor | None,
    x: Tensor,
    num_nodes: int | tuple[int, int] | None = None,
) -> Tensor:
    r"""Weighted sum aggregation over a graph by CSR SpMM:

    .. math::
        \mathbf{out}_i = \sum_{(j, i) \in \mathcal{E}} w_{ji}\, \mathbf{x}_j

    Args:
        edge_index: ``[2, E]`` (source, target) or a cached :class:`CSRGraph`.
        edge_weight: ``[E]`` in the order of ``edge_index`` (``None``: all ones).
        x: ``[num_src, F]`` source features.
        num_nodes: ``N`` or ``(num_src, num_dst)``; default ``x.size(0)`` for both.

    Returns:
        ``[num_dst, F]``, differentiable w.r.t. ``x`` and ``edge_weight``; half and bfloat16
        inputs are computed in float32 and returned in their dtype.

    Shapes:
        edge_index ``[2, E]``, edge_weight ``[E]``, x ``[N, F]`` -> ``[N, F]``.
    """
    check_tensor(x, "x", ndim=2, floating=True)
    if isinstance(edge_index, CSRGraph):
        csr = edge_index
    else:
        csr = to_csr(edge_index, num_nodes if num_nodes is not None else x.size(0))
    if x.size(0) != csr.num_src:
        raise ValueError(f"'x' has {x.size(0)} rows but the graph has {csr.num_src} sources")
    dtype = x.dtype
    work = _compute_dtype(dtype)
    if edge_weight is None:
        values = x.new_ones(csr.num_edges, dtype=work)
    else:
        check_tensor(edge_weight, "edge_weight", ndim=1, floating=True)
        if edge_weight.numel() != csr.num_edges:
            raise ValueError(
                f"'edge_weight' has {edge_weight.numel()} entries but the graph has "
                f"{csr.num_edges} edges"
            )
        check_finite(edge_weight, "edge_weight")
        values = csr.to_csr_order(edge_weight.to(work))
    out = _SpMMFunction.apply(values, x.to(work).contiguous(), csr)
    return out.to(dtype)


class _FixedSpMM(Function):
    @staticmethod
    def forward(ctx, a: Tensor, a_t: Tensor, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.a_t = a_t
        return torch.sparse.mm(a, x)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return None, None, torch.sparse.mm(ctx.a_t, grad.contiguous())


def fixed_spmm(a: Tensor, a_t: Tensor, x: Tensor) -> Tensor:
    """``a @ x`` for a **constant** sparse CSR operator ``a [M, N]`` (no gradient w.r.t. its
    values), with the backward ``a_t @ grad`` through its prebuilt CSR transpose ``a_t``
    (:func:`csr_matrix` of the swapped indices; ``a`` itself when symmetric). Use
    :func:`spmm` when the edge weights need gradients.

    Shapes:
        a ``[M, N]``, a_t ``[N, M]``, x ``[N, F]`` -> ``[M, F]``.
    """
    check_tensor(x, "x", ndim=2, floating=True)
    for name, m in (("a", a), ("a_t", a_t)):
        if not isinstance(m, Tensor) or m.layout != torch.sparse_csr:
            raise TypeError(f"'{name}' must be a sparse CSR tensor (see csr_matrix)")
        if m.dtype != x.dtype or m.device != x.device:
            raise TypeError(
                f"'{name}' is {m.dtype} on {m.device} but 'x' is {x.dtype} on {x.device}"
            )
    if a.size(1) != x.size(0) or tuple(a_t.shape) != (a.size(1), a.size(0)):
        raise ValueError(
            f"shapes do not match: a {tuple(a.shape)}, a_t {tuple(a_t.shape)}, x {tuple(x.shape)}"
        )
    if a._nnz() == 0:
        return x.new_zeros(a.size(0), x.size(1)) + x[:0].sum()  # keeps the autograd graph
    return _FixedSpMM.apply(a, a_t, x.contiguous())
