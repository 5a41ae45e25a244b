r"""Losses of the affinity CNN of A2GNN / AffinityNet (A 8-13) over window edge lists."""
from __future__ import annotations

import torch
from torch import Tensor

from ..._checks import check_choice, check_edge_index, check_tensor, value_checks

VARIANTS = ("code", "paper")
NORMALIZATIONS = ("pairs", "none")


def affinity_loss(
    affinity: Tensor,
    edge_index: Tensor,
    labels: Tensor,
    variant: str = "code",
    ignore_index: int = 255,
    background: int = 0,
    eps: float = 1e-5,
) -> Tensor:
    r"""Affinity cross-entropy on labelled pixel pairs (A 6, 7, 10).

    A pair (edge) is used when both ends are labelled; it is positive when the labels agree
    and negative otherwise (Eq. 6). With :math:`D_{ij}` the predicted affinity (Eq. 8,
    :func:`pyg_wsss.graphs.feature_affinity`):

    * ``variant="code"`` (AffinityNet/PSA and A2GNN's code): positives split by the class
      at the *target* node into background and foreground pairs,
      :math:`\mathcal{L} = \tfrac14 \ell_{bg+} + \tfrac14 \ell_{fg+} + \tfrac12 \ell_{-}`;
    * ``variant="paper"`` (Eq. 10): :math:`\ell_{+} + \ell_{-}`;

    each :math:`\ell` the mean of :math:`-\log(D + \epsilon)` (positives) or
    :math:`-\log(1 + \epsilon - D)` (negatives) over its pairs, divided by ``count + eps``
    as the code does (an empty set gives 0, never NaN).

    Args:
        affinity: ``[E]`` affinities in ``[0, 1]``.
        edge_index: ``[2, E]`` pixel pairs (window edges).
        labels: ``[N]`` seed labels (``ignore_index`` = unlabelled).
        variant: ``"code"`` or ``"paper"``.
        ignore_index, background: Label conventions.
        eps: Numerical constant of the code.

    Example:
        >>> import torch
        >>> from pyg_wsss.graphs import pixel_graph
        >>> from pyg_wsss.nn.functional import affinity_loss
        >>> g = pixel_graph(2, 2, 1, shape="square")
        >>> affinity = torch.full((g.edge_index.size(1),), 0.9)
        >>> seeds = torch.tensor([0, 0, 1, 255])
        >>> affinity_loss(affinity, g.edge_index, seeds)  # the negative pairs cost most
        tensor(1.1776)
        >>> affinity_loss(affinity, g.edge_index, seeds, variant="paper")
        tensor(2.4078)
    """
    check_tensor(affinity, "affinity", ndim=1, floating=True, finite=True)
    check_tensor(labels, "labels", ndim=1, floating=False)
    check_edge_index(edge_index, labels.numel())
    check_choice(variant, VARIANTS, "variant")
    if affinity.numel() != edge_index.size(1):
        raise ValueError(
            f"'affinity' has {affinity.numel()} entries for {edge_index.size(1)} edges"
        )
    if (
        affinity.numel()
        and value_checks(affinity)
        and bool((affinity.min() < 0) | (affinity.max() > 1))
    ):
        raise ValueError("'affinity' must be in [0, 1]")
    if value_checks(labels) and bool(((labels < 0) & (labels != ignore_index)).any()):
        raise ValueError(f"'labels' has negative values (other than {ignore_index})")
    lab = labels.long().to(affinity.device)
    src, dst = edge_index[0].long(), edge_index[1].long()
    ls, ld = lab[src], lab[dst]
    valid = (ls != ignore_index) & (ld != ignore_index)
    pos = valid & (ls == ld)
    neg = valid & (ls != ld)
    pos_loss = -torch.log(affinity + eps)
    neg_loss = -torch.log(1.0 + eps - affinity)

    def mean(values: Tensor, mask: Tensor) -> Tensor:
        m = mask.to(values.dtype)
        return (values * m).sum() / (m.sum() + eps)

    if variant == "paper":
        return mean(pos_loss, pos) + mean(neg_loss, neg)
    bg = pos & (ld == background)
    fg = pos & (ld != background)
    return mean(pos_loss, bg) / 4 + mean(pos_loss, fg) / 4 + mean(neg_loss, neg) / 2


def affinity_regularized_loss(
    features: Tensor,
    edge_index: Tensor,
    kernel: Tensor,
    normalization: str = "pairs",
) -> Tensor:
    r"""Affinity regularised loss :math:`\mathcal{L}_{Ar}` (A 11-13):

    .. math::
        \mathcal{L}_{Ar} = \frac{1}{Z} \sum_i \sum_{j \in R(i)} G(i, j)
            \frac{\|F_A(i) - F_A(j)\|_1}{d_A}

    over all (labelled or not) window pairs, with the Gaussian colour/position kernel
    :math:`G` (:func:`pyg_wsss.nn.functional.gated_crf.gated_crf_kernel`, zero on
    self-pairs). ``normalization="pairs"`` (code): :math:`Z` = number of (non-self) pairs;
    ``"none"`` (Eq. 12 as printed): :math:`Z = 1`.

    Args:
        features: ``[N, d_A]`` affinity features :math:`F_A`.
        edge_index: ``[2, E]`` window pairs.
        kernel: ``[E]`` kernel values (not differentiated).
        normalization: ``"pairs"`` or ``"none"``.

    Example:
        >>> import torch
        >>> from pyg_wsss.graphs import pixel_graph
        >>> from pyg_wsss.nn.functional import affinity_regularized_loss
        >>> g = pixel_graph(2, 2, 1, shape="square")
        >>> feats = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
        >>> kernel = torch.ones(g.edge_index.size(1))
        >>> affinity_regularized_loss(feats, g.edge_index, kernel)  # 8 of 12 pairs differ
        tensor(0.6667)
    """
    check_tensor(features, "features", ndim=2, floating=True, finite=True)
    check_edge_index(edge_index, features.size(0))
    check_tensor(kernel, "kernel", ndim=1, floating=True, finite=True)
    check_choice(normalization, NORMALIZATIONS, "normalization")
    if kernel.numel() != edge_index.size(1):
        raise ValueError(f"'kernel' has {kernel.numel()} entries for {edge_index.size(1)} edges")
    src, dst = edge_index[0].long(), edge_index[1].long()
    not_self = src != dst
    d = max(features.size(1), 1)
    dist = (features[dst] - features[src]).abs().sum(-1) / d
    k = torch.where(not_self, kernel.detach(), torch.zeros_like(kernel)).to(dist.dtype)
    total = (k * dist).sum()
    if normalization == "none":
        return total
    return total / not_self.sum().clamp(min=1).to(total.dtype)
