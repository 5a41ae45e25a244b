r"""Random-walk propagation of CAM scores over a pixel affinity graph (PSA / IRNet).

PSA (Ahn & Kwak 2018) and IRNet build an affinity matrix :math:`A` (symmetric, diagonal 1)
on a pixel graph, the transition matrix

.. math::
    T = \mathrm{colnorm}(A^{\circ\beta}), \qquad T_{ij} = \frac{A_{ij}^\beta}{\sum_{i'}
    A_{i'j}^\beta}

(element-wise power :math:`\beta`; every column sums to 1) and propagate the class scores
:math:`X \in \mathbb{R}^{K \times N}` by :math:`X T^{2^k}` (PSA: :math:`\beta = 8`,
:math:`k = 8`; SEAM/A2GNN: 8 and 6; IRNet: 10 and 8). Upstream squares a dense
:math:`N \times N` matrix :math:`k` times (NOTES.md 5.1, 5.2, 8: ReCAM#13 runs out of GPU
memory). Here the walk is :math:`2^k` sparse steps :math:`X \leftarrow X T`, each a CSR SpMM
costing :math:`O(\mathrm{nnz}(T) K)`, never forming an :math:`N \times N` tensor; the dense
reference (:func:`random_walk_dense`) squares the dense matrix behind a size guard.

Edge convention (as everywhere in the package): ``edge_index[0]`` = source ``i``,
``edge_index[1]`` = target ``j``, ``edge_weight`` = :math:`A_{ij}`. For a symmetric
affinity pass both directions (:func:`pyg_wsss.graphs.pixel_graph` with
``symmetric=True``). As a message-passing step, :math:`(XT)_{:, j} = \sum_{i \to j} T_{ij}
X_{:, i}`: a weighted mean over the incoming edges of ``j`` (and ``j`` itself).
"""
from __future__ import annotations

from typing import Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_choice, check_edge_index, check_positive, check_tensor
from .._warnings import sparse_beta_warnings_off

__all__ = [
    "transition_matrix",
    "random_walk",
    "random_walk_dense",
    "random_walk_propagate",
    "random_walk_from_image",
    "DENSE_MAX_NODES",
]

#: Largest graph for which the dense reference is allowed by default (4096^2 float32 =
#: 64 MiB per matrix; squaring keeps about three of them alive).
DENSE_MAX_NODES = 4096


#: Normalisations of the random-walk transition (:func:`transition_edges`).
NORMALIZATIONS = ("target", "source")


