"""Pixel graphs: every grid cell is a node, edges join cells within a neighbourhood stencil."""
from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Batch, Data

from .._checks import check_choice, check_positive

SHAPES = ("square", "disc", "psa", "irn")


def _check_radius(radius: Any) -> None:
    check_positive(radius, "radius", strict=True, integer=True)


def half_plane_offsets(radius: int, shape: str = "disc") -> Tensor:
    r"""The "forward" half of a neighbourhood stencil: one offset per unordered pair.

    For ``shape="disc"`` (also ``"psa"`` and ``"irn"``) this is the PSA/IRNet construction:
    :math:`(0, dx)` for :math:`dx = 1 .. r-1` and :math:`(dy, dx)` for :math:`dy = 1 .. r-1`,
    :math:`|dx| \le r-1` with :math:`dy^2 + dx^2 < r^2` (34 offsets for :math:`r = 5`).
    For ``shape="square"`` it is the Chebyshev window :math:`|dy|, |dx| \le r` restricted to
    :math:`dy > 0` or :math:`dy = 0, dx > 0` (:math:`((2r+1)^2 - 1) / 2` offsets).

    Returns:
        ``LongTensor [S, 2]`` of ``(dy, dx)``, sorted lexicographically.
    """
    _check_radius(radius)
    check_choice(shape, SHAPES, "shape")
    offs = []
    if shape == "square":
        for dy in range(0, radius + 1):
            for dx in range(-radius, radius + 1):
                if dy > 0 or dx > 0:
                    offs.append((dy, dx))
    else:
        for dx in range(1, radius):
            offs.append((0, dx))
        for dy in range(1, radius):
            for dx in range(-radius + 1, radius):
                if dy * dy + dx * dx < radius * radius:
                    offs.append((dy, dx))
    if not offs:
        return torch.empty(0, 2, dtype=torch.long)
    return torch.tensor(sorted(offs), dtype=torch.long)


def stencil_offsets(radius: int, shape: str = "disc", self_loops: bool = False) -> Tensor:
    """The full symmetric stencil ``[S, 2]`` of ``(dy, dx)`` offsets, sorted lexicographically
    (so that, on a row-major grid, source indices ascend within every target's neighbour list).
    """
    half = half_plane_offsets(radius, shape)
    parts = [half, -half]
    if self_loops:
        parts.append(torch.zeros(1, 2, dtype=torch.long))
    full = torch.cat(parts, dim=0)
    key = (full[:, 0] + 10 * radius + 1) * (40 * radius + 3) + full[:, 1]
    return full[key.argsort()]


class PixelGraph(Data):
    """A :class:`~torch_geometric.data.Data` for a grid graph.

    Attributes:
        edge_index (LongTensor [2, E]): ``edge_index[0]`` = source ``j``, ``edge_index[1]`` =
            target ``i`` (PyG's ``source_to_target`` flow), sorted by target then source.
        pos (Tensor [N, 2]): ``(row, col)`` of each node in grid units (float).
        offsets (LongTensor [S, 2]): the stencil, ``source = target + offset`` (stacked to
            ``[B, S, 2]`` when batched).
        edge_offset (LongTensor [E]): for each edge, its row in ``offsets``.
        grid_size (tuple): ``(height, width)``.
    """

    def __cat_dim__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        if key == "offsets":
            return None  # stack: [B, S, 2]
        return super().__cat_dim__(key, value, *args, **kwargs)

    def __inc__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        if key == "edge_offset":
            return 0
        return super().__inc__(key, value, *args, **kwargs)


def _graph_offsets(radius: int, shape: str, symmetric: bool, self_loops: bool) -> Tensor:
    """The ``[S, 2]`` (dy, dx) offsets, source = target + offset: the whole stencil, or
    (not ``symmetric``) the half-plane ones reversed, sorted like the stencil."""
    if symmetric:
        return stencil_offsets(radius, shape, self_loops=self_loops)
    # directed: target i = p + hh, source p = i - hh  -> offset = -hh
    offsets = -half_plane_offsets(radius, shape)
    if self_loops:
        offsets = torch.cat([offsets, torch.zeros(1, 2, dtype=torch.long)], 0)
    key = (offsets[:, 0] + 10 * radius + 1) * (40 * radius + 3) + offsets[:, 1]
    return offsets[key.argsort()]


