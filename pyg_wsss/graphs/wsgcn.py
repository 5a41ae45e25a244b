r"""The graphs of WSGCN (Pan et al., ICIP/ICME 2021; W 1): the propagation matrix
:math:`\tilde A` as a weighted edge list (:func:`wsgcn_adjacency`), from feature affinities on
a pixel graph or a truncated sparse random-walk transition (:func:`wsgcn_graph`,
:func:`random_walk_transition`). Also importable from :mod:`pyg_wsss.nn.models.wsgcn`."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.utils import add_self_loops, coalesce, to_undirected

from .._checks import check_choice, check_edge_index, check_positive, check_tensor
from .._warnings import sparse_beta_warnings_off
from ..ops.spmm import csr_matrix
from ..pseudo.walk import NORMALIZATIONS, transition_edges

__all__ = ["wsgcn_adjacency", "random_walk_transition", "wsgcn_graph"]

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

    Built from PyG's :func:`~torch_geometric.utils.coalesce`,
    :func:`~torch_geometric.utils.to_undirected` (``reduce="max"``) and
    :func:`~torch_geometric.utils.add_self_loops`.

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
    # rows = targets: on the flipped index [dst, src] PyG's coalesce sorts by (target, source)
    ei, val = coalesce(torch.stack([dst, src]), edge_weight, n, reduce="sum")  # duplicates
    if variant == "code":
        ei, val = to_undirected(ei, val, n, reduce="max")  # max(A, A^T) over both patterns
    ei, val = add_self_loops(ei, val, fill_value=1.0, num_nodes=n)
    (rows, cols), val = coalesce(ei, val, n, reduce="sum")  # identity added to existing loops
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
    normalization: str = "target",
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
    edges ``j -> i``. The first-step transition is :func:`pyg_wsss.pseudo.walk.transition_edges`
    (the one shared with the random-walk baseline); ``normalization="source"`` normalises
    over the outgoing edges instead (also after every pruning). A target without incoming
    weight (only without ``self_loops``) gets an empty row.

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
    check_choice(normalization, NORMALIZATIONS, "normalization")
    n = int(num_nodes)
    src, dst, val, loops, loop_val = transition_edges(
        edge_index[0].long(), edge_index[1].long(), edge_weight, n, beta, self_loops,
        normalization, isolated="zero",
    )
    # T_ij on row i = target, column j = source (PyG's j -> i)
    rows, cols = torch.cat([dst, loops]), torch.cat([src, loops])
    vals = torch.cat([val, loop_val])

    def normalise(r: Tensor, c: Tensor, v: Tensor) -> Tensor:
        by = r if normalization == "target" else c
        deg = v.new_zeros(n).index_add(0, by, v)
        return v / deg.clamp(min=1e-30)[by]

    t = csr_matrix(rows, cols, vals, (n, n))
    for _ in range(int(exp_times)):
        with sparse_beta_warnings_off():  # CSR @ CSR builds a CSR tensor
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
    from .pixel import pixel_graph
    from .weights import feature_affinity

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
