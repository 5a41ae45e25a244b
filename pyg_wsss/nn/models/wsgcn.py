r"""WSGCN (Pan et al., ICIP/ICME 2021): a 2-layer GCN trained per image to turn partial
pseudo labels into complete ones (W 1-7).

* :class:`WSGCN` — the model of W 1 built from PyG :class:`~torch_geometric.nn.GCNConv`
  (``normalize=False``, ``add_self_loops=False``): the normalised adjacency is put on the
  edges once by :func:`~pyg_wsss.graphs.wsgcn.wsgcn_adjacency`.
* :class:`BatchedWSGCN` — many per-image GCNs evaluated as one batched problem: per-image
  parameters ``[B, D, 16]`` etc., one PyG batch of graphs, and each image gets the result it
  would get alone.

The rest of WSGCN lives where its kind does, and is re-exported here (the former import
paths keep working):

* graph builders (:func:`wsgcn_adjacency`, :func:`wsgcn_graph`,
  :func:`random_walk_transition`): :mod:`pyg_wsss.graphs.wsgcn`;
* the objective (:class:`WSGCNLossConfig`, :func:`wsgcn_objective`,
  :class:`WSGCNObjective`): :mod:`pyg_wsss.nn.functional.wsgcn_objective`;
* the training loop (:func:`fit_wsgcn`, :func:`wsgcn_train_step`):
  :mod:`pyg_wsss.pipelines.wsgcn`, next to :class:`~pyg_wsss.pipelines.wsgcn.WSGCNConfig`.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GCNConv

from ..._checks import check_choice, check_edge_index, check_fraction, check_positive, check_tensor
from ...graphs.wsgcn import (  # noqa: F401  (re-exported: the former home of the builders)
    ADJACENCY_VARIANTS,
    random_walk_transition,
    wsgcn_adjacency,
    wsgcn_graph,
)
from ...ops.spmm import csr_matrix, fixed_spmm
from ..functional.wsgcn_objective import (  # noqa: F401  (re-exported)
    WSGCNLossConfig,
    WSGCNObjective,
    wsgcn_objective,
)

__all__ = [
    "WSGCN",
    "BatchedWSGCN",
    "wsgcn_adjacency",
    "wsgcn_graph",
    "random_walk_transition",
    "WSGCNLossConfig",
    "wsgcn_objective",
    "WSGCNObjective",
]

#: ``fit_wsgcn``, ``wsgcn_train_step``: re-exported lazily from :mod:`pyg_wsss.pipelines.wsgcn`
#: (which imports this module).
_TRAINING = ("fit_wsgcn", "wsgcn_train_step", "FIT_FIELDS")


def __getattr__(name: str) -> Any:
    if name in _TRAINING:
        from ...pipelines import wsgcn as training

        return getattr(training, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------
def _pygcn_uniform_(t: Tensor, fan_out: int, generator: torch.Generator | None = None) -> Tensor:
    bound = 1.0 / math.sqrt(fan_out)
    with torch.no_grad():
        return t.uniform_(-bound, bound, generator=generator)


class WSGCN(nn.Module):
    r"""The 2-layer GCN of WSGCN (W 1):

    .. math::
        Q = \sigma_s\big(\tilde A\, \mathrm{drop}(\sigma_r(\tilde A V W_1 + b_1))\, W_2 + b_2\big)

    built from two :class:`~torch_geometric.nn.GCNConv` (``normalize=False``,
    ``add_self_loops=False``); :math:`\tilde A` is given as edge weights on edges
    ``j -> i`` (:func:`wsgcn_adjacency`, ``"paper"``: :math:`A + I`, ``"code"``:
    :math:`D^{-1}(\max(A, A^T) + I)`). Dropout (0.3) only between the layers, as in the
    authors' code (pygcn). Returns **log**-probabilities (:math:`\log Q`).

    Args:
        in_channels: Node feature size ``D``.
        hidden_channels: 16 in the paper.
        num_classes: Output classes incl. background (21 for VOC; all are predicted).
        dropout: 0.3 in the paper.
        init: ``"pygcn"`` (code: weights and biases :math:`U(\pm 1/\sqrt{out})`) or
            ``"glorot"`` (PyG's :class:`GCNConv` default: glorot weights, zero bias).

    Shapes:
        x ``[N, D]``, edge_index ``[2, E]``, edge_weight ``[E]`` -> ``[N, num_classes]``.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int = 16,
        num_classes: int = 21,
        dropout: float = 0.3,
        init: str = "pygcn",
    ) -> None:
        super().__init__()
        check_positive(in_channels, "in_channels", integer=True)
        check_positive(hidden_channels, "hidden_channels", integer=True)
        check_positive(num_classes, "num_classes", integer=True)
        check_fraction(dropout, "dropout")
        check_choice(init, ("pygcn", "glorot"), "init")
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.num_classes = num_classes
        self.dropout = dropout
        self.init = init
        kw = dict(normalize=False, add_self_loops=False, bias=True)
        self.conv1 = GCNConv(in_channels, hidden_channels, **kw)
        self.conv2 = GCNConv(hidden_channels, num_classes, **kw)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.conv1.reset_parameters()
        self.conv2.reset_parameters()
        if self.init == "pygcn":
            for conv in (self.conv1, self.conv2):
                _pygcn_uniform_(conv.lin.weight, conv.out_channels)
                _pygcn_uniform_(conv.bias, conv.out_channels)

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        check_tensor(x, "x", ndim=2, floating=True, finite=True)
        if x.size(1) != self.in_channels:
            raise ValueError(f"'x' must have {self.in_channels} columns, got {tuple(x.shape)}")
        if isinstance(edge_index, Tensor) and edge_index.layout == torch.strided:
            check_edge_index(edge_index, x.size(0))
        if edge_weight is not None:
            check_tensor(edge_weight, "edge_weight", ndim=1, floating=True, finite=True)
            if isinstance(edge_index, Tensor) and edge_weight.numel() != edge_index.size(-1):
                raise ValueError(
                    f"'edge_weight' has {edge_weight.numel()} entries but there are "
                    f"{edge_index.size(-1)} edges"
                )
        if isinstance(edge_index, Tensor) and edge_index.dtype == torch.int32:
            edge_index = edge_index.long()  # GCNConv's scatter needs int64
        h = F.relu(self.conv1(x, edge_index, edge_weight))
        h = F.dropout(h, p=self.dropout, training=self.training)
        return F.log_softmax(self.conv2(h, edge_index, edge_weight), dim=-1)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.in_channels}, {self.num_classes}, "
            f"hidden_channels={self.hidden_channels}, dropout={self.dropout})"
        )


