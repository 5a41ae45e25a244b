r"""WSGCN (Pan et al., ICIP/ICME 2021): a 2-layer GCN trained per image to turn partial
pseudo labels into complete ones (W 1-7).

* :class:`WSGCN` — the model of W 1 built from PyG :class:`~torch_geometric.nn.GCNConv`
  (``normalize=False``, ``add_self_loops=False``): the normalised adjacency is put on the
  edges once by :func:`wsgcn_adjacency`.
* :func:`wsgcn_graph` / :func:`random_walk_transition` — the graph ``A`` of W 1 from feature
  affinities on a pixel graph, or from a truncated sparse random-walk transition (the
  authors' code uses IRNet's dense ``T^256``; we keep ``top_k`` entries per row after every
  squaring, so it stays sparse).
* :class:`BatchedWSGCN` and :func:`fit_wsgcn` — many per-image GCNs trained as one batched
  problem: per-image parameters ``[B, D, 16]`` etc., one PyG batch of graphs, one optimiser
  step for all images, and each image gets the result it would get alone.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GCNConv

from ..._checks import (
    check_batch,
    check_choice,
    check_edge_index,
    check_fraction,
    check_positive,
    check_tensor,
)
from ...ops.spmm import csr_matrix, fixed_spmm
from ..functional.cross_entropy import partial_cross_entropy
from ..functional.entropy import entropy_loss
from ..functional.laplacian import laplacian_matrix, laplacian_quadratic_form

ADJACENCY_VARIANTS = ("paper", "code")


# --------------------------------------------------------------------------------------------
# Adjacency
# --------------------------------------------------------------------------------------------
def wsgcn_adjacency(
    edge_index: Tensor,
    edge_weight: Tensor | None,
    num_nodes: int,
    variant: str = "paper",
) -> tuple[Tensor, Tensor]:
    r"""The propagation matrix :math:`\tilde A` of W 1 as a weighted edge list.

    * ``variant="paper"``: :math:`\tilde A = A + I` (as printed; no normalisation).
    * ``variant="code"``: :math:`\tilde A = D^{-1}(\max(A, A^T) + I)` — the authors' code:
      element-wise max with the transpose, identity added, then **row** normalisation
      (not Kipf's symmetric one); zero rows stay zero.

    :math:`A_{ij}` is the weight of edge ``j -> i`` (source ``j``, target ``i``); the result
    carries :math:`\tilde A_{ij}` on edge ``j -> i``, so that
    ``GCNConv(normalize=False, add_self_loops=False)(x, ei, w)`` computes
    :math:`\tilde A X \Theta` (NOTES.md check 2). Existing self-loops are kept and the
    identity is added to them. Duplicate edges are summed.

    Returns:
        ``(edge_index [2, E'], edge_weight [E'])`` sorted by (target, source).
    """
    check_positive(num_nodes, "num_nodes", strict=False, integer=True)
    check_edge_index(edge_index, num_nodes, always=True)
    check_choice(variant, ADJACENCY_VARIANTS, "variant")
    src, dst = edge_index[0].long(), edge_index[1].long()
    if edge_weight is None:
        edge_weight = torch.ones(src.numel(), device=src.device)
    check_tensor(edge_weight, "edge_weight", ndim=1, floating=True, finite=True)
    if edge_weight.numel() != src.numel():
        raise ValueError(
            f"'edge_weight' has {edge_weight.numel()} entries but there are {src.numel()} edges"
        )
    n = int(num_nodes)
    a = torch.sparse_coo_tensor(
        torch.stack([dst, src]), edge_weight, (n, n), check_invariants=False
    ).coalesce()
    if variant == "code":
        # max(A, A^T) over the union of both patterns (missing entries are 0)
        at = a.t().coalesce()
        idx = torch.cat([a.indices(), at.indices()], 1)
        val = torch.cat([a.values(), at.values()])
        key = idx[0] * n + idx[1]
        uniq, inv = torch.unique(key, return_inverse=True)
        sym = val.new_full((uniq.numel(),), -math.inf).scatter_reduce(0, inv, val, "amax")
        rows, cols = uniq // n, uniq % n
        a = torch.sparse_coo_tensor(
            torch.stack([rows, cols]), sym, (n, n), check_invariants=False
        ).coalesce()
    nodes = torch.arange(n, device=src.device)
    eye = torch.sparse_coo_tensor(
        torch.stack([nodes, nodes]),
        torch.ones(n, dtype=a.dtype, device=src.device),
        (n, n),
        check_invariants=False,
    )
    a = (a + eye).coalesce()
    (rows, cols), val = a.indices(), a.values()
    if variant == "code":
        deg = val.new_zeros(n).index_add(0, rows, val)
        inv_deg = deg.reciprocal()
        inv_deg = torch.where(torch.isfinite(inv_deg), inv_deg, torch.zeros_like(inv_deg))
        val = val * inv_deg[rows]
    return torch.stack([cols, rows]), val


# --------------------------------------------------------------------------------------------
# Graph builders
# --------------------------------------------------------------------------------------------
def _prune_rows(rows: Tensor, cols: Tensor, vals: Tensor, n: int, top_k: int) -> tuple:
    """Keep the ``top_k`` largest entries of every row (ties broken by column)."""
    order = torch.argsort(-vals, stable=True)
    order = order[torch.argsort(rows[order], stable=True)]
    rows, cols, vals = rows[order], cols[order], vals[order]
    counts = torch.bincount(rows, minlength=n)
    start = torch.cumsum(counts, 0) - counts
    rank = torch.arange(rows.numel(), device=rows.device) - start[rows]
    keep = rank < top_k
    return rows[keep], cols[keep], vals[keep]


def random_walk_transition(
    edge_index: Tensor,
    edge_weight: Tensor,
    num_nodes: int,
    beta: float = 10.0,
    exp_times: int = 8,
    top_k: int | None = 64,
    self_loops: bool = True,
) -> tuple[Tensor, Tensor]:
    r"""Truncated sparse random-walk transition :math:`T^{2^{k}}` (IRNet, PSA; the graph of
    WSGCN-I, NOTES.md 2.1).

    :math:`A = W^{\beta}` (plus :math:`A_{ii} = 1` with ``self_loops``),
    :math:`T = D^{-1} A` row-normalised over the incoming edges of each target (the
    transpose of IRNet's column-normalised matrix, in PyG's ``j -> i`` convention), then
    squared ``exp_times`` times. After every squaring each row keeps its ``top_k`` largest
    entries and is renormalised to sum to 1 (``top_k=None`` keeps everything: exact, but the
    support grows towards dense). Memory is ``O(N top_k)``, never ``N x N``.

    Propagating node scores ``S`` is ``out_i = sum_j T_ij S_j``, i.e. the weights are on
    edges ``j -> i``.

    Returns:
        ``(edge_index [2, E'], edge_weight [E'])``.
    """
    check_positive(num_nodes, "num_nodes", integer=True)
    check_edge_index(edge_index, num_nodes, always=True)
    check_tensor(edge_weight, "edge_weight", ndim=1, floating=True, finite=True)
    if edge_weight.numel() != edge_index.size(1):
        raise ValueError("'edge_weight' must have one entry per edge")
    check_positive(beta, "beta")
    check_positive(exp_times, "exp_times", strict=False, integer=True)
    if top_k is not None:
        check_positive(top_k, "top_k", integer=True)
    if (edge_weight < 0).any():
        raise ValueError("'edge_weight' must be non-negative")
    n = int(num_nodes)
    rows, cols = edge_index[1].long(), edge_index[0].long()
    vals = edge_weight.pow(beta)
    if self_loops:
        nodes = torch.arange(n, device=rows.device)
        keep = rows != cols
        rows = torch.cat([rows[keep], nodes])
        cols = torch.cat([cols[keep], nodes])
        vals = torch.cat([vals[keep], vals.new_ones(n)])

    def normalise(r: Tensor, c: Tensor, v: Tensor) -> Tensor:
        deg = v.new_zeros(n).index_add(0, r, v)
        return v / deg.clamp(min=1e-30)[r]

    vals = normalise(rows, cols, vals)
    t = csr_matrix(rows, cols, vals, (n, n))
    for _ in range(int(exp_times)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            t = (t @ t).to_sparse_coo().coalesce()
        (rows, cols), vals = t.indices(), t.values()
        if top_k is not None:
            rows, cols, vals = _prune_rows(rows, cols, vals, n, int(top_k))
            vals = normalise(rows, cols, vals)
        t = csr_matrix(rows, cols, vals, (n, n))
    t = t.to_sparse_coo().coalesce()
    (rows, cols), vals = t.indices(), t.values()
    return torch.stack([cols, rows]), vals


def wsgcn_graph(
    x: Tensor,
    grid_size: tuple[int, int],
    radius: int = 5,
    method: str = "affinity",
    beta: float = 10.0,
    exp_times: int = 4,
    top_k: int | None = 64,
    variant: str = "paper",
    colour: Tensor | None = None,
    sigma_rgb: float = 0.1,
) -> tuple[Tensor, Tensor]:
    r"""Build WSGCN's propagation graph :math:`\tilde A` (W 1) for one image from node
    features on its grid.

    * ``method="affinity"``: edges of ``pixel_graph(h, w, radius, shape="disc")`` with the
      feature affinity :math:`\exp(-\|f_i - f_j\|_1 / d)` (A 8;
      :func:`~pyg_wsss.graphs.feature_affinity`) raised to ``beta``
      (WSGCN-P-like: AffinityNet's affinity on a radius graph).
    * ``method="random_walk"``: those affinities turned into the truncated transition
      :math:`T^{2^{k}}` (:func:`random_walk_transition`, ``exp_times = k``; WSGCN-I uses
      IRNet's ``T^{256}``, ``k = 8``, dense), pruned to ``top_k`` per row.

    With ``colour`` (``[h * w, 3]`` in ``[0, 1]``) the affinity is multiplied by the colour
    kernel :math:`\exp(-\|c_i - c_j\|^2 / 2\sigma_{rgb}^2)` (as the random-walk baseline
    of :func:`pyg_wsss.pseudo.random_walk_from_image` does; ours, not in the paper).
    Then :func:`wsgcn_adjacency` (``variant``) adds the identity (and normalises for
    ``"code"``).

    Args:
        x: ``[h * w, d]`` node features in row-major grid order.
        grid_size: ``(h, w)``.

    Returns:
        ``(edge_index, edge_weight)`` ready for :class:`WSGCN`.
    """
    from ...graphs import feature_affinity, pixel_graph

    check_tensor(x, "x", ndim=2, floating=True, finite=True)
    check_choice(method, ("affinity", "random_walk"), "method")
    h, w = int(grid_size[0]), int(grid_size[1])
    if h * w != x.size(0):
        raise ValueError(f"'x' has {x.size(0)} rows but 'grid_size' {grid_size} has {h * w} cells")
    check_positive(beta, "beta")
    g = pixel_graph(h, w, radius, shape="disc", device=x.device)
    aff = feature_affinity(x, g.edge_index)
    if colour is not None:
        check_tensor(colour, "colour", ndim=2, floating=True, finite=True)
        if colour.size(0) != h * w:
            raise ValueError(f"'colour' has {colour.size(0)} rows, expected {h * w}")
        check_positive(sigma_rgb, "sigma_rgb")
        src, dst = g.edge_index
        d2 = (colour[dst] - colour[src]).pow(2).sum(-1).to(aff.dtype)
        aff = aff * torch.exp(-d2 / (2 * sigma_rgb**2))
    if method == "affinity":
        ei, ew = g.edge_index, aff.pow(beta)
    else:
        ei, ew = random_walk_transition(
            g.edge_index, aff, h * w, beta=beta, exp_times=exp_times, top_k=top_k
        )
    return wsgcn_adjacency(ei, ew, h * w, variant=variant)


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
        check_tensor(x, "x", ndim=2, floating=True)
        if x.numel() and not bool(torch.isfinite(x).all()):  # a one-off set-up: always
            raise ValueError("'x' contains NaN or infinite values")
        n, d = x.shape
        check_edge_index(edge_index, n, always=True)
        check_tensor(batch, "batch", ndim=1, floating=False)
        if batch.numel() != n:
            raise ValueError(f"'batch' has {batch.numel()} entries but 'x' has {n} rows")
        out_dtype = x.dtype
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
        b = len(seeds)
        batch = batch.long().to(x.device)
        if n and int(batch.min()) < 0:
            raise ValueError(f"'batch' has negative image indices (min {int(batch.min())})")
        if n and int(batch.max()) >= b:
            raise ValueError(f"'batch' refers to {int(batch.max()) + 1} images but {b} seeds given")
        edge_index = edge_index.long()
        if edge_index.numel() and bool((batch[edge_index[0]] != batch[edge_index[1]]).any()):
            raise ValueError("'edge_index' has edges between nodes of different images ('batch')")
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


@dataclass
class WSGCNLossConfig:
    """Weights and variants of the per-image objective (W 2)."""

    beta_entropy: float = 10.0
    beta_laplacian: float = 1e-2
    entropy_variant: str = "code"
    laplacian_on: str = "probs"  # "probs" (paper) | "log_probs" (code)
    balanced: bool = True


def wsgcn_objective(
    log_probs: Tensor,
    labels: Tensor,
    batch: Tensor,
    num_graphs: int,
    laplacian: Tensor | None,
    config: WSGCNLossConfig,
) -> Tensor:
    r"""Per-image loss of W 2 summed over images (so that each image's gradient is the one it
    gets alone): :math:`\sum_b \ell_{fg} + \ell_{bg} + \beta_1 \ell_{ent} + \beta_2 \ell_{lp}`.
    ``laplacian`` is the batch's sparse CSR Laplacian (symmetric) and the node count per image
    is used as normaliser."""
    loss = partial_cross_entropy(
        log_probs,
        labels,
        balanced=config.balanced,
        batch=batch,
        num_graphs=num_graphs,
        reduction="sum",
        log_input=True,
    )
    if config.beta_entropy:
        loss = loss + config.beta_entropy * entropy_loss(
            log_probs,
            labels,
            variant=config.entropy_variant,
            batch=batch,
            num_graphs=num_graphs,
            reduction="sum",
            log_input=True,
        )
    if config.beta_laplacian and laplacian is not None:
        y = log_probs.exp() if config.laplacian_on == "probs" else log_probs
        total = laplacian_quadratic_form(laplacian, y, batch, num_graphs)
        count = torch.bincount(batch, minlength=num_graphs).clamp(min=1).to(y.dtype)
        loss = loss + config.beta_laplacian * (total / count).sum()
    return loss


class WSGCNObjective:
    r""":func:`wsgcn_objective` with everything that does not change during the optimisation
    computed once: the labels, the group of every node (fg / bg / unlabelled) and the
    per-image normalisers become constant node weights, so that a step costs one gather,
    one ``exp`` and a few reductions besides the Laplacian SpMM (the functional losses
    re-derive the masks and counts on every call). Equal to :func:`wsgcn_objective` in
    value and gradient (tested).

    Args:
        labels: ``[N]`` partial labels (255 = unlabelled), batch: ``[N]``, num_graphs: ``B``,
        num_classes: ``K``, laplacian: the batch's symmetric CSR Laplacian or ``None``,
        config: :class:`WSGCNLossConfig`.
    """

    def __init__(
        self,
        labels: Tensor,
        batch: Tensor,
        num_graphs: int,
        num_classes: int,
        laplacian: Tensor | None,
        config: WSGCNLossConfig,
        ignore_index: int = 255,
        background: int = 0,
    ) -> None:
        check_choice(config.entropy_variant, ("paper", "code"), "entropy_variant")
        check_choice(config.laplacian_on, ("probs", "log_probs"), "laplacian_on")
        check_tensor(labels, "labels", ndim=1, floating=False)
        check_tensor(batch, "batch", ndim=1, floating=False)
        check_positive(num_classes, "num_classes", integer=True)
        labels = labels.long()
        n = labels.numel()
        if batch.numel() != n:
            raise ValueError(f"'batch' has {batch.numel()} entries but 'labels' has {n}")
        b = int(num_graphs)
        batch = batch.long().to(labels.device)
        if n and (int(batch.min()) < 0 or int(batch.max()) >= b):
            raise ValueError(f"'batch' must lie in [0, {b - 1}] for num_graphs={b}")
        if config.balanced and not 0 <= background < num_classes:
            raise ValueError(f"'background' must be in [0, {num_classes - 1}], got {background}")
        labelled = labels != ignore_index
        if labelled.any() and (labels[labelled].min() < 0 or labels[labelled].max() >= num_classes):
            raise ValueError(
                f"'labels' has values outside [0, {num_classes - 1}] and not {ignore_index}"
            )
        dt = torch.float64  # weights in double, cast once in .to()

        def per_node_inverse_count(mask: Tensor) -> Tensor:
            count = torch.zeros(b, dtype=dt, device=labels.device).index_add_(
                0, batch, mask.to(dt)
            )
            return torch.where(mask, 1.0 / count.clamp(min=1)[batch], torch.zeros((), dtype=dt))

        if config.balanced:
            is_bg = labelled & (labels == background)
            ce_w = per_node_inverse_count(labelled & ~is_bg) + per_node_inverse_count(is_bg)
        else:
            ce_w = per_node_inverse_count(labelled)
        kappa = 1.0 / num_classes if config.entropy_variant == "code" else 1.0
        ent_w = per_node_inverse_count(~labelled) * (config.beta_entropy * kappa)
        nodes = torch.zeros(b, dtype=dt, device=labels.device).index_add_(
            0, batch, torch.ones(n, dtype=dt, device=labels.device)
        )
        self.num_classes = int(num_classes)
        self.labelled = labelled
        self.safe_labels = torch.where(labelled, labels, torch.zeros_like(labels)).view(-1, 1)
        self.ce_weight, self.ent_weight = ce_w, ent_w
        self.lap_weight = config.beta_laplacian / nodes.clamp(min=1)
        self.batch, self.num_graphs = batch, b
        self.laplacian = laplacian if config.beta_laplacian else None
        self._lap_coo = None if self.laplacian is None else _csr_entries(self.laplacian)
        self._use_laplacian = self.laplacian is not None  # (compiled code must not touch it)
        self.use_entropy = bool(config.beta_entropy)
        self.on_probs = config.laplacian_on == "probs"
        self._double = (ce_w, ent_w, self.lap_weight)  # masters: casts never compound

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> "WSGCNObjective":
        """Move the precomputed weights (and the Laplacian) to ``device`` / ``dtype`` (the
        weights are kept in float64 and cast from there; calls with ``log_probs`` of another
        dtype or device cast them on the fly)."""
        for name, master in zip(("ce_weight", "ent_weight", "lap_weight"), self._double):
            setattr(self, name, master.to(device=device, dtype=dtype or self.ce_weight.dtype))
        if self.laplacian is not None:
            self.laplacian = self.laplacian.to(device=device, dtype=dtype)
            self._lap_coo = _csr_entries(self.laplacian)
        self.safe_labels, self.batch = self.safe_labels.to(device), self.batch.to(device)
        self.labelled = self.labelled.to(device)
        return self

    def __call__(self, log_probs: Tensor) -> Tensor:
        check_tensor(log_probs, "log_probs", ndim=2, floating=True)
        if tuple(log_probs.shape) != (self.batch.numel(), self.num_classes):
            raise ValueError(
                f"'log_probs' must be [{self.batch.numel()}, {self.num_classes}], got "
                f"{tuple(log_probs.shape)}"
            )
        if self.ce_weight.dtype != log_probs.dtype or self.ce_weight.device != log_probs.device:
            self.to(log_probs.device, log_probs.dtype)
        picked = log_probs.gather(1, self.safe_labels).view(-1)
        picked = torch.where(self.labelled, picked, torch.zeros_like(picked))  # no -inf * 0
        loss = -(picked * self.ce_weight).sum()
        probs = log_probs.exp() if (self.use_entropy or self.on_probs) else None
        if self.use_entropy:
            finite = log_probs.clamp(min=torch.finfo(log_probs.dtype).min)  # 0 log 0 = 0
            loss = loss - ((probs * finite).sum(-1) * self.ent_weight).sum()
        if self._use_laplacian:
            y = probs if self.on_probs else log_probs
            if torch.compiler.is_compiling():  # sparse tensors do not trace: gather/scatter
                rows, cols, vals = self._lap_coo
                ly = torch.zeros_like(y).index_add_(
                    0, rows, vals.to(y.dtype).unsqueeze(-1) * y.index_select(0, cols)
                )
                trace = y.new_zeros(self.num_graphs).index_add_(0, self.batch, (y * ly).sum(-1))
            else:
                trace = laplacian_quadratic_form(self.laplacian, y, self.batch, self.num_graphs)
            loss = loss + (trace * self.lap_weight).sum()
        return loss


def _csr_entries(a: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(rows, cols, values)`` of a sparse CSR matrix, in its storage order."""
    rows = torch.repeat_interleave(
        torch.arange(a.size(0), device=a.device), a.crow_indices().diff()
    )
    return rows, a.col_indices().clone(), a.values().clone()


def wsgcn_train_step(
    model: BatchedWSGCN, objective: WSGCNObjective, dropout_mask: Tensor | None = None
) -> Tensor:
    """One WSGCN training step up to the loss: the batched forward and
    :class:`WSGCNObjective` (what :func:`fit_wsgcn` runs before ``loss.backward()`` and the
    Adam step). With ``dropout_mask`` (:meth:`BatchedWSGCN.dropout_mask`, drawn outside)
    it compiles with ``torch.compile(fullgraph=True)``; the backward is compiled with it."""
    return objective(model(dropout_mask=dropout_mask))


def fit_wsgcn(
    x: Tensor,
    edge_index: Tensor,
    edge_weight: Tensor | None,
    labels: Tensor,
    batch: Tensor | None = None,
    seeds: Sequence[int] | None = None,
    lap_edge_index: Tensor | None = None,
    lap_edge_weight: Tensor | None = None,
    steps: int = 250,
    lr: float = 0.01,
    weight_decay: float = 5e-4,
    beta_entropy: float = 10.0,
    beta_laplacian: float = 1e-2,
    entropy_variant: str = "code",
    laplacian_on: str = "probs",
    balanced: bool = True,
    hidden_channels: int = 16,
    num_classes: int = 21,
    dropout: float = 0.3,
    progress: bool = False,
) -> Tensor:
    r"""Train one WSGCN per image (W 2-7) for all images of a batch at once and return the
    eval-mode log-probabilities ``[N, K]``.

    Per image: ``steps`` full-batch Adam steps (lr 0.01, weight decay 5e-4, the paper's
    values) on :math:`\ell_{fg} + \ell_{bg} + \beta_1 \ell_{ent} + \beta_2 \ell_{lp}`
    (:func:`~pyg_wsss.nn.functional.partial_cross_entropy`,
    :func:`~pyg_wsss.nn.functional.entropy_loss`,
    :func:`~pyg_wsss.nn.functional.laplacian_loss`), evaluated by :class:`WSGCNObjective`
    (the same objective with its masks and normalisers computed once). The per-image losses
    are **summed** (Adam is element-wise, so every image's update is exactly the one it gets
    alone; bitwise with one thread, up to the reduction order of the sparse products with
    more). Half and bfloat16 ``x`` are trained in float32 and the result is returned in
    ``x``'s dtype.

    Args:
        x: ``[N, D]`` node features of the batch.
        edge_index, edge_weight: :math:`\tilde A` (:func:`wsgcn_adjacency`);
            ``edge_weight=None`` means all ones. NaN/Inf weights raise ``ValueError``.
        labels: ``[N]`` partial labels (255 = unlabelled).
        batch: ``[N]`` image of each node in ``[0, B)`` (``None``: one image). It need
            not be sorted: interleaved images are sorted internally (stable) and the
            output rows follow the given order (:class:`BatchedWSGCN`).
        seeds: One seed per image (default ``0, 1, ...``).
        lap_edge_index, lap_edge_weight: The Laplacian graph :math:`\Phi` (W 7; e.g. the
            5x5 window with :func:`~pyg_wsss.graphs.gaussian_edge_weight`); ``None`` = no
            Laplacian term.
        entropy_variant: ``"code"`` (default: mean over the ``K`` classes) | ``"paper"``
            (sum over classes, W 5 as printed). With :math:`\beta_1 = 10` the printed form
            is ``K`` = 21 times stronger than what the authors ran, and in our tests it
            collapses every node to one class within a few dozen steps (an image with only
            foreground seeds, or weak seeds); the code's form is the default for training.
        laplacian_on: ``"probs"`` (paper) | ``"log_probs"`` (code).
        beta_entropy, beta_laplacian: :math:`\beta_1 = 10`, :math:`\beta_2 = 10^{-2}`;
            0 switches a term off (the loss ablation of W Table 2).
    """
    check_tensor(x, "x", ndim=2, floating=True)
    check_tensor(labels, "labels", ndim=1, floating=False)
    n = x.size(0)
    if labels.numel() != n:
        raise ValueError(f"'labels' has {labels.numel()} entries but 'x' has {n} rows")
    check_positive(steps, "steps", strict=False, integer=True)
    check_positive(lr, "lr")
    check_choice(laplacian_on, ("probs", "log_probs"), "laplacian_on")
    out_dtype = x.dtype
    if x.dtype in (torch.float16, torch.bfloat16):  # trained in float32, returned in x's dtype
        x = x.float()
    if batch is None:
        batch = torch.zeros(n, dtype=torch.long, device=x.device)
    batch, b = check_batch(batch, n, None, device=x.device)
    b = max(b, 1)
    if seeds is None:
        seeds = list(range(b))
    if len(seeds) != b:
        raise ValueError(
            f"'seeds' has {len(seeds)} entries but 'batch' refers to {b} images"
        )
    model = BatchedWSGCN(
        x, edge_index, edge_weight, batch, seeds, hidden_channels, num_classes, dropout
    )
    lap = None
    if lap_edge_index is not None:
        check_edge_index(lap_edge_index, n, name="lap_edge_index", always=True)
        if lap_edge_weight is not None:
            check_tensor(lap_edge_weight, "lap_edge_weight", ndim=1, floating=True, finite=True)
            if lap_edge_weight.numel() != lap_edge_index.size(1):
                raise ValueError(
                    f"'lap_edge_weight' has {lap_edge_weight.numel()} entries but "
                    f"'lap_edge_index' has {lap_edge_index.size(1)} edges"
                )
    if lap_edge_index is not None and beta_laplacian:
        lap = laplacian_matrix(lap_edge_index, lap_edge_weight, n, dtype=x.dtype)
    config = WSGCNLossConfig(beta_entropy, beta_laplacian, entropy_variant, laplacian_on, balanced)
    objective = WSGCNObjective(
        labels.to(x.device), batch, b, num_classes, lap, config
    ).to(x.device, x.dtype)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    it = range(int(steps))
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc=f"WSGCN x{b}", leave=False)
    model.train()
    for _ in it:
        opt.zero_grad(set_to_none=True)
        mask = model.dropout_mask() if model.dropout > 0 else None
        loss = wsgcn_train_step(model, objective, mask)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        return model().to(out_dtype)
