"""A graph in compressed sparse row form, sorted once and cached, for the fast kernels.

Rows are *targets* ``i`` and columns are *sources* ``j`` (PyG's ``source_to_target`` flow):
row ``i`` of the CSR lists the incoming edges of node ``i``. The transposed layout (rows =
sources) is kept beside it for the backward passes (``A^T x``), together with the
permutations that carry edge values between the three orders (user, CSR, transposed CSR).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch_geometric import EdgeIndex

from .._checks import check_edge_index, check_finite, check_tensor
from .._warnings import sparse_beta_warnings_off

__all__ = ["CSRGraph", "to_csr", "clear_csr_cache", "csr_matrix"]

# torch gives its "sparse CSR tensor support is in beta" notice once per process, at the
# first compressed tensor built. The builders here (matrix / matrix_t run on every SpMM) enter
# the scoped filter only until one of them has built a tensor: entering it on every call would
# cost microseconds per product and, as any filter change resets Python's "already shown"
# registries, show the caller's own repeated warnings again.
_beta_notice_pending = True


def _sparse_csr_tensor(*args: Any, **kwargs: Any) -> Tensor:
    """``torch.sparse_csr_tensor`` without torch's once-per-process beta notice."""
    global _beta_notice_pending
    if not _beta_notice_pending:
        return torch.sparse_csr_tensor(*args, **kwargs)
    with sparse_beta_warnings_off():
        out = torch.sparse_csr_tensor(*args, **kwargs)
    _beta_notice_pending = False
    return out


@dataclass(frozen=True)
class CSRGraph:
    """Compressed sparse row description of an edge list.

    Attributes:
        rowptr: ``[num_dst + 1]`` row pointers (rows = targets).
        col: ``[E]`` source of each CSR entry.
        row: ``[E]`` target of each CSR entry (expanded ``rowptr``).
        perm: ``[E]`` user edge id of each CSR entry (``values_csr = values[perm]``).
        t_rowptr: ``[num_src + 1]`` row pointers of the transpose (rows = sources).
        t_col: ``[E]`` target of each transposed entry.
        t_perm: ``[E]`` CSR position of each transposed entry (``values_t = values_csr[t_perm]``).
        num_src, num_dst: Number of source and target nodes.
    """

    rowptr: Tensor
    col: Tensor
    row: Tensor
    perm: Tensor
    t_rowptr: Tensor
    t_col: Tensor
    t_perm: Tensor
    num_src: int
    num_dst: int

    @property
    def num_edges(self) -> int:
        return int(self.col.numel())

    @property
    def device(self) -> torch.device:
        return self.col.device

    def matrix(self, values: Tensor) -> Tensor:
        """``torch.sparse_csr_tensor`` ``[num_dst, num_src]`` with CSR-ordered ``values``."""
        return _sparse_csr_tensor(
            self.rowptr, self.col, values, (self.num_dst, self.num_src), check_invariants=False
        )

    def matrix_t(self, values: Tensor) -> Tensor:
        """The transpose ``[num_src, num_dst]`` with CSR-ordered ``values``."""
        return _sparse_csr_tensor(
            self.t_rowptr,
            self.t_col,
            values[self.t_perm],
            (self.num_src, self.num_dst),
            check_invariants=False,
        )

    def to_csr_order(self, values: Tensor) -> Tensor:
        """User edge order -> CSR order."""
        return values[self.perm]

    def to_edge_order(self, values: Tensor) -> Tensor:
        """CSR order -> user edge order."""
        out = torch.empty_like(values)
        out[self.perm] = values
        return out

    def row_sum(self, values: Tensor) -> Tensor:
        """Sum of CSR-ordered ``values`` over each row (target), ``[num_dst]``."""
        out = values.new_zeros(self.num_dst)
        return out.index_add_(0, self.row, values)


def _build(edge_index: Tensor, num_src: int, num_dst: int) -> CSRGraph:
    src, dst = edge_index[0].long(), edge_index[1].long()
    e = src.numel()
    key = dst * max(num_src, 1) + src
    perm = torch.argsort(key, stable=True)
    col, row = src[perm], dst[perm]
    rowptr = torch.zeros(num_dst + 1, dtype=torch.long, device=src.device)
    if e:
        rowptr[1:] = torch.bincount(row, minlength=num_dst).cumsum(0)
    t_key = col * max(num_dst, 1) + row
    t_perm = torch.argsort(t_key, stable=True)
    t_col = row[t_perm]
    t_rowptr = torch.zeros(num_src + 1, dtype=torch.long, device=src.device)
    if e:
        t_rowptr[1:] = torch.bincount(col, minlength=num_src).cumsum(0)
    return CSRGraph(rowptr, col, row, perm, t_rowptr, t_col, t_perm, num_src, num_dst)


# Each entry keeps a reference to its edge_index, so that the storage (and its address, part
# of the key) cannot be reused by another tensor while the entry lives.
_CACHE: OrderedDict[tuple, tuple[Tensor, CSRGraph]] = OrderedDict()
_CACHE_SIZE = 8