# --------------------------------------------------------------------------------------------
# Batched per-image training
# --------------------------------------------------------------------------------------------
def _dropout_generators(seeds: Sequence[int], device: torch.device) -> list[torch.Generator]:
    return [
        torch.Generator(device=device).manual_seed(int(seed) * 1_000_003 + 97_531) for seed in seeds
    ]


def _checked_inputs(
    x: Tensor, edge_index: Tensor, edge_weight: Tensor | None, batch: Tensor, b: int,
    dropout: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Validated ``(x, edge_index, edge_weight, batch)`` of :class:`BatchedWSGCN` (a one-off
    set-up: the value checks always run); half / bfloat16 ``x`` as float32."""
    check_tensor(x, "x", ndim=2, floating=True)
    if x.numel() and not bool(torch.isfinite(x).all()):  # a one-off set-up: always
        raise ValueError("'x' contains NaN or infinite values")
    n, d = x.shape
    check_edge_index(edge_index, n, always=True)
    check_tensor(batch, "batch", ndim=1, floating=False)
    if batch.numel() != n:
        raise ValueError(f"'batch' has {batch.numel()} entries but 'x' has {n} rows")
    if x.dtype in (torch.float16, torch.bfloat16):  # no half CPU sparse kernels: fp32
        x = x.float()
    if edge_weight is None:
        edge_weight = x.new_ones(edge_index.size(1))
    check_tensor(edge_weight, "edge_weight", ndim=1, floating=True)
    if edge_weight.numel() != edge_index.size(1):
        raise ValueError(
            f"'edge_weight' has {edge_weight.numel()} entries but there are "
            f"{edge_index.size(1)} edges"
        )
    if edge_weight.numel() and not bool(torch.isfinite(edge_weight).all()):
        raise ValueError("'edge_weight' contains NaN or infinite values")
    check_fraction(dropout, "dropout")
    batch = batch.long().to(x.device)
    if n and int(batch.min()) < 0:
        raise ValueError(f"'batch' has negative image indices (min {int(batch.min())})")
    if n and int(batch.max()) >= b:
        raise ValueError(f"'batch' refers to {int(batch.max()) + 1} images but {b} seeds given")
    edge_index = edge_index.long()
    if edge_index.numel() and bool((batch[edge_index[0]] != batch[edge_index[1]]).any()):
        raise ValueError("'edge_index' has edges between nodes of different images ('batch')")
    return x, edge_index, edge_weight, batch


class BatchedWSGCN(nn.Module):
    r"""``B`` independent :class:`WSGCN` models (one per image) evaluated in one pass.

    Parameters are batched tensors ``W1 [B, D, H]``, ``b1 [B, H]``, ``W2 [B, H, K]``,
    ``b2 [B, K]``; node ``n`` of image ``batch[n]`` uses its image's block. The graph is a
    PyG batch (block-diagonal :math:`\tilde A`), stored once as a sparse CSR matrix (and its
    transpose for the backward). Two exact re-associations make a step cheap:
    :math:`\tilde A V W_1 = (\tilde A V) W_1` (``A V`` is constant over the optimisation and
    computed once) and :math:`\tilde A (H W_2) = (\tilde A H) W_2` (propagate 16 channels
    instead of ``K``). Both hold because :math:`\tilde A` is block-diagonal over images.

    Initialisation (pygcn's uniform) uses one CPU :class:`torch.Generator` per image seeded
    with ``seeds[b]``, and the dropout masks come from a second per-image generator (on the
    model's device) advanced once per training forward, so batching does not change any
    image's result.

    ``batch`` need not be sorted: with nodes of several images interleaved the model works
    on the nodes stably sorted by image and returns the rows in the given order, so a
    permutation that keeps each image's node order gives the permuted output (the order
    *within* an image matters only to which dropout draw a node gets).

    Half and bfloat16 ``x`` are computed in float32 (parameters included) and the output is
    returned in ``x``'s dtype.

    Args:
        x: ``[N, D]`` node features of all images.
        edge_index, edge_weight: :math:`\tilde A` of all images (from
            :func:`wsgcn_adjacency`), edges never crossing images (checked);
            ``edge_weight=None`` means all ones; NaN/Inf weights raise ``ValueError``.
        batch: ``[N]`` image index per node in ``[0, B)`` (any order).
        seeds: ``B`` integer seeds.
        hidden_channels, num_classes, dropout: As in :class:`WSGCN`.
    """

    # buffers (registered in __init__)
    seeds: Tensor
    batch: Tensor
    node_order: Tensor | None
    local: Tensor
    flat_index: Tensor
    ax_dense: Tensor
    counts: Tensor
    adj_rows: Tensor
    adj_cols: Tensor
    adj_values: Tensor

    def __init__(
        self,
        x: Tensor,
        edge_index: Tensor,
        edge_weight: Tensor | None,
        batch: Tensor,
        seeds: Sequence[int],
        hidden_channels: int = 16,
        num_classes: int = 21,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        out_dtype = check_tensor(x, "x", ndim=2, floating=True).dtype
        x, edge_index, edge_weight, batch = _checked_inputs(
            x, edge_index, edge_weight, batch, len(seeds), dropout
        )
        n, d = x.shape
        b = len(seeds)
        self.num_graphs, self.in_channels = b, d
        self.hidden_channels, self.num_classes, self.dropout = hidden_channels, num_classes, dropout
        self.out_dtype = out_dtype
        self.register_buffer(
            "seeds", torch.as_tensor(list(seeds), dtype=torch.long, device=x.device)
        )
        dev, dt = x.device, x.dtype
        self.register_buffer("batch", batch)  # the caller's order (that of the output)
        # Unsorted batch (nodes of images interleaved): work on the nodes sorted by image
        # (stable) and return the rows in the caller's order.
        if n > 1 and not bool((batch[1:] >= batch[:-1]).all()):
            perm = torch.argsort(batch, stable=True)
            inv = torch.empty_like(perm)
            inv[perm] = torch.arange(n, device=dev)
            x, batch, edge_index = x[perm], batch[perm], inv[edge_index]
            self.register_buffer("node_order", inv)  # caller's node i -> sorted row inv[i]
        else:
            self.register_buffer("node_order", None)
        counts = torch.bincount(batch, minlength=b)
        ptr = torch.cumsum(counts, 0) - counts
        local = torch.arange(n, device=dev) - ptr[batch]
        self.max_nodes = int(counts.max()) if n else 0
        self.uniform_sizes = bool((counts == self.max_nodes).all())
        self.register_buffer("local", local)
        self.register_buffer("flat_index", batch * self.max_nodes + local)
        rows, cols = edge_index[1].long(), edge_index[0].long()
        self.adj = csr_matrix(rows, cols, edge_weight.to(dt), (n, n))
        self.adj_t = csr_matrix(cols, rows, edge_weight.to(dt), (n, n))
        with torch.no_grad():
            ax = self.adj @ x if edge_index.size(1) else torch.zeros_like(x)
        self.register_buffer("ax_dense", self._to_dense(ax))  # [B, Nmax, D]
        self.w1 = nn.Parameter(torch.empty(b, d, hidden_channels, device=dev, dtype=dt))
        self.b1 = nn.Parameter(torch.empty(b, hidden_channels, device=dev, dtype=dt))
        self.w2 = nn.Parameter(torch.empty(b, hidden_channels, num_classes, device=dev, dtype=dt))
        self.b2 = nn.Parameter(torch.empty(b, num_classes, device=dev, dtype=dt))
        self.register_buffer("counts", counts)
        self._counts = counts.tolist()  # host copy: the dropout draw reads no device value
        # the COO entries of A~ (and its transpose, in CSR order): the gather/scatter path
        # traced under torch.compile, where sparse tensors do not trace
        self.register_buffer("adj_rows", self.adj.to_sparse_coo().indices()[0])
        self.register_buffer("adj_cols", self.adj.col_indices().clone())
        self.register_buffer("adj_values", self.adj.values().clone())
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Per-image pygcn init from ``seeds[b]`` (CPU generator, so it is the same on every
        device): ``W1^T``, ``b1``, ``W2^T``, ``b2`` drawn in this order."""
        h, k, d = self.hidden_channels, self.num_classes, self.in_channels
        for i, seed in enumerate(self.seeds.tolist()):
            g = torch.Generator().manual_seed(int(seed))
            w1 = _pygcn_uniform_(torch.empty(h, d, dtype=self.w1.dtype), h, g)
            b1 = _pygcn_uniform_(torch.empty(h, dtype=self.w1.dtype), h, g)
            w2 = _pygcn_uniform_(torch.empty(k, h, dtype=self.w1.dtype), k, g)
            b2 = _pygcn_uniform_(torch.empty(k, dtype=self.w1.dtype), k, g)
            with torch.no_grad():
                self.w1[i].copy_(w1.t())
                self.b1[i].copy_(b1)
                self.w2[i].copy_(w2.t())
                self.b2[i].copy_(b2)
        self._generators = _dropout_generators(self.seeds.tolist(), self.w1.device)

    def _to_dense(self, v: Tensor) -> Tensor:
        b, m = self.num_graphs, self.max_nodes
        if self.uniform_sizes:
            return v.reshape(b, m, v.size(-1))
        out = v.new_zeros(b * m, v.size(-1))
        out[self.flat_index] = v
        return out.view(b, m, v.size(-1))

    def _to_flat(self, v: Tensor) -> Tensor:
        if self.uniform_sizes:
            return v.reshape(-1, v.size(-1))
        return v.reshape(-1, v.size(-1))[self.flat_index]

    def dropout_mask(self) -> Tensor:
        """``[N, H]`` scaled keep-mask for the next training forward; image ``b``'s rows come
        from its own generator (seeded from ``seeds[b]``)."""
        keep = 1.0 - self.dropout
        h, dt, dev = self.hidden_channels, self.w1.dtype, self.w1.device
        if keep <= 0:  # dropout 1: F.dropout's all-zero output, not 0 / 0
            return torch.zeros(self.batch.numel(), h, dtype=dt, device=dev)
        if self._generators and self._generators[0].device != dev:  # the model was moved
            self._generators = _dropout_generators(self.seeds.tolist(), dev)
        u = torch.empty(self.batch.numel(), h, dtype=dt, device=dev)
        start = 0
        for c, g in zip(self._counts, self._generators):
            u[start : start + c].uniform_(generator=g)  # half the cost of bernoulli_
            start += c
        return (u < keep).to(dt).div_(keep)

    def forward(self, dropout_mask: Tensor | None = None) -> Tensor:
        """Log-probabilities ``[N, K]``. Each training-mode call draws fresh per-image
        dropout masks (between the two layers), unless ``dropout_mask`` (``[N, H]``, from
        :meth:`dropout_mask`, in the sorted-by-image node order) is given: drawing it
        outside lets the forward run under :func:`torch.compile` (generators do not trace).
        Under :func:`torch.compile` the propagation is a gather/scatter over the stored
        entries of :math:`\tilde A` (sparse tensors do not trace)."""
        h = torch.bmm(self.ax_dense, self.w1) + self.b1.unsqueeze(1)  # [B, M, H]
        h = self._to_flat(F.relu(h))
        if self.training and self.dropout > 0:
            h = h * (self.dropout_mask() if dropout_mask is None else dropout_mask)
        if torch.compiler.is_compiling():
            msg = self.adj_values.unsqueeze(-1) * h.index_select(0, self.adj_cols)
            ah = h.new_zeros(h.shape).index_add_(0, self.adj_rows, msg)
        else:
            ah = fixed_spmm(self.adj, self.adj_t, h)  # [N, H] (sorted-by-image node order)
        out = torch.bmm(self._to_dense(ah), self.w2) + self.b2.unsqueeze(1)
        out = F.log_softmax(self._to_flat(out), dim=-1)
        if self.node_order is not None:  # back to the caller's node order
            out = out[self.node_order]
        return out.to(self.out_dtype)

    def extra_repr(self) -> str:
        return (
            f"num_graphs={self.num_graphs}, in_channels={self.in_channels}, "
            f"hidden_channels={self.hidden_channels}, num_classes={self.num_classes}, "
            f"dropout={self.dropout}"
        )