def _grid_edges(h: int, w: int, offsets: Tensor, radius: int,
                psa: bool) -> tuple[Tensor, Tensor]:
    """``(edge_index, edge_offset)`` of every in-grid (target, target + offset) pair, sorted
    by (target, offset); ``psa``: only pairs anchored in PSA's interior crop."""
    device = offsets.device
    s = offsets.size(0)
    rows = torch.arange(h, device=device).view(h, 1, 1)
    cols = torch.arange(w, device=device).view(1, w, 1)
    dy = offsets[:, 0].view(1, 1, s)
    dx = offsets[:, 1].view(1, 1, s)
    src_r, src_c = rows + dy, cols + dx  # [h, w, s]
    valid = (src_r >= 0) & (src_r < h) & (src_c >= 0) & (src_c < w)
    if psa:
        # The pair {a, a + hh} exists iff 'a' lies in the interior crop. For edge (target i,
        # source j = i + o): if o is a forward offset then a = i, otherwise a = j.
        def in_crop(r: Tensor, c: Tensor) -> Tensor:
            return (r <= h - radius) & (c >= radius - 1) & (c <= w - radius)

        forward = (dy > 0) | ((dy == 0) & (dx > 0))
        zero = (dy == 0) & (dx == 0)
        anchor_ok = torch.where(forward, in_crop(rows, cols), in_crop(src_r, src_c))
        valid = valid & (anchor_ok | zero)
    target = (rows * w + cols).expand(h, w, s)
    source = src_r * w + src_c
    edge_offset = torch.arange(s, device=device).view(1, 1, s).expand(h, w, s)
    return torch.stack([source[valid], target[valid]], dim=0), edge_offset[valid]


def pixel_graph(
    height: int,
    width: int,
    radius: int,
    shape: str = "disc",
    symmetric: bool = True,
    self_loops: bool = False,
    device: torch.device | str | None = None,
) -> PixelGraph:
    r"""Build the pixel graph of a ``height x width`` grid.

    Node ``k = row * width + col``. Neighbourhoods (NOTES.md sections 3.1, 5.1, 5.2):

    * ``"square"``: Chebyshev window :math:`|dy|, |dx| \le r` (A2GNN: ``r = 3`` or ``4``;
      WSGCN's 5x5 Laplacian window: ``r = 2``).
    * ``"disc"`` / ``"irn"``: Euclidean disc :math:`dy^2 + dx^2 < r^2` (IRNet pads the map, so
      every in-image pair is an edge; ``"irn"`` is an alias of ``"disc"``).
    * ``"psa"``: PSA's half-plane disc (34 offsets for ``r = 5``) whose *source* cells are
      restricted to the interior crop: rows ``0 .. H-r`` and columns ``r-1 .. W-r``.

    Args:
        height, width: Grid size (> 0).
        radius: Neighbourhood radius (> 0). The disc shapes need ``radius >= 2`` for any
            edge: ``radius=1`` with ``"disc"``/``"psa"``/``"irn"`` warns (``UserWarning``
            naming ``radius``) and returns a graph without edges (self-loops only, if
            asked).
        shape: ``"square" | "disc" | "psa" | "irn"``.
        symmetric: If ``True`` every unordered pair gives both directed edges; if ``False``
            only the half-plane direction (source ``p``, target ``p + h`` for forward offset
            ``h``, PSA's pair order).
        self_loops: Add one ``i -> i`` edge per node.
        device: Where to build.

    Returns:
        :class:`PixelGraph` with ``edge_index`` sorted by (target, source), ``pos``,
        ``offsets``, ``edge_offset``, ``grid_size`` and ``num_nodes``.

    A 128x128 grid at radius 5 (about 1.1 M edges) builds in well under a second on CPU
    (``benchmarks/graphs.py``).
    """
    check_positive(height, "height", integer=True)
    check_positive(width, "width", integer=True)
    _check_radius(radius)
    check_choice(shape, SHAPES, "shape")
    if shape != "square" and radius < 2:
        warnings.warn(
            f"pixel_graph: 'radius'={radius} with shape={shape!r} has no neighbour "
            "(dy^2 + dx^2 < radius^2 holds only for (0, 0)), so the graph has no edges; "
            "use radius >= 2 or shape='square'",
            UserWarning,
            stacklevel=2,
        )
    h, w = int(height), int(width)
    n = h * w
    offsets = _graph_offsets(radius, shape, symmetric, self_loops).to(device)
    edge_index, edge_offset = _grid_edges(h, w, offsets, radius, shape == "psa")
    pos = torch.stack(
        torch.meshgrid(
            torch.arange(h, device=device, dtype=torch.float),
            torch.arange(w, device=device, dtype=torch.float),
            indexing="ij",
        ),
        dim=-1,
    ).view(n, 2)
    return PixelGraph(
        edge_index=edge_index,
        pos=pos,
        offsets=offsets,
        edge_offset=edge_offset,
        grid_size=(h, w),
        num_nodes=n,
    )


def batch_pixel_graphs(
    graphs: list[PixelGraph] | PixelGraph, batch_size: int | None = None
) -> Batch:
    """Batch pixel graphs into one PyG :class:`~torch_geometric.data.Batch` (node indices of
    image ``b`` are offset by the nodes of images ``0 .. b-1``). Pass one graph and
    ``batch_size`` to repeat the same grid.
    """
    if isinstance(graphs, PixelGraph):
        if batch_size is None:
            raise ValueError("'batch_size' is required when a single graph is given")
        check_positive(batch_size, "batch_size", integer=True)
        graphs = [graphs] * int(batch_size)
    elif batch_size is not None:
        raise ValueError("'batch_size' is only used with a single graph")
    if len(graphs) == 0:
        raise ValueError("'graphs' is empty")
    for g in graphs:
        if not isinstance(g, Data):
            raise TypeError(f"'graphs' must hold PixelGraph objects, got {type(g).__name__}")
    return Batch.from_data_list(list(graphs))
