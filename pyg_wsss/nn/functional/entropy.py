r"""Entropy of the predictions on unlabelled nodes (W 5)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..._checks import check_choice, check_finite, check_tensor
from .cross_entropy import REDUCTIONS, _check_batch, _upcast, graph_mean, reduce_graphs

VARIANTS = ("paper", "code")


def entropy_loss(
    input: Tensor,
    labels_or_mask: Tensor | None = None,
    variant: str = "paper",
    ignore_index: int = 255,
    batch: Tensor | None = None,
    num_graphs: int | None = None,
    reduction: str = "mean",
    log_input: bool = False,
) -> Tensor:
    r"""Mean prediction entropy over the unlabelled nodes (W 5):

    .. math::
        \ell_{ent} = -\frac{1}{|\mathcal{V}_{ig}|} \sum_{i \in \mathcal{V}_{ig}}
                     \kappa \sum_{c} (q_i)_c \log (q_i)_c

    with :math:`\kappa = 1` for ``variant="paper"`` (sum over classes, as printed) and
    :math:`\kappa = 1/K` for ``variant="code"`` (the authors' code takes the mean over the
    ``K`` class entries of :math:`-q \log q`, i.e. the paper's value divided by ``K = 21``).
    Both are computed from the log-probabilities, so :math:`0 \log 0 = 0` without NaN.
    No unlabelled node gives 0.

    Args:
        input: ``[N, K]`` logits or log-probabilities (:func:`torch.log_softmax` is applied,
            which leaves log-probabilities unchanged).
        labels_or_mask: ``[N]`` integer labels (nodes equal to ``ignore_index`` are the
            unlabelled set), or a ``[N]`` bool mask of the nodes to include, or ``None`` (all
            nodes).
        variant: ``"paper"`` or ``"code"`` (see above).
        ignore_index: Unlabelled label value (default 255).
        batch, num_graphs: Optional PyG batch vector; the mean is taken per graph.
        log_input: If ``True``, ``input`` already holds log-probabilities and
            :func:`torch.log_softmax` is skipped (saves work inside training loops).
        reduction: ``"mean"`` / ``"sum"`` over graphs or ``"none"`` (``[num_graphs]``).

    Shapes:
        input ``[N, K]``, labels_or_mask ``[N]`` -> ``[]`` or ``[B]``.

    Example:
        >>> import torch
        >>> from pyg_wsss.nn.functional import entropy_loss
        >>> logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 1.5, 0.3],
        ...                        [0.2, 0.1, 2.2], [1.0, 1.0, 1.0]])
        >>> labels = torch.tensor([0, 1, 255, 255])  # the entropy of nodes 2 and 3
        >>> entropy_loss(logits, labels)
        tensor(0.8738)
        >>> entropy_loss(logits, labels, variant="code")  # divided by K = 3
        tensor(0.2913)
    """
    check_tensor(input, "input", ndim=2, floating=True)
    check_choice(variant, VARIANTS, "variant")
    check_choice(reduction, REDUCTIONS, "reduction")
    n, k = input.shape
    if labels_or_mask is None:
        mask = torch.ones(n, dtype=torch.bool, device=input.device)
    else:
        check_tensor(labels_or_mask, "labels_or_mask", ndim=1)
        if labels_or_mask.is_floating_point():
            raise TypeError(
                "'labels_or_mask' must be an integer label tensor or a bool mask, got "
                f"{labels_or_mask.dtype}"
            )
        if labels_or_mask.numel() != n:
            raise ValueError(
                f"'labels_or_mask' has {labels_or_mask.numel()} entries but 'input' has {n} rows"
            )
        if labels_or_mask.dtype == torch.bool:
            mask = labels_or_mask
        else:
            mask = labels_or_mask == ignore_index
    batch, b = _check_batch(batch, n, num_graphs)
    check_finite(input, "input", nan_only=True)  # -inf log-probabilities are valid
    out_dtype = input.dtype
    input = _upcast(input)  # half / bfloat16: computed in float32
    logp = input if log_input else F.log_softmax(input, dim=-1)
    finite = torch.where(torch.isfinite(logp), logp, torch.zeros_like(logp))  # 0 log 0 = 0
    ent = -(logp.exp() * finite).sum(-1)
    if variant == "code":
        ent = ent / k
    return reduce_graphs(
        graph_mean(ent, mask.to(input.device), batch.to(input.device), b), reduction
    ).to(out_dtype)
