r"""Multi-point (MP) loss and consistency checking of A2GNN (A 23-28).

Boxes live on the node grid of each graph: ``boxes`` ``[M, 4]`` ``(x1, y1, x2, y2)``
0-based *inclusive* grid coordinates, ``box_labels`` ``[M]`` class ids, ``box_batch`` ``[M]``
the graph of each box; a graph's nodes are its ``h x w`` grid in row-major order starting
at ``ptr[b]`` (PyG ``Batch.ptr``; one graph: ``ptr = [0, h * w]``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..._checks import check_choice, check_index, check_tensor
from .cross_entropy import REDUCTIONS, reduce_graphs

VARIANTS = ("paper", "code")


def _grid_args(
    num_nodes: int,
    boxes: Tensor,
    box_labels: Tensor,
    grid_size: Sequence[int] | Tensor,
    box_batch: Tensor | None,
    ptr: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, int]:
    check_tensor(boxes, "boxes", ndim=2, floating=False)
    if boxes.size(1) != 4:
        raise ValueError(f"'boxes' must have shape [M, 4], got {tuple(boxes.shape)}")
    check_tensor(box_labels, "box_labels", ndim=1, floating=False)
    m = boxes.size(0)
    if box_labels.numel() != m:
        raise ValueError(f"'box_labels' has {box_labels.numel()} entries for {m} boxes")
    if box_batch is None:
        box_batch = torch.zeros(m, dtype=torch.long)
    check_tensor(box_batch, "box_batch", ndim=1, floating=False)
    if box_batch.numel() != m:
        raise ValueError(f"'box_batch' has {box_batch.numel()} entries for {m} boxes")
    gs = torch.as_tensor(grid_size, dtype=torch.long).view(-1, 2)
    num_graphs = gs.size(0) if ptr is None else ptr.numel() - 1
    if gs.size(0) == 1 and num_graphs > 1:
        gs = gs.expand(num_graphs, 2)
    if ptr is None:
        ptr = torch.cat([torch.zeros(1, dtype=torch.long), (gs[:, 0] * gs[:, 1]).cumsum(0)])
    ptr = ptr.long().cpu()
    if gs.size(0) != num_graphs:
        raise ValueError(f"'grid_size' has {gs.size(0)} rows for {num_graphs} graphs")
    if int(ptr[-1]) != num_nodes or not torch.equal(ptr[1:] - ptr[:-1], gs[:, 0] * gs[:, 1]):
        raise ValueError("'grid_size'/'ptr' do not match the number of nodes")
    boxes, box_labels = boxes.long().cpu(), box_labels.long().cpu()
    box_batch = box_batch.long().cpu()
    if m and int(box_labels.min()) < 0:
        raise ValueError(f"'box_labels' must be class ids >= 0, got {int(box_labels.min())}")
    if m:
        if box_batch.min() < 0 or box_batch.max() >= num_graphs:
            raise ValueError(f"'box_batch' must be in [0, {num_graphs - 1}]")
        hw = gs[box_batch]
        x1, y1, x2, y2 = boxes.unbind(1)
        if (x2 < x1).any() or (y2 < y1).any():
            raise ValueError("'boxes' contains empty boxes (x2 < x1 or y2 < y1)")
        if (x1 < 0).any() or (y1 < 0).any() or (x2 >= hw[:, 1]).any() or (y2 >= hw[:, 0]).any():
            raise ValueError("'boxes' reach outside the grid")
    return boxes, box_labels, box_batch, gs, ptr, num_graphs


def _box_cells(boxes: Tensor, box_batch: Tensor, gs: Tensor, ptr: Tensor):
    """Node index ``[M, Hmax, Wmax]`` of every box cell and its validity mask."""
    x1, y1, x2, y2 = boxes.unbind(1)
    hb, wb = y2 - y1 + 1, x2 - x1 + 1
    hmax = int(hb.max()) if boxes.numel() else 0
    wmax = int(wb.max()) if boxes.numel() else 0
    r = torch.arange(hmax).view(1, -1, 1)
    c = torch.arange(wmax).view(1, 1, -1)
    valid = (r < hb.view(-1, 1, 1)) & (c < wb.view(-1, 1, 1))
    rows = y1.view(-1, 1, 1) + r
    cols = x1.view(-1, 1, 1) + c
    width = gs[box_batch, 1].view(-1, 1, 1)
    idx = ptr[box_batch].view(-1, 1, 1) + rows * width + cols
    idx = torch.where(valid, idx, torch.zeros_like(idx))
    return idx, valid, hb, wb


@dataclass(frozen=True)
class PreparedBoxes:
    """Boxes on the node grids, validated and laid out once (:func:`prepare_boxes`), so that
    :func:`select_box_points`, :func:`multi_point_loss` and :func:`consistency_check` run
    with static shapes, no host read and no host-device copy (training loops,
    :func:`torch.compile`).

    Attributes:
        cells: ``[M, Hmax, Wmax]`` node of every box cell (0 outside the box).
        valid: ``[M, Hmax, Wmax]`` cell inside the box.
        labels, box_batch: ``[M]`` class and graph of every box.
        row_pos, col_pos: Flat positions (in ``[M * Hmax]`` / ``[M * Wmax]``) of the box
            rows / columns, box by box.
        order: The stable order that groups the points of a box (rows, then columns).
        owner: ``[P]`` box of every point (sorted).
        num_nodes, num_graphs, max_label: Sizes for the cheap checks (``max_label`` -1
            without boxes).
    """

    cells: Tensor
    valid: Tensor
    labels: Tensor
    box_batch: Tensor
    row_pos: Tensor
    col_pos: Tensor
    order: Tensor
    owner: Tensor
    num_nodes: int
    num_graphs: int
    max_label: int

    @property
    def num_boxes(self) -> int:
        return self.labels.numel()


def prepare_boxes(
    num_nodes: int,
    boxes: Tensor,
    box_labels: Tensor,
    grid_size: Sequence[int] | Tensor,
    box_batch: Tensor | None = None,
    ptr: Tensor | None = None,
    device: torch.device | str | None = None,
) -> PreparedBoxes:
    """Validate the boxes (on the host, once) and lay them out on ``device`` for the MP
    loss and consistency checking (:class:`PreparedBoxes`). Arguments as in
    :func:`select_box_points`; ``num_nodes`` is the number of nodes of all graphs.

    Example:
        >>> import torch
        >>> from pyg_wsss.nn.functional import multi_point_loss
        >>> from pyg_wsss.nn.functional.multi_point import prepare_boxes
        >>> boxes = prepare_boxes(6, torch.tensor([[0, 0, 1, 1]]), torch.tensor([1]), (2, 3))
        >>> boxes.num_boxes, boxes.owner.tolist()  # 2 rows + 2 columns -> 4 points
        (1, [0, 0, 0, 0])
        >>> logits, feats = torch.zeros(6, 2), torch.ones(6, 2)
        >>> multi_point_loss(logits, feats, boxes)  # CE of ties: log 2
        tensor(0.6931)
    """
    boxes, box_labels, box_batch, gs, ptr, num_graphs = _grid_args(
        num_nodes, boxes, box_labels, grid_size, box_batch, ptr
    )
    device = torch.device(device) if device is not None else torch.device("cpu")
    idx, valid, hb, wb = _box_cells(boxes, box_batch, gs, ptr)
    m = boxes.size(0)
    row_valid = torch.arange(idx.size(1)).view(1, -1) < hb.view(-1, 1)
    col_valid = torch.arange(idx.size(2)).view(1, -1) < wb.view(-1, 1)
    box_id = torch.arange(m)
    owner = torch.cat([
        box_id.view(-1, 1).expand_as(row_valid)[row_valid],
        box_id.view(-1, 1).expand_as(col_valid)[col_valid],
    ])
    order = torch.argsort(owner, stable=True)
    return PreparedBoxes(
        cells=idx.to(device),
        valid=valid.to(device),
        labels=box_labels.to(device),
        box_batch=box_batch.to(device),
        row_pos=row_valid.reshape(-1).nonzero().view(-1).to(device),
        col_pos=col_valid.reshape(-1).nonzero().view(-1).to(device),
        order=order.to(device),
        owner=owner[order].to(device),
        num_nodes=int(num_nodes),
        num_graphs=int(num_graphs),
        max_label=int(box_labels.max()) if m else -1,
    )


def _as_prepared(
    num_nodes: int,
    boxes: Tensor | PreparedBoxes,
    box_labels: Tensor | None,
    grid_size: Sequence[int] | Tensor | None,
    box_batch: Tensor | None,
    ptr: Tensor | None,
    device: torch.device,
) -> PreparedBoxes:
    if isinstance(boxes, PreparedBoxes):
        if boxes.num_nodes != num_nodes:
            raise ValueError(
                f"the prepared boxes are for {boxes.num_nodes} nodes, got {num_nodes}"
            )
        if boxes.cells.device != device:
            raise ValueError(
                f"the prepared boxes are on {boxes.cells.device}, the input on {device}"
            )
        return boxes
    if box_labels is None:
        raise TypeError("'box_labels' must be a torch.Tensor, got NoneType")
    if grid_size is None:
        raise TypeError("'grid_size' is required with raw 'boxes'")
    return prepare_boxes(num_nodes, boxes, box_labels, grid_size, box_batch, ptr, device)


def _select_points(input: Tensor, pb: PreparedBoxes, variant: str) -> tuple[Tensor, Tensor]:
    """The MP points of ``pb`` (no checks, no gradient, static shapes)."""
    with torch.no_grad():
        score = input.softmax(-1) if variant == "paper" else input
        idx = pb.cells
        s = score.detach()[idx, pb.labels.view(-1, 1, 1)]
        s = s.masked_fill(~pb.valid, float("-inf"))
        col_of_row = s.argmax(dim=2)  # [M, Hmax]
        row_of_col = s.argmax(dim=1)  # [M, Wmax]
        row_nodes = idx.gather(2, col_of_row.unsqueeze(2)).squeeze(2)
        col_nodes = idx.gather(1, row_of_col.unsqueeze(1)).squeeze(1)
        nodes = torch.cat([row_nodes.reshape(-1)[pb.row_pos], col_nodes.reshape(-1)[pb.col_pos]])
    return nodes[pb.order], pb.owner


def select_box_points(
    input: Tensor,
    boxes: Tensor | PreparedBoxes,
    box_labels: Tensor | None = None,
    grid_size: Sequence[int] | Tensor | None = None,
    box_batch: Tensor | None = None,
    ptr: Tensor | None = None,
    variant: str = "paper",
) -> tuple[Tensor, Tensor]:
    r"""The MP points of A 23-25: for every row and every column of every box, the node
    most likely to be the box class.

    ``variant="paper"`` ranks by the softmax probability of the box class (Eq. 23);
    ``"code"`` by its raw logit (the authors' code). A node can be chosen by its row and
    its column; it is then listed twice (:math:`h + w` points per box, as in Eq. 24).

    Args:
        input: ``[N, K]`` node logits.
        boxes: ``[M, 4]`` grid boxes, or :class:`PreparedBoxes` (:func:`prepare_boxes`;
            then ``box_labels``, ``grid_size``, ``box_batch`` and ``ptr`` are not used).
        box_labels: ``[M]``; box_batch: ``[M]`` graph ids.
        grid_size: ``(h, w)`` of every graph (``[B, 2]``, or one pair for all).
        ptr: ``[B + 1]`` node offsets of the graphs (default from ``grid_size``).
        variant: ``"paper"`` or ``"code"``.

    Returns:
        ``(nodes [P], box_of_point [P])`` (no gradient).

    Example:
        >>> import torch
        >>> from pyg_wsss.nn.functional import select_box_points
        >>> logits = torch.tensor([[0.0, 1.0], [0.0, 3.0], [0.0, 2.0],
        ...                        [1.0, 0.0], [0.0, 5.0], [2.0, 0.0]])  # a 2 x 3 grid
        >>> boxes, box_labels = torch.tensor([[0, 0, 1, 1]]), torch.tensor([1])
        >>> select_box_points(logits, boxes, box_labels, (2, 3))  # rows 0, 1; columns 0, 1
        (tensor([1, 4, 0, 4]), tensor([0, 0, 0, 0]))
    """
    check_tensor(input, "input", ndim=2, floating=True, finite=True)
    check_choice(variant, VARIANTS, "variant")
    pb = _as_prepared(input.size(0), boxes, box_labels, grid_size, box_batch, ptr, input.device)
    if pb.num_boxes == 0:
        empty = torch.empty(0, dtype=torch.long, device=input.device)
        return empty, empty
    if pb.max_label >= input.size(1):
        raise ValueError(f"'box_labels' must be in [0, {input.size(1) - 1}]")
    return _select_points(input, pb, variant)


def multi_point_loss(
    input: Tensor,
    features: Tensor,
    boxes: Tensor | PreparedBoxes,
    box_labels: Tensor | None = None,
    grid_size: Sequence[int] | Tensor | None = None,
    box_batch: Tensor | None = None,
    ptr: Tensor | None = None,
    variant: str = "paper",
    eps: float = 1e-5,
    reduction: str = "sum",
) -> Tensor:
    r"""Multi-point loss (A 26):

    .. math::
        \mathcal{L}_{mp} = -\frac{1}{N_p} \sum_j \sum_{k \in K_j} \log O^{B_j}(k)
        + \frac{1}{N_f} \sum_j \sum_{k_m, k_n \in K_j} [m \ne n]
          \left(1 - \cos(H(k_m), H(k_n))\right)

    with :math:`K_j` the points of :func:`select_box_points`.

    * ``variant="paper"``: points by maximum probability; ordered pairs :math:`m \ne n`
      (two entries of the same node — chosen by its row and its column — have distance 0);
      :math:`N_f = \sum_j |K_j| (|K_j| - 1)`.
    * ``variant="code"``: points by maximum logit; all ordered pairs including
      :math:`m = n`, each :math:`1 - \cos + \epsilon`; :math:`N_f = \sum_j |K_j|^2`.

    :math:`N_p = \sum_j |K_j|`. The pair sum is computed in closed form
    (:math:`\sum_{m,n} \cos = \|\sum_m \hat h_m\|^2`), without materialising pairs.
    Each graph (``box_batch``) is normalised by its own :math:`N_p, N_f`; graphs without
    boxes give 0.

    Args:
        input: ``[N, K]`` node logits.
        features: ``[N, D]`` node features of the last affinity attention layer.
        boxes, box_labels, grid_size, box_batch, ptr: As in :func:`select_box_points`.
        variant: ``"paper"`` or ``"code"``.
        eps: The code's per-pair constant (``"code"`` only).
        reduction: Over graphs: ``"sum"``, ``"mean"`` or ``"none"``.

    Example:
        >>> import torch
        >>> from pyg_wsss.nn.functional import multi_point_loss
        >>> logits = torch.tensor([[0.0, 1.0], [0.0, 3.0], [0.0, 2.0],
        ...                        [1.0, 0.0], [0.0, 5.0], [2.0, 0.0]])  # a 2 x 3 grid
        >>> feats = torch.tensor([[1.0, 0.0], [1.0, 0.2], [0.0, 1.0],
        ...                       [0.2, 1.0], [1.0, 0.1], [0.0, 1.0]])
        >>> boxes, box_labels = torch.tensor([[0, 0, 1, 1]]), torch.tensor([1])
        >>> multi_point_loss(logits, feats, boxes, box_labels, (2, 3)).round(decimals=4)
        tensor(0.1003)
    """
    check_tensor(input, "input", ndim=2, floating=True, finite=True)
    check_tensor(features, "features", ndim=2, floating=True, finite=True)
    if features.size(0) != input.size(0):
        raise ValueError(
            f"'features' has {features.size(0)} rows but 'input' has {input.size(0)}"
        )
    check_choice(reduction, REDUCTIONS, "reduction")
    check_choice(variant, VARIANTS, "variant")
    pb = _as_prepared(input.size(0), boxes, box_labels, grid_size, box_batch, ptr, input.device)
    if pb.max_label >= input.size(1):
        raise ValueError(f"'box_labels' must be in [0, {input.size(1) - 1}]")
    return reduce_graphs(_multi_point_per_graph(input, features, pb, variant, eps), reduction)


def _multi_point_per_graph(
    input: Tensor, features: Tensor, pb: PreparedBoxes, variant: str, eps: float
) -> Tensor:
    """Per-graph MP loss ``[num_graphs]`` (the kernel of :func:`multi_point_loss`: no checks,
    static shapes)."""
    zero = input.new_zeros(pb.num_graphs)
    m = pb.num_boxes
    if m == 0 or pb.owner.numel() == 0:
        return zero + 0 * input.sum() + 0 * features.sum()
    nodes, owner = _select_points(input, pb, variant)
    box_labels, box_batch = pb.labels, pb.box_batch
    ce = F.cross_entropy(input[nodes], box_labels[owner], reduction="none")
    graph_of_point = box_batch[owner]
    ce_sum = zero.index_add(0, graph_of_point, ce)
    n_p = zero.index_add(0, graph_of_point, torch.ones_like(ce))
    hn = F.normalize(features[nodes], p=2.0, dim=-1)
    s = hn.new_zeros(m, hn.size(1)).index_add(0, owner, hn)  # sum of unit vectors per box
    cnt = hn.new_zeros(m).index_add(0, owner, torch.ones_like(ce))
    sum_cos_all = s.pow(2).sum(-1)  # sum over all ordered pairs incl. m = n
    if variant == "code":
        pair_sum = cnt * cnt * (1.0 + eps) - sum_cos_all
        pairs = cnt * cnt
    else:
        diag = hn.pow(2).sum(-1)
        diag_sum = hn.new_zeros(m).index_add(0, owner, diag)
        pair_sum = cnt * (cnt - 1) - (sum_cos_all - diag_sum)
        pairs = cnt * (cnt - 1)
    pair_total = zero.index_add(0, box_batch, pair_sum.to(zero.dtype))
    n_f = zero.index_add(0, box_batch, pairs.to(zero.dtype))
    return ce_sum / n_p.clamp(min=1) + pair_total / n_f.clamp(min=1)


def consistency_check(
    features: Tensor,
    labels: Tensor,
    boxes: Tensor | PreparedBoxes,
    box_labels: Tensor | None,
    points: Tensor,
    point_box: Tensor,
    grid_size: Sequence[int] | Tensor | None,
    box_batch: Tensor | None = None,
    ptr: Tensor | None = None,
    threshold: float = 0.0,
    ignore_index: int = 255,
) -> Tensor:
    r"""Consistency checking (A 27-28): remove seed labels far from the box prototype.

    For box :math:`B_j` the prototype is the mean feature of its MP points
    :math:`H_P = \frac{1}{|K_j|} \sum_{k \in K_j} H(k)` (Eq. 27); every node inside the box
    whose seed label is the box class and whose cosine similarity to :math:`H_P` is below
    ``threshold`` is set to ``ignore_index`` (Eq. 28; a node in several boxes is removed if
    any of them rejects it).

    The authors' code uses ``threshold = 0`` ("remove if cos < 0"). On A2GNN's features,
    which are non-negative (ReLU embedding, convex attention averages), every cosine is
    :math:`\ge 0`, so the code's check **never removes anything**; a positive threshold
    (e.g. 0.5-0.9) implements the paper's intent.

    Args:
        features: ``[N, D]`` node features (last affinity attention layer).
        labels: ``[N]`` seed labels (``ignore_index`` = unlabelled).
        boxes, box_labels, grid_size, box_batch, ptr: As in :func:`select_box_points`.
        points, point_box: The output of :func:`select_box_points`.
        threshold: Similarity below which a seed is removed, in ``[-1, 1]``.
        ignore_index: The unlabelled value.

    Returns:
        The new ``[N]`` labels (a copy; no gradient).

    Example:
        >>> import torch
        >>> from pyg_wsss.nn.functional import consistency_check, select_box_points
        >>> logits = torch.tensor([[0.0, 1.0], [0.0, 3.0], [0.0, 2.0],
        ...                        [1.0, 0.0], [0.0, 5.0], [2.0, 0.0]])  # a 2 x 3 grid
        >>> feats = torch.tensor([[1.0, 0.0], [1.0, 0.2], [0.0, 1.0],
        ...                       [0.2, 1.0], [1.0, 0.1], [0.0, 1.0]])
        >>> boxes, box_labels = torch.tensor([[0, 0, 1, 1]]), torch.tensor([1])
        >>> points, owner = select_box_points(logits, boxes, box_labels, (2, 3))
        >>> seeds = torch.tensor([1, 1, 0, 1, 1, 0])
        >>> consistency_check(feats, seeds, boxes, box_labels, points, owner, (2, 3),
        ...                   threshold=0.5)  # node 3 looks unlike the box's points
        tensor([  1,   1,   0, 255,   1,   0])
    """
    check_tensor(features, "features", ndim=2, floating=True, finite=True)
    check_tensor(labels, "labels", ndim=1, floating=False)
    if labels.numel() != features.size(0):
        raise ValueError(f"'labels' has {labels.numel()} entries for {features.size(0)} nodes")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise TypeError(f"'threshold' must be a number, got {threshold!r}")
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"'threshold' must be in [-1, 1], got {threshold}")
    n = features.size(0)
    check_tensor(points, "points", ndim=1, floating=False)
    check_tensor(point_box, "point_box", ndim=1, floating=False)
    if points.numel() != point_box.numel():
        raise ValueError("'points' and 'point_box' must have the same length")
    prepared = isinstance(boxes, PreparedBoxes)
    pb = _as_prepared(n, boxes, box_labels, grid_size, box_batch, ptr, features.device)
    # raw boxes are read on the host anyway: the index ranges are then always checked;
    # prepared boxes (training loops) follow the validation level
    check_index(points, "points", n, what="node indices", always=not prepared)
    check_index(point_box, "point_box", pb.num_boxes, what="box indices", always=not prepared)
    return _consistency(features, labels, pb, points, point_box, threshold, ignore_index)


def _consistency(
    features: Tensor,
    labels: Tensor,
    pb: PreparedBoxes,
    points: Tensor,
    point_box: Tensor,
    threshold: float,
    ignore_index: int,
) -> Tensor:
    """The kernel of :func:`consistency_check` (no checks, static shapes)."""
    device = features.device
    out = labels.clone()
    m = pb.num_boxes
    if m == 0 or points.numel() == 0:
        return out
    with torch.no_grad():
        h = features.detach()
        proto = h.new_zeros(m, h.size(1)).index_add(0, point_box.to(device), h[points.to(device)])
        ones = torch.ones(points.numel(), dtype=h.dtype, device=device)
        cnt = h.new_zeros(m).index_add(0, point_box.to(device), ones)
        proto = proto / cnt.clamp(min=1).unsqueeze(1)
        idx, valid = pb.cells, pb.valid
        lab = pb.labels.view(-1, 1, 1)
        cos = F.cosine_similarity(h[idx], proto.view(m, 1, 1, -1), dim=-1)
        reject = valid & (labels.to(device)[idx] == lab) & (cos < threshold)
        reject = reject & (cnt.view(-1, 1, 1) > 0)
        # a node in several boxes is removed if any rejects it (scatter: no boolean index)
        hits = torch.zeros(out.numel(), dtype=torch.long, device=device).index_add_(
            0, idx.reshape(-1), reject.reshape(-1).long()
        )
        out = torch.where(hits.to(out.device) > 0, torch.full_like(out, ignore_index), out)
    return out