def to_csr(
    edge_index: Tensor,
    num_nodes: int | tuple[int, int] | None = None,
    cache: bool = True,
    self_loops: bool = False,
) -> CSRGraph:
    """Sort ``edge_index`` (``[2, E]``, source row 0, target row 1) into a :class:`CSRGraph`.

    The checks run on a cache miss only (the graph is then sorted, which reads it anyway):
    a cache hit reads nothing back to the host.

    Args:
        edge_index: ``[2, E]`` int64 or int32, or a PyG :class:`~torch_geometric.EdgeIndex`
            (its ``sparse_size`` is used when ``num_nodes`` is omitted).
        num_nodes: ``N`` or ``(num_src, num_dst)``; inferred from the indices if ``None``.
        cache: Reuse the result for the same tensor (same storage, version, shape and size),
            so a graph is sorted once however many layers and steps use it.
        self_loops: Append one ``i -> i`` edge per node *after* the given edges (edge ids
            ``E .. E + N - 1``), e.g. for attention layers that add self-loops; existing
            loops are kept (mask them with an edge mask if they must not count twice).
    """
    if isinstance(edge_index, EdgeIndex):  # its sparse size saves the max read
        if num_nodes is None and None not in edge_index.sparse_size():
            num_src, num_dst = edge_index.sparse_size()
            num_nodes = (int(num_src), int(num_dst))
        edge_index = edge_index.as_tensor()
    check_edge_index(edge_index)
    if num_nodes is None:
        n = int(edge_index.max()) + 1 if edge_index.numel() else 0
        num_src = num_dst = n
    elif isinstance(num_nodes, tuple):
        num_src, num_dst = int(num_nodes[0]), int(num_nodes[1])
    else:
        num_src = num_dst = int(num_nodes)

    def build() -> CSRGraph:
        # the range check runs whenever the graph is sorted (a cache miss, which syncs
        # anyway), never on a cache hit: a cached graph was checked when it was built
        ei = edge_index
        if ei.numel():
            if int(ei[0].max()) >= num_src or int(ei[1].max()) >= num_dst:
                raise ValueError("'edge_index' has node indices outside 'num_nodes'")
            if int(ei.min()) < 0:
                raise ValueError("'edge_index' has negative node indices")
        if self_loops:
            if num_src != num_dst:
                raise ValueError("'self_loops' needs a square graph (num_src == num_dst)")
            loops = torch.arange(num_src, device=ei.device, dtype=ei.dtype).repeat(2, 1)
            ei = torch.cat([ei, loops], dim=1)
        return _build(ei, num_src, num_dst)

    if not cache:
        return build()
    key = (
        self_loops,
        edge_index.data_ptr(),
        edge_index._version,
        tuple(edge_index.shape),
        edge_index.stride(),
        str(edge_index.device),
        num_src,
        num_dst,
    )
    hit = _CACHE.get(key)
    if hit is not None:
        _CACHE.move_to_end(key)
        return hit[1]
    csr = build()
    _CACHE[key] = (edge_index, csr)
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return csr


def clear_csr_cache() -> None:
    """Forget every cached :class:`CSRGraph`."""
    _CACHE.clear()


def csr_matrix(row: Tensor, col: Tensor, value: Tensor, size: tuple[int, int]) -> Tensor:
    """A ``torch.sparse_csr_tensor`` ``[size]`` with entries ``value`` at ``(row, col)``
    (duplicates summed), for operators that stay fixed over many products: the one COO -> CSR
    builder of the package (:func:`pyg_wsss.ops.fixed_spmm` operators, the WSGCN adjacency
    and Laplacian, the random-walk transition). A one-off builder: the index ranges are
    always checked. A graph's message-passing layout (sorted once, cached, with the
    transpose and edge permutations) is :func:`to_csr`.

    Shapes:
        row ``[E]``, col ``[E]``, value ``[E]`` -> sparse CSR ``[size]``.
    """
    check_tensor(row, "row", ndim=1, floating=False)
    check_tensor(col, "col", ndim=1, floating=False)
    check_tensor(value, "value", ndim=1, floating=True)
    if not row.numel() == col.numel() == value.numel():
        raise ValueError(
            f"'row', 'col' and 'value' must have one entry each per element, got "
            f"{row.numel()}, {col.numel()} and {value.numel()}"
        )
    check_finite(value, "value")
    m, n = int(size[0]), int(size[1])
    for name, idx, bound in (("row", row, m), ("col", col, n)):
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= bound):
            raise ValueError(f"'{name}' has indices outside [0, {bound}) for size {tuple(size)}")
    coo = torch.sparse_coo_tensor(
        torch.stack([row.long(), col.long()]), value, size, check_invariants=False
    )
    with sparse_beta_warnings_off():  # a one-off builder: always scoped
        return coo.coalesce().to_sparse_csr()
