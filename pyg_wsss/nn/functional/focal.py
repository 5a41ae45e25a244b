"""Multi-label (sigmoid) focal loss of the knowledge-graph WSSS classifier (K 4-6)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from pyg_wsss._checks import check_choice, check_positive, check_tensor, value_checks

__all__ = ["multilabel_focal_loss"]


def multilabel_focal_loss(
    logits: Tensor,
    targets: Tensor,
    gamma: float = 2.0,
    detach_modulator: bool = False,
    reduction: str = "mean",
) -> Tensor:
    r"""Sigmoid focal loss over independent binary labels (Zhang et al., EAAI 2024, Eq. 5).

    For every element (image :math:`b`, class :math:`c`) with logit :math:`x` and target
    :math:`y \in [0, 1]`:

    .. math::
        \ell_{\mathrm{BCE}} = -y \log \sigma(x) - (1 - y) \log(1 - \sigma(x)), \qquad
        p_t = e^{-\ell_{\mathrm{BCE}}}, \qquad
        L_{\mathrm{fl}} = (1 - p_t)^{\gamma}\, \ell_{\mathrm{BCE}}

    (the paper writes :math:`s_i = e^{-\log p_t}`; the working form is :math:`p_t =
    e^{-\ell_{\mathrm{BCE}}}`, the probability of the target). The classifier loss of the paper
    is :math:`L = L_{\mathrm{cls}} + \lambda L_{\mathrm{fl}}` (Eq. 6) with :math:`\gamma = 2`.

    Paper or code: ``detach_modulator=False`` (default, the paper's Eq. 5) differentiates
    through :math:`(1 - p_t)^\gamma`; its value then equals torchvision's
    ``sigmoid_focal_loss(alpha=-1, gamma=gamma)``. ``detach_modulator=True`` is what the
    authors' code does: the modulating factor is computed from a detached :math:`p_t` and acts
    as a constant per-element weight (same value, different gradient).

    Args:
        logits: Raw scores, any shape (typically ``[B, C]``).
        targets: Targets in ``[0, 1]`` (multi-hot), same shape as ``logits``.
        gamma: Focusing parameter :math:`\gamma \ge 0` (``0`` gives plain BCE).
        detach_modulator: Treat :math:`(1 - p_t)^\gamma` as a constant (authors' code).
        reduction: ``"mean"`` (over all elements, as the code), ``"sum"`` or ``"none"``.

    Shapes:
        - **input:** logits :math:`(*)`, targets :math:`(*)`
        - **output:** scalar, or :math:`(*)` for ``reduction="none"``. An empty input gives
          ``0`` for ``"mean"`` and ``"sum"`` (never NaN).

    Example:
        >>> import torch
        >>> from pyg_wsss.nn.functional import multilabel_focal_loss
        >>> logits, targets = torch.tensor([[2.0, -1.0]]), torch.tensor([[1.0, 0.0]])
        >>> multilabel_focal_loss(logits, targets)  # easy examples are down-weighted
        tensor(0.0122)
        >>> multilabel_focal_loss(logits, targets, gamma=0)  # plain BCE
        tensor(0.2201)
    """
    check_tensor(logits, "logits", floating=True, finite=True)
    check_tensor(targets, "targets")
    if targets.shape != logits.shape:
        raise ValueError(
            f"'targets' must have the shape of 'logits' {tuple(logits.shape)}, "
            f"got {tuple(targets.shape)}"
        )
    check_positive(gamma, "gamma", strict=False)
    check_choice(reduction, ("mean", "sum", "none"), "reduction")
    targets = targets.to(logits.dtype)
    if (
        targets.numel()
        and value_checks(targets)  # a value check: follows the validation level
        and bool(~torch.isfinite(targets).all() | (targets.min() < 0) | (targets.max() > 1))
    ):
        raise ValueError("'targets' must have values in [0, 1]")

    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    # 1 - p_t = 1 - exp(-bce) = -expm1(-bce), accurate for small bce.
    one_minus_pt = -torch.expm1(-bce)
    if detach_modulator:
        one_minus_pt = one_minus_pt.detach()
    modulator = one_minus_pt.clamp_min(0).pow(gamma) if gamma != 0 else torch.ones_like(bce)
    loss = modulator * bce
    if reduction == "none":
        return loss
    if loss.numel() == 0:
        return loss.sum()
    return loss.mean() if reduction == "mean" else loss.sum()
