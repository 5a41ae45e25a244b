r"""Fused edge attention over a CSR graph: SDDMM logits, segment softmax, SpMM aggregation.

.. math::
    s_{ij} = \langle \hat{q}_i, \hat{k}_j \rangle, \qquad
    \ell_{ij} = w\, s_{ij} + \beta\, g(s_{ij})\, e_{ij}, \qquad
    \alpha_{ij} = \operatorname{softmax}_{j \in \mathcal{N}(i)} \ell_{ij}, \qquad
    \mathbf{out}_i = \sum_{j \in \mathcal{N}(i)} \alpha_{ij} \mathbf{v}_j

with :math:`\hat{q}, \hat{k}` the L2-normalised queries/keys (``score="cosine"``, A2GNN's and
AGNN's attention) or the raw ones (``score="dot"``), and :math:`g` the negative-cosine rule:
``"indicator"`` :math:`g(s) = [s > 0]` (A 18), ``"mask"`` (drop :math:`s < 0` neighbours,
A2GNN's code), ``"none"`` :math:`g = 1`.

Forward and backward are written with ``torch.sparse.sampled_addmm`` (SDDMM) and CSR
``torch.sparse.mm`` (SpMM) only: no ``[E, F]`` tensor is ever built, so memory is
``O(E + N F)``. The softmax is accumulated in float32 (or float64 for float64 inputs), so
half/bfloat16 features and logits up to ``1e4`` give no overflow or NaN.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import Function
from torch.autograd.function import once_differentiable
from torch_geometric.utils import softmax as pyg_softmax

from .._checks import check_choice, check_finite, check_tensor
from .csr import CSRGraph, to_csr
from .spmm import _compute_dtype, sddmm

__all__ = ["edge_attention", "edge_softmax"]

SCORES = ("cosine", "dot")
NEGATIVE = ("indicator", "mask", "none")


def edge_softmax(csr: CSRGraph, logits: Tensor) -> Tensor:
    """Softmax of CSR-ordered ``logits`` over each target's incoming edges (``-inf`` entries
    get 0; a row whose entries are all ``-inf`` is all 0, never NaN).

    This is :func:`torch_geometric.utils.softmax` with ``ptr = csr.rowptr`` (segment
    reductions over the CSR rows): on a 146k-edge pixel graph it is 3-5x faster, forward and
    backward, than the scatter-based formulation kept as :func:`_edge_softmax_scatter`
    (``benchmarks/results/softmax.md``). PyG's segment max maps the ``-inf`` of an all-masked
    row to 0, so such rows give ``0 / 1e-16 = 0``.
    """
    if not isinstance(csr, CSRGraph):
        raise TypeError(f"'csr' must be a CSRGraph (see to_csr), got {type(csr).__name__}")
    check_tensor(logits, "logits", ndim=1, floating=True)
    if logits.numel() != csr.num_edges:
        raise ValueError(
            f"'logits' has {logits.numel()} entries but the graph has {csr.num_edges} edges"
        )
    if csr.num_edges == 0:
        return logits
    return pyg_softmax(logits, csr.row, ptr=csr.rowptr, num_nodes=csr.num_dst)


def _edge_softmax_scatter(csr: CSRGraph, logits: Tensor) -> Tensor:
    """The scatter-based reference of :func:`edge_softmax` (``scatter_reduce`` amax, exp,
    ``index_add_`` row sums; exact, without PyG's ``1e-16`` in the denominator)."""
    if csr.num_edges == 0:
        return logits
    row = csr.row
    rowmax = logits.new_full((csr.num_dst,), float("-inf"))
    rowmax = rowmax.scatter_reduce(0, row, logits, "amax", include_self=False)
    rowmax = torch.where(torch.isfinite(rowmax), rowmax, torch.zeros_like(rowmax))
    ex = torch.exp(logits - rowmax[row])
    den = csr.row_sum(ex)
    den = torch.where(den > 0, den, torch.ones_like(den))
    return ex / den[row]


def _normalize(x: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    norm = x.norm(dim=-1, keepdim=True).clamp_min(eps)
    return x / norm, norm


def _normalize_backward(xn: Tensor, norm: Tensor, grad: Tensor, eps: float) -> Tensor:
    # d(x / max(|x|, eps)) : projection off xn where |x| > eps, plain scaling where clamped
    proj = grad - xn * (xn * grad).sum(-1, keepdim=True)
    return torch.where(norm > eps, proj, grad) / norm


class _EdgeAttention(Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        w: Tensor,
        beta: Tensor,
        e: Tensor | None,
        mask: Tensor | None,
        csr: CSRGraph,
        cosine: bool,
        negative: str,
        eps: float,
    ) -> tuple[Tensor, Tensor]:
        shared = q is k  # self-attention on one feature matrix: normalise and backprop once
        if cosine:
            qn, qnorm = _normalize(q, eps)
            kn, knorm = (qn, qnorm) if shared else _normalize(k, eps)
        else:
            qn, kn, qnorm, knorm = q, k, None, None
        ctx.shared = shared
        s = sddmm(csr, qn, kn)
        w_e = w[csr.row] if w.dim() == 1 else w  # per-target temperatures
        logits = w_e * s
        ind = None
        if e is not None:
            ind = (s > 0).to(s.dtype) if negative == "indicator" else None
            logits = logits + beta * (e * ind if ind is not None else e)
        if negative == "mask":
            logits = logits.masked_fill(s < 0, float("-inf"))
        if mask is not None:
            logits = logits.masked_fill(~mask, float("-inf"))
        alpha = edge_softmax(csr, logits)
        if csr.num_edges:
            out = torch.sparse.mm(csr.matrix(alpha), v)
        else:
            out = v.new_zeros(csr.num_dst, v.size(1))
        ctx.csr, ctx.cosine, ctx.eps = csr, cosine, eps
        ctx.has_e = e is not None
        ctx.save_for_backward(qn, kn, v, qnorm, knorm, s, alpha, w, beta, e, ind)
        return out, alpha

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor, grad_alpha: Tensor | None):  # type: ignore[override]
        qn, kn, v, qnorm, knorm, s, alpha, w, beta, e, ind = ctx.saved_tensors
        csr: CSRGraph = ctx.csr
        needs = ctx.needs_input_grad
        grad_out = grad_out.contiguous()
        gq = gk = gv = gw = gbeta = ge = None
        if csr.num_edges == 0:
            zeros = [torch.zeros_like(t) if n else None for t, n in zip((qn, kn, v), needs[:3])]
            gw = torch.zeros_like(w) if needs[3] else None
            gbeta = torch.zeros_like(beta) if needs[4] else None
            ge = torch.zeros_like(e) if (needs[5] and e is not None) else None
            return (*zeros, gw, gbeta, ge, None, None, None, None, None)
        if needs[2]:
            gv = torch.sparse.mm(csr.matrix_t(alpha), grad_out)
        g_alpha = sddmm(csr, grad_out, v)
        if grad_alpha is not None:
            g_alpha = g_alpha + grad_alpha
        g_logit = alpha * (g_alpha - csr.row_sum(alpha * g_alpha)[csr.row])
        if needs[3]:
            gw = csr.row_sum(g_logit * s) if w.dim() == 1 else (g_logit * s).sum().reshape(w.shape)
        if ctx.has_e:
            edge_term = e * ind if ind is not None else e
            if needs[4]:
                gbeta = (g_logit * edge_term).sum().reshape(beta.shape)
            if needs[5]:
                ge = g_logit * beta * (ind if ind is not None else 1.0)
        if ctx.shared and (needs[0] or needs[1]):
            gs = g_logit * (w[csr.row] if w.dim() == 1 else w)
            g = torch.sparse.mm(csr.matrix(gs), kn) + torch.sparse.mm(csr.matrix_t(gs), qn)
            gq = _normalize_backward(qn, qnorm, g, ctx.eps) if ctx.cosine else g
        elif needs[0] or needs[1]:
            gs = g_logit * (w[csr.row] if w.dim() == 1 else w)
            if needs[0]:
                gq = torch.sparse.mm(csr.matrix(gs), kn)
                if ctx.cosine:
                    gq = _normalize_backward(qn, qnorm, gq, ctx.eps)
            if needs[1]:
                gk = torch.sparse.mm(csr.matrix_t(gs), qn)
                if ctx.cosine:
                    gk = _normalize_backward(kn, knorm, gk, ctx.eps)
        return gq, gk, gv, gw, gbeta, ge, None, None, None, None, None


def edge_attention(
    x: Tensor,
    edge_index: Tensor | CSRGraph,
    *,
    score: str = "cosine",
    temperature: Tensor | float = 1.0,
    edge_weight: Tensor | None = None,
    edge_scale: Tensor | float = 0.0,
    negative: str = "none",
    edge_mask: Tensor | None = None,
    query: Tensor | None = None,
    key: Tensor | None = None,
    num_nodes: int | None = None,
    eps: float = 1e-12,
    return_attention_weights: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    r"""Fused attention aggregation (see the module docstring for the equations).

    Many parameters because: they are the keyword-only options of one fused kernel (score,
    temperature, edge term, masks, separate queries/keys), each with a default, in the style
    of PyG's functional API; a config object would hide them from ``torch.compile`` callers.

    Args:
        x: ``[N, F]`` values (and queries/keys unless given).
        edge_index: ``[2, E]`` (row 0 source ``j``, row 1 target ``i``) or a :class:`CSRGraph`
            (sorted once and cached by :func:`~pyg_wsss.ops.to_csr`).
        score: ``"cosine"`` or ``"dot"``.
        temperature: :math:`w`, a float, a (learnable) 0-dim tensor, or a ``[N]`` tensor of
            per-target temperatures :math:`w_i` (e.g. one per image of a batch, indexed by
            the batch vector).
        edge_weight: ``[E]`` edge term :math:`e_{ij}` in edge order, or ``None``.
        edge_scale: :math:`\beta`, a float or a (learnable) 0-dim tensor.
        negative: ``"indicator" | "mask" | "none"``.
        edge_mask: ``[E]`` bool in edge order; ``False`` edges are left out of the softmax
            (their attention is 0).
        query, key: ``[N, F_qk]`` optional separate queries and keys.
        num_nodes: Number of nodes (default ``x.size(0)``).
        eps: Norm clamp of the cosine (PyG's ``F.normalize`` convention).
        return_attention_weights: Also return :math:`\alpha` ``[E]`` in edge order.

    Returns:
        ``[N, F]`` (and ``[E]`` attention weights).

    Shapes:
        x ``[N, F]``, edge_index ``[2, E]``, edge_weight ``[E]`` -> ``[N, F]``.
    """
    check_tensor(x, "x", ndim=2, floating=True, finite=True)
    check_choice(score, SCORES, "score")
    check_choice(negative, NEGATIVE, "negative")
    n = x.size(0) if num_nodes is None else int(num_nodes)
    csr = edge_index if isinstance(edge_index, CSRGraph) else to_csr(edge_index, n)
    if csr.num_src != x.size(0) or csr.num_dst != n:
        raise ValueError(
            f"'x' has {x.size(0)} nodes but the graph has {csr.num_src} sources/{csr.num_dst} "
            "targets"
        )
    q = x if query is None else query
    k = x if key is None else key
    for name, t in (("query", q), ("key", k)):
        check_tensor(t, name, ndim=2, floating=True)
    if q.size(0) != n or k.size(0) != x.size(0) or q.size(1) != k.size(1):
        raise ValueError("'query' must be [N, F_qk] and 'key' [N, F_qk] like 'x'")
    dtype = x.dtype
    work = _compute_dtype(dtype)
    w = torch.as_tensor(temperature, dtype=work, device=x.device)
    if w.dim() > 1 or (w.dim() == 1 and w.numel() != n):
        raise ValueError(
            f"'temperature' must be a scalar or have {n} entries, got {tuple(w.shape)}"
        )
    mask = None
    if edge_mask is not None:
        if edge_mask.dtype != torch.bool or edge_mask.shape != (csr.num_edges,):
            raise ValueError(f"'edge_mask' must be a bool tensor of shape [{csr.num_edges}]")
        mask = csr.to_csr_order(edge_mask)
    beta = torch.as_tensor(edge_scale, dtype=work, device=x.device)
    e = None
    if edge_weight is not None:
        check_tensor(edge_weight, "edge_weight", ndim=1, floating=True)
        if edge_weight.numel() != csr.num_edges:
            raise ValueError(
                f"'edge_weight' has {edge_weight.numel()} entries but the graph has "
                f"{csr.num_edges} edges"
            )
        check_finite(edge_weight, "edge_weight")
        e = csr.to_csr_order(edge_weight.to(work))
    out, alpha = _EdgeAttention.apply(
        q.to(work).contiguous(),
        k.to(work).contiguous(),
        x.to(work).contiguous(),
        w,
        beta,
        e,
        mask,
        csr,
        score == "cosine",
        negative,
        eps,
    )
    out = out.to(dtype)
    if return_attention_weights:
        return out, csr.to_edge_order(alpha)
    return out