def _weighted_edges(
    edge_index: Tensor,
    edge_weight: Tensor | None,
    num_nodes: int,
    beta: float,
    self_loops: bool,
    normalization: str = "target",
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Validated :func:`transition_edges`."""
    check_positive(num_nodes, "num_nodes", strict=False, integer=True)
    check_edge_index(edge_index, num_nodes)
    check_positive(beta, "beta")
    check_choice(normalization, NORMALIZATIONS, "normalization")
    device = edge_index.device
    src, dst = edge_index[0].long(), edge_index[1].long()
    if edge_weight is None:
        w = torch.ones(src.numel(), device=device)
    else:
        check_tensor(edge_weight, "edge_weight", ndim=1, floating=True, finite=True)
        if edge_weight.numel() != src.numel():
            raise ValueError(
                f"'edge_weight' has {edge_weight.numel()} entries for {src.numel()} edges"
            )
        if edge_weight.numel() and edge_weight.min() < 0:
            raise ValueError("'edge_weight' must be non-negative (affinities)")
        w = edge_weight
    return transition_edges(src, dst, w, num_nodes, beta, self_loops, normalization)


def transition_edges(
    src: Tensor,
    dst: Tensor,
    weight: Tensor,
    num_nodes: int,
    beta: float = 1.0,
    self_loops: bool = True,
    normalization: str = "target",
    isolated: str = "keep",
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    r"""The random-walk transition :math:`T` of the affinities :math:`A` (``weight`` on edges
    ``src -> dst``) as an edge list: the one transition of the package (PSA / IRNet's random
    walk, :func:`transition_matrix`; WSGCN-I's graph,
    :func:`pyg_wsss.graphs.wsgcn.random_walk_transition`). No validation (callers check).

    :math:`A^{\circ\beta}` (with :math:`A_{ii} = 1` replacing existing loops when
    ``self_loops``), normalised

    * ``"target"``: over the incoming edges of every target,
      :math:`T_{ij} = A_{ij}^\beta / \sum_{i'} A_{i'j}^\beta` (PSA/IRNet's column
      normalisation; WSGCN's :math:`D^{-1} A` in PyG's ``j -> i`` convention);
    * ``"source"``: over the outgoing edges of every source (rows sum to 1).

    A node with nothing to normalise by keeps its score (``isolated="keep"``: a loop
    :math:`T_{jj} = 1`) or gets an empty row/column (``"zero"``).

    Returns:
        ``(src, dst, value)`` of the non-loop edges and ``(nodes, value)`` of the loops.
    """
    device = src.device
    w = weight.pow(beta)
    if self_loops:
        keep = src != dst  # the diagonal is exactly A_ii = 1
        src, dst, w = src[keep], dst[keep], w[keep]
        loops = torch.arange(num_nodes, device=device)
    else:
        loops = torch.zeros(0, dtype=torch.long, device=device)
    by = dst if normalization == "target" else src
    col = torch.zeros(num_nodes, device=device, dtype=w.dtype).index_add_(0, by, w)
    col[loops] += 1.0
    if isolated == "zero":
        return src, dst, w / col.clamp(min=1e-30)[by], loops, 1.0 / col[loops]
    empty = col <= 0
    if bool(empty.any()):
        # nodes without incoming weight keep their score (T_jj = 1): no 0/0
        loops = torch.cat([loops, torch.nonzero(empty).view(-1)])
        col[empty] = 1.0
    return src, dst, w / col[by], loops, 1.0 / col[loops]


def transition_matrix(
    edge_index: Tensor,
    edge_weight: Tensor | None,
    num_nodes: int,
    beta: float = 8.0,
    self_loops: bool = True,
    dense: bool = False,
    max_dense_nodes: int = DENSE_MAX_NODES,
    normalization: str = "target",
) -> Tensor:
    r"""The column-stochastic transition matrix :math:`T = \mathrm{colnorm}(A^{\circ\beta})`
    (:func:`transition_edges`).

    Args:
        edge_index: ``[2, E]`` (source ``i``, target ``j``).
        edge_weight: ``[E]`` non-negative affinities :math:`A_{ij}` (``None``: all 1).
        num_nodes: ``N``.
        beta: Power :math:`\beta > 0` (PSA/SEAM 8, IRNet 10).
        self_loops: Set the diagonal :math:`A_{ii} = 1` (upstream; existing self-loop edges
            are replaced). A node with no incoming weight at all gets :math:`T_{jj} = 1`.
        dense: Return the dense ``[N, N]`` matrix (reference; guarded by
            ``max_dense_nodes``).
        max_dense_nodes: Size guard of the dense path.
        normalization: ``"target"`` (default, upstream: every column sums to 1) or
            ``"source"`` (every row sums to 1), see :func:`transition_edges`.

    Returns:
        ``[N, N]`` float tensor in ``torch.sparse_csc`` layout (its transpose is the CSR
        matrix the walk multiplies with, at no cost), or dense with ``dense=True``;
        :math:`T_{ij}` at row ``i`` (source), column ``j`` (target); columns sum to 1.
    """
    src, dst, val, loops, loop_val = _weighted_edges(
        edge_index, edge_weight, num_nodes, beta, self_loops, normalization
    )
    if dense:
        _guard(num_nodes, max_dense_nodes)
        out = torch.zeros(num_nodes, num_nodes, device=val.device, dtype=val.dtype)
        out.index_put_((src, dst), val, accumulate=True)
        return out.index_put_((loops, loops), loop_val, accumulate=True)
    # CSC storage of T (columns = targets) is the CSR storage of T^T, so the walk's SpMM
    # T^T X uses it without a copy; T^T is built by the package's one COO -> CSR builder
    # (entries sorted by (target, source), duplicates summed).
    from ..ops.csr import csr_matrix

    with sparse_beta_warnings_off():  # (the CSC tensor: torch's sparse notices)
        tt = csr_matrix(torch.cat([dst, loops]), torch.cat([src, loops]),
                        torch.cat([val, loop_val]), (num_nodes, num_nodes))
        return torch.sparse_csc_tensor(tt.crow_indices(), tt.col_indices(), tt.values(),
                                       (num_nodes, num_nodes))


def _guard(num_nodes: int, max_nodes: int) -> None:
    if num_nodes > max_nodes:
        mib = num_nodes * num_nodes * 4 / 2**20
        raise ValueError(
            f"the dense random-walk reference needs {num_nodes} x {num_nodes} matrices "
            f"({mib:.0f} MiB each in float32), more than the guard max_nodes={max_nodes} "
            "allows; use the sparse path (dense=False) or raise the guard explicitly"
        )


def _scores_kn(scores: Tensor, num_nodes: int, node_dim: int | None) -> tuple[Tensor, bool]:
    """Return scores as ``[K, N]`` and whether they were given as ``[N, K]``."""
    check_tensor(scores, "scores", ndim=2, floating=True, finite=True)
    if node_dim is None:
        if scores.size(1) == num_nodes:
            return scores, False
        if scores.size(0) == num_nodes:
            return scores.t(), True
    elif node_dim in (1, -1):
        if scores.size(1) == num_nodes:
            return scores, False
    elif node_dim == 0:
        if scores.size(0) == num_nodes:
            return scores.t(), True
    else:
        raise ValueError(f"'node_dim' must be 0, 1 or None, got {node_dim!r}")
    raise ValueError(
        f"'scores' has shape {tuple(scores.shape)} but the transition matrix has "
        f"{num_nodes} nodes (expected [K, {num_nodes}] or [{num_nodes}, K])"
    )


def random_walk(
    scores: Tensor,
    transition: Tensor,
    num_steps: int,
    node_dim: int | None = None,
) -> Tensor:
    r"""``num_steps`` sparse random-walk steps :math:`X \leftarrow X T`.

    Each step is one CSR SpMM :math:`T^\top X^\top` (:math:`O(\mathrm{nnz} K)`); no
    :math:`N \times N` tensor is formed. ``num_steps = 2^k`` equals PSA's
    :math:`X T^{2^k}`.

    Args:
        scores: ``[K, N]`` (PSA's ``cam_vec``) or ``[N, K]``; float.
        transition: ``[N, N]`` :math:`T` from :func:`transition_matrix` (sparse CSC, CSR,
            COO or dense).
        num_steps: Number of steps (>= 0).
        node_dim: Which axis of ``scores`` indexes nodes (``None``: inferred; ``[K, N]`` wins
            when ``K == N``).

    Returns:
        The propagated scores, same shape as ``scores``.
    """
    check_positive(num_steps, "num_steps", strict=False, integer=True)
    if not isinstance(transition, Tensor) or transition.dim() != 2 or (
        transition.size(0) != transition.size(1)
    ):
        if not isinstance(transition, Tensor):
            raise TypeError(
                "'transition' must be a torch.Tensor (see transition_matrix), got "
                f"{type(transition).__name__}"
            )
        raise ValueError("'transition' must be a square [N, N] tensor (see transition_matrix)")
    if not transition.is_floating_point():
        raise TypeError(f"'transition' must be a floating-point tensor, got {transition.dtype}")
    n = transition.size(0)
    x, transposed = _scores_kn(scores, n, node_dim)
    xt = x.t().contiguous().to(transition.dtype)  # [N, K]
    with sparse_beta_warnings_off():  # (the layout conversions: torch's sparse notices)
        if transition.layout == torch.sparse_coo:
            transition = transition.coalesce()
        mt = transition.t()
        if transition.layout != torch.strided and mt.layout != torch.sparse_csr:
            mt = mt.to_sparse_csr()
    for _ in range(int(num_steps)):
        xt = mt @ xt
    out = xt.to(scores.dtype)
    return out if transposed else out.t().contiguous()


def random_walk_dense(
    scores: Tensor,
    edge_index: Tensor,
    edge_weight: Tensor | None,
    num_nodes: int,
    beta: float = 8.0,
    log_t: int = 8,
    self_loops: bool = True,
    max_nodes: int = DENSE_MAX_NODES,
    node_dim: int | None = None,
) -> Tensor:
    r"""Dense reference: :math:`X T^{2^k}` with :math:`T^{2^k}` by ``log_t`` squarings of
    the dense matrix (upstream's algorithm). Raises :class:`ValueError` when
    ``num_nodes > max_nodes``."""
    check_positive(log_t, "log_t", strict=False, integer=True)
    _guard(num_nodes, max_nodes)
    t = transition_matrix(edge_index, edge_weight, num_nodes, beta, self_loops, dense=True,
                          max_dense_nodes=max_nodes)
    x, transposed = _scores_kn(scores, num_nodes, node_dim)
    for _ in range(int(log_t)):
        t = t @ t
    out = (x.to(t.dtype) @ t).to(scores.dtype)
    return out.t().contiguous() if transposed else out


def random_walk_propagate(
    cam_scores: Tensor,
    edge_index: Tensor,
    edge_weight: Tensor | None,
    beta: float = 8.0,
    log_t: int = 8,
    self_loops: bool = True,
    dense: bool = False,
    max_dense_nodes: int = DENSE_MAX_NODES,
) -> Tensor:
    r"""Propagate ``[K, h, w]`` scores (e.g. :func:`~pyg_wsss.pseudo.seeds.cam_scores`) over
    a pixel graph of the ``h x w`` grid (node ``row * w + col``): :math:`X T^{2^{log_t}}`.

    Args:
        cam_scores: ``[K, h, w]`` float.
        edge_index, edge_weight: The graph and its affinities.
        beta, log_t: PSA's parameters (``2^log_t`` steps).
        self_loops: Diagonal 1.
        dense: Use the dense reference (guarded).

    Returns:
        ``[K, h, w]`` propagated (un-normalised) scores.
    """
    check_tensor(cam_scores, "cam_scores", ndim=3, floating=True, finite=True)
    check_positive(log_t, "log_t", strict=False, integer=True)
    k, h, w = cam_scores.shape
    x = cam_scores.reshape(k, h * w)
    if dense:
        out = random_walk_dense(x, edge_index, edge_weight, h * w, beta, log_t, self_loops,
                                max_dense_nodes, node_dim=1)
    else:
        t = transition_matrix(edge_index, edge_weight, h * w, beta, self_loops)
        out = random_walk(x, t, 2 ** int(log_t), node_dim=1)
    return out.reshape(k, h, w)


def random_walk_from_image(
    image: Union[np.ndarray, Tensor],
    cams: Tensor,
    tags: Tensor | np.ndarray | None,
    features: Tensor | None = None,
    stride: int = 4,
    radius: int = 5,
    beta: float = 8.0,
    log_t: int = 6,
    bg_power: float = 6.0,
    normalize: str | None = "max",
    sigma_rgb: float = 0.1,
    sigma_xy: float | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    r"""Random-walk baseline from an image and its CAMs, without a trained affinity network.

    1. Scores ``[(1 - max CAM)^bg_power, CAMs]`` (:func:`~pyg_wsss.pseudo.seeds.cam_scores`)
       average-pooled by ``stride`` (PSA pools by 8 to its feature grid).
    2. Pixel graph (``"disc"``, ``radius``) on the pooled grid; affinity = colour Gaussian
       :math:`\exp(-\|c_i - c_j\|^2 / 2\sigma_{rgb}^2)` on the pooled RGB in ``[0, 1]``
       (times :math:`\exp(-\|p_i - p_j\|^2 / 2\sigma_{xy}^2)` if ``sigma_xy``), multiplied by
       the feature affinity :math:`\exp(-\|f_i - f_j\|_1 / d)` when ``features``
       ``[d, h', w']`` are given (resized to the grid).
    3. :math:`2^{log_t}` sparse steps with :math:`\beta`; bilinear upsampling to the image;
       normalised per pixel to probabilities.

    Returns:
        float32 ``[C + 1, H, W]`` probabilities (channel 0 = background).

    Many parameters because: the baseline's published settings (stride, radius, beta,
    log_t, bg_power, normalisation, two kernel widths) are each a documented knob of the
    one call the demo and the CLI make; grouping them would only rename them.
    """
    from ..graphs.pixel import pixel_graph
    from ..graphs.weights import feature_affinity, gaussian_edge_weight
    from .crf import _as_uint8_rgb
    from .seeds import cam_scores as _cam_scores

    img = _as_uint8_rgb(image)
    check_positive(stride, "stride", integer=True)
    check_positive(sigma_rgb, "sigma_rgb")
    if isinstance(cams, np.ndarray):
        cams = torch.as_tensor(cams)
    check_tensor(cams, "cams")
    if cams.dtype == torch.bool or cams.is_complex():
        raise TypeError(f"'cams' must be a float tensor, got {cams.dtype}")
    if cams.dim() != 3 or tuple(cams.shape[1:]) != img.shape[:2]:
        raise ValueError(
            f"'cams' must be [C, H, W] at the image size {img.shape[:2]}, got {tuple(cams.shape)}"
        )
    device = torch.device(device) if device is not None else cams.device
    scores = _cam_scores(cams, tags, bg_power=bg_power, normalize=normalize).to(device)
    height, width = img.shape[:2]
    h, w = -(-height // stride), -(-width // stride)
    pad = (0, w * stride - width, 0, h * stride - height)
    pooled = F.avg_pool2d(F.pad(scores[None], pad), stride)[0]  # zero-padded like PSA
    rgb = torch.from_numpy(img).to(device).permute(2, 0, 1).float()[None] / 255.0
    colour = F.interpolate(rgb, size=(h, w), mode="area")[0].reshape(3, -1).t()
    graph = pixel_graph(h, w, radius, shape="disc", device=device)
    ew = gaussian_edge_weight(colour, graph.pos, graph.edge_index, sigma_rgb=sigma_rgb,
                              sigma_xy=sigma_xy if sigma_xy is not None else 1e6)
    if features is not None:
        check_tensor(features, "features", ndim=3, floating=True, finite=True)
        f = F.interpolate(features[None].to(device).float(), size=(h, w), mode="bilinear",
                          align_corners=False)[0]
        ew = ew * feature_affinity(f.reshape(f.size(0), -1).t(), graph.edge_index)
    # only background and the tagged classes carry mass: walk those channels only
    keep = torch.nonzero(pooled.flatten(1).amax(1) > 0).view(-1)
    keep = torch.unique(torch.cat([keep.new_zeros(1), keep]))
    rw = torch.zeros_like(pooled)
    rw[keep] = random_walk_propagate(pooled[keep], graph.edge_index, ew, beta=beta,
                                     log_t=log_t)
    up = F.interpolate(rw[None], size=(h * stride, w * stride), mode="bilinear",
                       align_corners=False)[0, :, :height, :width]
    up = up.clamp_min(0)
    total = up.sum(0, keepdim=True)
    uniform = torch.full_like(up, 1.0 / up.size(0))
    return torch.where(total > 0, up / total.clamp_min(1e-12), uniform)
