r"""Gated-CRF (Potts relaxation) regulariser of A2GNN (A 22 in its working form)."""
from __future__ import annotations

import torch
from torch import Tensor

from ..._checks import check_choice, check_edge_index, check_tensor
from .cross_entropy import REDUCTIONS, _check_batch, _upcast, reduce_graphs


def gated_crf_kernel(
    colour: Tensor,
    pos: Tensor,
    edge_index: Tensor,
    sigma_rgb: float | None = None,
    sigma_xy: float | None = None,
    preset: str | None = "a2gnn",
) -> Tensor:
    r"""The Gated-CRF kernel on the edges of a pixel graph, self-edges zeroed:

    .. math::
        K_{ij} = \exp\left(-\frac{\|p_i - p_j\|^2}{2\sigma_{xy}^2}
                 - \frac{\|c_i - c_j\|^2}{2\sigma_{rgb}^2}\right) [i \ne j]

    with A2GNN's ``sigma_xy = 6`` (grid units) and ``sigma_rgb = 0.1`` (on the
    ImageNet-normalised image) by default, through
    :func:`pyg_wsss.graphs.gaussian_edge_weight`. Pass explicit sigmas with ``preset=None``.

    Returns:
        ``[E]`` kernel values.

    Example:
        >>> import torch
        >>> from pyg_wsss.graphs import pixel_graph
        >>> from pyg_wsss.nn.functional import gated_crf_kernel
        >>> g = pixel_graph(2, 2, 1, shape="square")
        >>> colour = torch.tensor([[0.0, 0, 0], [0, 0, 0], [1, 1, 1], [1, 1, 1]])
        >>> k = gated_crf_kernel(colour, g.pos, g.edge_index)  # ~0 across the colour edge
        >>> k.shape, k.max().round(decimals=4)
        (torch.Size([12]), tensor(0.9862))
    """
    from ...graphs.weights import gaussian_edge_weight

    if sigma_rgb is not None or sigma_xy is not None:
        preset = None
    k = gaussian_edge_weight(colour, pos, edge_index, sigma_rgb, sigma_xy, preset=preset)
    return torch.where(edge_index[0] == edge_index[1], torch.zeros_like(k), k)


def gated_crf_loss(
    input: Tensor,
    edge_index: Tensor,
    kernel: Tensor,
    batch: Tensor | None = None,
    num_graphs: int | None = None,
    from_logits: bool = True,
    reduction: str = "sum",
    method: str = "spmm",
) -> Tensor:
    r"""Gated-CRF / Potts regularised loss over an edge list (A 22, working form):

    .. math::
        \mathcal{L}_{reg} = \frac{1}{N} \sum_i \sum_{j \in \mathrm{win}(i), j \ne i}
            K_{ij} \left(1 - \mathbf{y}_i^\top \mathbf{y}_j\right)

    where :math:`\mathbf{y} = \mathrm{softmax}(\text{logits})`. Eq. 22 as printed (a sum of
    :math:`G\, O\, O` over *all* class pairs) is constant because the probabilities sum to
    one; the authors' code implements the Potts form above (Obukhov et al.'s Gated CRF,
    Tang et al.'s relaxation). Its value differs from the code's by a constant only (the
    code includes zero-padded border positions in the first term); gradients agree.
    Self-edges never contribute (:math:`1 - \mathbf{y}_i^\top \mathbf{y}_i` is not a
    pairwise term); use :func:`gated_crf_kernel` for the kernel.

    Args:
        input: ``[N, K]`` logits (``from_logits=True``) or probabilities.
        edge_index: ``[2, E]`` window edges (both directions, as in the code's unfold).
        kernel: ``[E]`` kernel values :math:`K_{ij}` (not differentiated through).
        batch: Optional ``[N]`` graph of each node: the loss is per graph, each divided by
            its own node count.
        num_graphs: Number of graphs (inferred from ``batch`` when omitted).
        from_logits: Apply softmax to ``input``.
        reduction: Over graphs: ``"sum"`` (default: per-image problems summed, each image
            gets the gradient it would get alone), ``"mean"`` or ``"none"``.
        method: ``"spmm"`` (:math:`\sum_i y_i \cdot (K Y)_i` by a cached CSR SpMM,
            :func:`pyg_wsss.ops.spmm`: no ``[E, K]`` temporary) or ``"edges"`` (the
            gather/scatter reference). Under :func:`torch.compile` the ``"edges"`` path is
            traced (sparse CSR tensors do not trace; the compiler fuses the gathers).

    Returns:
        Scalar, or ``[num_graphs]`` with ``reduction="none"``.

    Example:
        >>> import torch
        >>> from pyg_wsss.graphs import pixel_graph
        >>> from pyg_wsss.nn.functional import gated_crf_loss
        >>> g = pixel_graph(2, 2, 1, shape="square")
        >>> probs = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
        >>> kernel = torch.ones(g.edge_index.size(1))
        >>> gated_crf_loss(probs, g.edge_index, kernel, from_logits=False)  # 8 cut pairs / 4
        tensor(2.)
    """
    check_tensor(input, "input", ndim=2, floating=True, finite=True)
    n = input.size(0)
    check_edge_index(edge_index, n)
    check_tensor(kernel, "kernel", ndim=1, floating=True, finite=True)
    if kernel.numel() != edge_index.size(1):
        raise ValueError(
            f"'kernel' has {kernel.numel()} entries for {edge_index.size(1)} edges"
        )
    check_choice(reduction, REDUCTIONS, "reduction")
    check_choice(method, ("spmm", "edges"), "method")
    batch, b = _check_batch(batch, n, num_graphs)
    batch = batch.to(input.device)
    out_dtype = input.dtype
    input = _upcast(input)  # half / bfloat16: computed in float32, returned in their dtype
    y = torch.softmax(input, dim=-1) if from_logits else input
    src, dst = edge_index[0].long(), edge_index[1].long()
    k = torch.where(src == dst, torch.zeros_like(kernel), kernel).to(y.dtype)
    if method == "spmm" and not torch.compiler.is_compiling():
        from ...ops import spmm

        # sum_{j -> i} K_ji (1 - y_i . y_j) = sum_j K_ji - y_i . (K Y)_i, per target i
        per_node = y.new_zeros(n).index_add(0, dst, k) - (y * spmm(edge_index, k, y)).sum(-1)
        total = y.new_zeros(b).index_add(0, batch, per_node)
    else:
        pair = (y[dst] * y[src]).sum(-1)
        per_edge = k * (1.0 - pair)
        total = y.new_zeros(b).index_add(0, batch[dst], per_edge)
    count = y.new_zeros(b).index_add(0, batch, torch.ones_like(y[:, 0]))
    return reduce_graphs(total / count.clamp(min=1), reduction).to(out_dtype)
