r"""Graph-Laplacian smoothness loss over an edge list (W 6-7)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd import Function
from torch.autograd.function import once_differentiable

from ..._checks import check_choice, check_edge_index, check_finite, check_positive, check_tensor
from ...ops.spmm import csr_matrix
from .cross_entropy import REDUCTIONS, _check_batch, reduce_graphs

VARIANTS = (None, "paper", "code")
_LOW = (torch.float16, torch.bfloat16)
METHODS = ("edges", "spmm")


class _QuadraticForm(Function):
    @staticmethod
    def forward(ctx, lap: Tensor, y: Tensor, batch: Tensor, b: int) -> Tensor:  # type: ignore[override]
        ly = torch.sparse.mm(lap, y)
        ctx.save_for_backward(ly, batch)
        return y.new_zeros(b).index_add_(0, batch, (y * ly).sum(-1))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        ly, batch = ctx.saved_tensors
        return None, ly * (2 * grad)[batch].unsqueeze(-1), None, None


def laplacian_quadratic_form(
    lap: Tensor, y: Tensor, batch: Tensor | None = None, num_graphs: int | None = None
) -> Tensor:
    r"""Per-graph :math:`\operatorname{tr}(Y_b^T L Y_b)` for a **symmetric** sparse CSR
    Laplacian ``lap`` (:func:`laplacian_matrix`; block-diagonal over the graphs of ``batch``).

    Half and bfloat16 ``y`` are computed in float32 (``lap`` may then be float32 or
    ``y``'s dtype) and the result is returned in ``y``'s dtype.

    One SpMM in total: the forward keeps :math:`L Y` and the backward is
    :math:`2\, g_b\, L Y` (valid because :math:`L = L^T`), where autograd through
    :math:`\sum Y \odot L Y` would need three.

    Shapes:
        lap ``[N, N]``, y ``[N, K]``, batch ``[N]`` -> ``[num_graphs]``.

    Example:
        >>> import torch
        >>> from pyg_wsss.graphs import pixel_graph
        >>> from pyg_wsss.nn.functional import laplacian_matrix, laplacian_quadratic_form
        >>> g = pixel_graph(2, 2, 1, shape="square")
        >>> lap = laplacian_matrix(g.edge_index, None, 4)
        >>> y = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
        >>> laplacian_quadratic_form(lap, y)
        tensor([8.])
    """
    check_tensor(y, "y", ndim=2, floating=True)
    if not isinstance(lap, Tensor):
        raise TypeError(f"'lap' must be a sparse CSR tensor, got {type(lap).__name__}")
    if lap.layout != torch.sparse_csr or tuple(lap.shape) != (y.size(0), y.size(0)):
        raise ValueError(
            f"'lap' must be a sparse CSR [N, N] matrix with N = {y.size(0)}, got "
            f"{lap.layout} {tuple(lap.shape)}"
        )
    low = y.dtype in _LOW
    lap_ok = lap.dtype == y.dtype or (low and lap.dtype in (*_LOW, torch.float32))
    if not lap_ok or lap.device != y.device:
        raise TypeError(f"'lap' is {lap.dtype} on {lap.device} but 'y' is {y.dtype} on {y.device}")
    batch, b = _check_batch(batch, y.size(0), num_graphs)
    batch = batch.to(y.device)
    check_finite(y, "y", nan_only=True)
    if lap._nnz() == 0:
        return y.new_zeros(b) + y[:0].sum()  # keeps the autograd graph
    if low:  # no half/bfloat16 sparse CPU kernels, and the sums overflow fp16: work in fp32
        out = _QuadraticForm.apply(lap.to(torch.float32), y.float().contiguous(), batch, b)
        return out.to(y.dtype)
    return _QuadraticForm.apply(lap, y.contiguous(), batch, b)


def laplacian_matrix(
    edge_index: Tensor, edge_weight: Tensor | None, num_nodes: int, dtype: torch.dtype | None = None
) -> Tensor:
    r"""Sparse CSR :math:`L = D - W_s` of the symmetrised weights
    :math:`W_s = (W + W^T) / 2` (:math:`W_{ij}` = weight of edge ``j -> i``), so that
    :math:`\operatorname{tr}(Y^T L Y) = \frac12 \sum_{(j \to i)} w_{ji} \|y_i - y_j\|^2`
    for any edge list (self-loops cancel). ``[N, N]``, symmetric, ``2 E + N`` stored entries at
    most; never dense.

    Args:
        edge_index: ``[2, E]`` int64/int32 indices in ``[0, num_nodes)``.
        edge_weight: ``[E]`` finite floating weights (``None``: all ones).
        num_nodes: ``N``.
        dtype: Floating dtype of the result (default: ``edge_weight``'s, float32 without).

    Example:
        >>> from pyg_wsss.graphs import pixel_graph
        >>> from pyg_wsss.nn.functional import laplacian_matrix
        >>> g = pixel_graph(2, 2, 1, shape="square")
        >>> laplacian_matrix(g.edge_index, None, 4).to_dense()
        tensor([[ 3., -1., -1., -1.],
                [-1.,  3., -1., -1.],
                [-1., -1.,  3., -1.],
                [-1., -1., -1.,  3.]])
    """
    check_positive(num_nodes, "num_nodes", strict=False, integer=True)
    num_nodes = int(num_nodes)
    check_edge_index(edge_index, num_nodes, always=True)  # a one-off builder
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"'dtype' must be a floating torch.dtype, got {dtype!r}")
    src, dst = edge_index[0].long(), edge_index[1].long()
    if edge_weight is None:
        edge_weight = torch.ones(src.numel(), dtype=dtype or torch.float, device=src.device)
    check_tensor(edge_weight, "edge_weight", ndim=1, floating=True)
    if edge_weight.numel() != src.numel():
        raise ValueError(
            f"'edge_weight' has {edge_weight.numel()} entries but there are {src.numel()} edges"
        )
    check_finite(edge_weight, "edge_weight")
    w = edge_weight.to(dtype) if dtype is not None else edge_weight
    half = w / 2
    deg = w.new_zeros(num_nodes).index_add(0, dst, half).index_add(0, src, half)
    nodes = torch.arange(num_nodes, device=src.device)
    row = torch.cat([dst, src, nodes])
    col = torch.cat([src, dst, nodes])
    val = torch.cat([-half, -half, deg])
    return csr_matrix(row, col, val, (num_nodes, num_nodes))


def laplacian_loss(
    y: Tensor,
    edge_index: Tensor,
    edge_weight: Tensor | None = None,
    num_nodes: int | None = None,
    variant: str | None = None,
    batch: Tensor | None = None,
    num_graphs: int | None = None,
    reduction: str = "mean",
    method: str = "edges",
) -> Tensor:
    r"""Laplacian (smoothness) loss of WSGCN (W 6):

    .. math::
        \ell_{lp} = \frac{1}{2|\mathcal{V}|} \sum_{(j \to i) \in \mathcal{E}} \Phi_{ji}
                    \|y_i - y_j\|_2^2
                  = \frac{1}{|\mathcal{V}|} \operatorname{tr}(Y^T L Y)

    with :math:`L = D - \Phi` when the edge set is symmetric (each unordered pair once in
    each direction with the same weight, as :func:`~pyg_wsss.graphs.pixel_graph` builds it;
    otherwise :math:`\Phi` is replaced by :math:`(\Phi + \Phi^T)/2`). The weights
    :math:`\Phi` are the Gaussian colour/position kernel of W 7:
    :func:`~pyg_wsss.graphs.gaussian_edge_weight` with ``preset="wsgcn_paper"`` or
    ``"wsgcn_code"`` on ``pixel_graph(h, w, 2, shape="square")`` (the 5x5 window).

    What :math:`Y` is: the paper applies the loss to the probabilities :math:`Q`, the
    authors' code to the log-probabilities. ``variant=None`` uses ``y`` as given (pass what
    you want); ``variant="paper"`` applies :func:`torch.softmax` to ``y`` and
    ``variant="code"`` :func:`torch.log_softmax` (``y`` then holds logits or
    log-probabilities).

    Args:
        y: ``[N, K]`` node values.
        edge_index: ``[2, E]`` (source ``j``, target ``i``).
        edge_weight: ``[E]`` weights :math:`\Phi_{ji}` (default 1).
        num_nodes: ``N`` (default ``y.size(0)``); the normaliser :math:`|\mathcal{V}|`.
        variant: ``None`` | ``"paper"`` | ``"code"`` (see above).
        batch, num_graphs: Optional PyG batch vector: per-graph loss, each normalised by
            its own node count (edges must not cross graphs).
        reduction: ``"mean"`` / ``"sum"`` over graphs or ``"none"`` (``[num_graphs]``).
        method: Both compute half and bfloat16 ``y`` in float32 and return ``y``'s dtype.
            ``"edges"`` (gather/scatter over the edge list: the reference) or
            ``"spmm"`` (:func:`laplacian_quadratic_form` with a sparse CSR Laplacian: one
            SpMM, no ``[E, K]`` temporary; same value up to rounding). Under
            :func:`torch.compile` the ``"edges"`` path is traced (sparse tensors do not
            trace).

    Shapes:
        y ``[N, K]``, edge_index ``[2, E]``, edge_weight ``[E]`` -> ``[]`` or ``[B]``.

    Example:
        >>> import torch
        >>> from pyg_wsss.graphs import pixel_graph
        >>> from pyg_wsss.nn.functional import laplacian_loss
        >>> g = pixel_graph(2, 2, 1, shape="square")  # 4 nodes, all 12 ordered pairs
        >>> y = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
        >>> laplacian_loss(y, g.edge_index)  # 8 differing pairs * 2 / (2 * 4 nodes)
        tensor(2.)
        >>> laplacian_loss(y, g.edge_index, method="spmm")
        tensor(2.)
    """
    check_tensor(y, "y", ndim=2, floating=True)
    check_choice(variant, VARIANTS, "variant")
    check_choice(reduction, REDUCTIONS, "reduction")
    check_choice(method, METHODS, "method")
    n = y.size(0) if num_nodes is None else num_nodes
    if n != y.size(0):
        raise ValueError(f"'num_nodes' is {n} but 'y' has {y.size(0)} rows")
    check_edge_index(edge_index, n)
    if edge_weight is not None:
        check_tensor(edge_weight, "edge_weight", ndim=1, floating=True)
        if edge_weight.numel() != edge_index.size(1):
            raise ValueError(
                f"'edge_weight' has {edge_weight.numel()} entries but there are "
                f"{edge_index.size(1)} edges"
            )
        check_finite(edge_weight, "edge_weight")
    batch, b = _check_batch(batch, n, num_graphs)
    batch = batch.to(y.device)
    check_finite(y, "y", nan_only=True)
    out_dtype = y.dtype
    if out_dtype in _LOW:  # half / bfloat16: computed in float32, returned in their dtype
        y = y.float()
    if variant == "paper":
        y = F.softmax(y, dim=-1)
    elif variant == "code":
        y = F.log_softmax(y, dim=-1)
    src, dst = edge_index[0].long(), edge_index[1].long()
    if method == "edges" or torch.compiler.is_compiling():
        diff = (y[dst] - y[src]).pow(2).sum(-1)
        if edge_weight is not None:
            diff = diff * edge_weight.to(y.dtype)
        total = y.new_zeros(b).index_add(0, batch[dst], diff) / 2
    else:
        lap = laplacian_matrix(edge_index, edge_weight, n, dtype=y.dtype)
        total = laplacian_quadratic_form(lap, y, batch, b)
    count = y.new_zeros(b).index_add(0, batch, torch.ones_like(batch, dtype=y.dtype))
    return reduce_graphs(total / count.clamp(min=1), reduction).to(out_dtype)
