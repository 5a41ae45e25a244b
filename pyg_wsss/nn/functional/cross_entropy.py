r"""Cross-entropy over the labelled nodes of partially labelled graphs (W 3-4, A 21)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..._checks import check_batch, check_choice, check_finite, check_tensor, value_checks

REDUCTIONS = ("mean", "sum", "none")
_LOW = (torch.float16, torch.bfloat16)


def _upcast(x: Tensor) -> Tensor:
    """Half / bfloat16 losses are computed in float32 (and returned in the input dtype)."""
    return x.float() if x.dtype in _LOW else x


def _check_batch(
    batch: Tensor | None, num_nodes: int, num_graphs: int | None
) -> tuple[Tensor, int]:
    """Validate a ``batch`` vector (``None`` = one graph) and return ``(batch, num_graphs)``
    (:func:`pyg_wsss._checks.check_batch`: length, dtype and the range ``[0, num_graphs)``)."""
    return check_batch(batch, num_nodes, num_graphs)


def graph_mean(values: Tensor, mask: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
    """Per-graph mean of ``values[mask]``: ``[num_graphs]``, 0 for graphs with no masked node
    (never NaN). ``values``, ``mask`` and ``batch`` are ``[N]``."""
    weight = mask.to(values.dtype)
    masked = torch.where(mask, values, torch.zeros_like(values))
    total = values.new_zeros(num_graphs).index_add(0, batch, masked)
    count = values.new_zeros(num_graphs).index_add(0, batch, weight)
    return total / count.clamp(min=1)


def reduce_graphs(per_graph: Tensor, reduction: str) -> Tensor:
    """``"mean"`` over graphs (0 for no graph), ``"sum"`` or ``"none"`` (``[num_graphs]``)."""
    if reduction == "none":
        return per_graph
    if reduction == "sum":
        return per_graph.sum()
    return per_graph.sum() / max(per_graph.numel(), 1)


def partial_cross_entropy(
    input: Tensor,
    labels: Tensor,
    balanced: bool = True,
    ignore_index: int = 255,
    background: int = 0,
    batch: Tensor | None = None,
    num_graphs: int | None = None,
    reduction: str = "mean",
    log_input: bool = False,
) -> Tensor:
    r"""Cross-entropy over the labelled nodes of a partially labelled graph.

    With ``balanced=True`` (WSGCN, W 3-4; also what A2GNN's code uses) the foreground and
    background nodes are averaged separately and the two means added:

    .. math::
        \ell = -\frac{1}{|\mathcal{V}_{fg}|} \sum_{i \in \mathcal{V}_{fg}} \log (q_i)_{p_i}
               -\frac{1}{|\mathcal{V}_{bg}|} \sum_{i \in \mathcal{V}_{bg}} \log (q_i)_{p_i}

    where :math:`\mathcal{V}_{bg}` are the nodes labelled ``background`` and
    :math:`\mathcal{V}_{fg}` the other labelled nodes. With ``balanced=False`` it is the plain
    mean over all labelled nodes (A 21). An empty group contributes 0 (the authors' code
    returns NaN there), so a graph without any label gives 0.

    The input may be logits or log-probabilities: :func:`torch.log_softmax` is applied, which
    leaves log-probabilities unchanged.

    Args:
        input: ``[N, K]`` logits or log-probabilities (half / bfloat16 are computed in
            float32; the result has ``input``'s dtype).
        labels: ``[N]`` integer labels in ``[0, K)`` or ``ignore_index``.
        balanced: fg/bg balanced form (W 3-4) or plain mean (A 21).
        ignore_index: Label of unlabelled nodes (default 255).
        background: The background class id (default 0).
        batch: Optional ``[N]`` graph index of each node (PyG ``Batch.batch``): the loss is
            computed per graph.
        num_graphs: Number of graphs (inferred from ``batch`` if omitted).
        log_input: If ``True``, ``input`` already holds log-probabilities and
            :func:`torch.log_softmax` is skipped (saves work inside training loops).
        reduction: ``"mean"`` over graphs, ``"sum"`` over graphs (so that each graph's
            gradient is the one it gets alone), or ``"none"`` (``[num_graphs]``).

    Returns:
        A scalar, or ``[num_graphs]`` with ``reduction="none"``.

    Shapes:
        input ``[N, K]``, labels ``[N]``, batch ``[N]`` -> ``[]`` or ``[B]``.

    Example:
        >>> import torch
        >>> from pyg_wsss.nn.functional import partial_cross_entropy
        >>> logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 1.5, 0.3],
        ...                        [0.2, 0.1, 2.2], [1.0, 1.0, 1.0]])
        >>> labels = torch.tensor([0, 1, 255, 255])  # two seeds, two unlabelled nodes
        >>> partial_cross_entropy(logits, labels)  # fg mean + bg mean
        tensor(0.6781)
        >>> partial_cross_entropy(logits, labels, balanced=False)
        tensor(0.3391)
        >>> batch = torch.tensor([0, 0, 1, 1])  # graph 1 has no seed: 0, never NaN
        >>> partial_cross_entropy(logits, labels, batch=batch, num_graphs=2, reduction="none")
        tensor([0.6781, 0.0000])
    """
    check_tensor(input, "input", ndim=2, floating=True)
    check_tensor(labels, "labels", ndim=1, floating=False)
    check_choice(reduction, REDUCTIONS, "reduction")
    n, k = input.shape
    if labels.numel() != n:
        raise ValueError(f"'labels' has {labels.numel()} entries but 'input' has {n} rows")
    labels = labels.long()
    labelled = labels != ignore_index
    if (
        value_checks(labels)
        and labelled.any()
        and (labels[labelled].min() < 0 or labels[labelled].max() >= k)
    ):
        bad = labels[labelled & ((labels < 0) | (labels >= k))].unique()[:10].tolist()
        raise ValueError(
            f"'labels' has values outside [0, {k - 1}] (and not {ignore_index}): {bad}"
        )
    if balanced and not 0 <= background < k:
        raise ValueError(f"'background' must be in [0, {k - 1}], got {background}")
    batch, b = _check_batch(batch, n, num_graphs)
    batch = batch.to(input.device)
    check_finite(input, "input", nan_only=True)  # -inf log-probabilities are valid
    out_dtype = input.dtype
    input = _upcast(input)
    logp = input if log_input else F.log_softmax(input, dim=-1)
    safe = torch.where(labelled, labels, torch.zeros_like(labels))
    nll = -logp.gather(1, safe.view(-1, 1)).view(-1)
    if balanced:
        is_bg = labelled & (labels == background)
        is_fg = labelled & (labels != background)
        per_graph = graph_mean(nll, is_fg, batch, b) + graph_mean(nll, is_bg, batch, b)
    else:
        per_graph = graph_mean(nll, labelled, batch, b)
    return reduce_graphs(per_graph, reduction).to(out_dtype)
