"""The affinity attention layer of A2GNN (Zhang et al., TPAMI 2021, Eq. 17-18)."""
from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Parameter
from torch_geometric import EdgeIndex
from torch_geometric.nn.conv import MessagePassing
from torch_geometric.typing import (
    WITH_TORCH_SPARSE,
    Adj,
    OptTensor,
    PairTensor,
    Size,
    SparseTensor,
)
from torch_geometric.utils import add_self_loops as _add_self_loops
from torch_geometric.utils import (
    is_torch_sparse_tensor,
    remove_self_loops,
    softmax,
    to_edge_index,
)

from ..._checks import (
    check_batch,
    check_choice,
    check_edge_index,
    check_finite,
    check_fraction,
    check_positive,
    check_tensor,
    value_checks,
)
from ...ops import edge_attention, to_csr

NEGATIVE_COSINE = ("indicator", "mask", "none")


class _EdgeDot(torch.autograd.Function):
    """Per-edge dot product ``<xn_dst[dst], xn_src[src]>`` (the SDDMM of the cosines) that
    keeps only the node features and the indices for the backward pass (recomputing the two
    ``[E, F]`` gathers), so autograd stores O(N F + E) instead of O(E F). ``xn_src`` and
    ``xn_dst`` are the same tensor on one node set (then one gradient buffer is used)."""

    @staticmethod
    def forward(ctx, xn_src: Tensor, xn_dst: Tensor, src: Tensor, dst: Tensor) -> Tensor:
        ctx.shared = xn_src is xn_dst
        ctx.save_for_backward(xn_src, xn_dst, src, dst)
        return (xn_dst.index_select(0, dst) * xn_src.index_select(0, src)).sum(-1)

    @staticmethod
    def backward(ctx, grad: Tensor):
        xn_src, xn_dst, src, dst = ctx.saved_tensors
        g = grad.unsqueeze(-1)
        if ctx.shared:  # one buffer: autograd adds the (None) second gradient to nothing
            out = torch.zeros_like(xn_src)
            out.index_add_(0, dst, g * xn_src.index_select(0, src))
            out.index_add_(0, src, g * xn_dst.index_select(0, dst))
            return out, None, None, None
        g_src = torch.zeros_like(xn_src).index_add_(0, src, g * xn_dst.index_select(0, dst))
        g_dst = torch.zeros_like(xn_dst).index_add_(0, dst, g * xn_src.index_select(0, src))
        return g_src, g_dst, None, None


def _edge_dot(xn_src: Tensor, xn_dst: Tensor, src: Tensor, dst: Tensor) -> Tensor:
    """:class:`_EdgeDot` eagerly; plain gathers under ``torch.compile`` (dynamo does not
    trace an ``autograd.Function`` given the same tensor twice, and the compiled backward
    plans its own memory)."""
    if torch.compiler.is_compiling():
        return (xn_dst.index_select(0, dst) * xn_src.index_select(0, src)).sum(-1)
    return _EdgeDot.apply(xn_src, xn_dst, src, dst)


def _split_x(x: Union[Tensor, PairTensor], size: Size) -> Tuple[Tensor, Tensor]:
    """``(x_src, x_dst)`` of a node feature matrix or a bipartite pair (PyG's convention:
    with a single ``x`` and ``size=(N, M)`` the targets are the first ``M`` nodes)."""
    if isinstance(x, (tuple, list)):
        if len(x) != 2 or not all(isinstance(t, Tensor) for t in x):
            raise TypeError(
                "'x' must be a Tensor or a pair (x_src, x_dst) of Tensors (the cosine needs "
                "the target features too)"
            )
        x_src, x_dst = x
        check_tensor(x_src, "x[0]", ndim=2, floating=True)
        check_tensor(x_dst, "x[1]", ndim=2, floating=True)
        if x_src.size(1) != x_dst.size(1) or x_src.dtype != x_dst.dtype:
            raise ValueError(
                f"'x' = (x_src, x_dst) need equal widths and dtypes, got "
                f"{tuple(x_src.shape)} {x_src.dtype} and {tuple(x_dst.shape)} {x_dst.dtype}"
            )
    else:
        check_tensor(x, "x", ndim=2, floating=True)
        x_src = x_dst = x
        if size is not None and size[1] is not None and int(size[1]) != x.size(0):
            if not 0 <= int(size[1]) <= x.size(0):
                raise ValueError(
                    f"'size' {tuple(size)}: with one 'x' the targets are its first size[1] "
                    f"nodes, so size[1] must be <= {x.size(0)}"
                )
            x_dst = x[: int(size[1])]
    if size is not None:
        if len(size) != 2:
            raise ValueError(f"'size' must be (num_src, num_dst), got {size!r}")
        for k, (given, have) in enumerate(zip(size, (x_src.size(0), x_dst.size(0)))):
            if given is not None and int(given) != have:
                raise ValueError(
                    f"'size' {tuple(size)} does not match the {have} "
                    f"{'source' if k == 0 else 'target'} nodes of 'x'"
                )
    return x_src, x_dst


def _read_adjacency(
    edge_index: Adj, edge_weight: OptTensor, num_src: int, num_dst: int
) -> Tuple[Tensor, OptTensor, Optional[str], Optional[Tuple[int, int]]]:
    """``(edge_index [2, E], edge_weight, layout, sparse_size)`` of any PyG adjacency (the
    values of a sparse ``adj_t [N_t, N_s]`` are the edge weights unless given), checked."""
    layout: Optional[str] = None
    sparse_size: Optional[Tuple[int, int]] = None
    if WITH_TORCH_SPARSE and isinstance(edge_index, SparseTensor):
        row, col, value = edge_index.coo()
        sparse_size = (edge_index.size(0), edge_index.size(1))
        if edge_weight is None and value is not None:
            edge_weight = value
        edge_index = torch.stack([col, row], dim=0)
        layout = "torch_sparse"
    elif is_torch_sparse_tensor(edge_index):
        layout = str(edge_index.layout)
        sparse_size = (edge_index.size(0), edge_index.size(1))
        indices, value = to_edge_index(edge_index)
        if edge_weight is None:
            edge_weight = value
        edge_index = indices.flip(0)
    elif isinstance(edge_index, EdgeIndex):
        edge_index = edge_index.as_tensor()
    elif not isinstance(edge_index, Tensor):
        raise TypeError(f"'edge_index' must be a Tensor or SparseTensor, got {type(edge_index)}")
    if sparse_size is not None and sparse_size != (num_dst, num_src):
        raise ValueError(
            f"the sparse adjacency adj_t must be [num_dst, num_src] = [{num_dst}, "
            f"{num_src}], got {list(sparse_size)}"
        )
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"'edge_index' must have shape [2, E], got {tuple(edge_index.shape)}")
    if edge_index.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"'edge_index' must be int64 or int32, got {edge_index.dtype}")
    check_edge_index(edge_index, max(num_src, num_dst))  # index range: a value check
    if num_src != num_dst and edge_index.numel() and value_checks(edge_index):
        if int(edge_index[0].max()) >= num_src or int(edge_index[1].max()) >= num_dst:
            raise ValueError(f"'edge_index' has sources >= {num_src} or targets >= {num_dst}")
    return edge_index, edge_weight, layout, sparse_size


def _edge_weights(edge_weight: OptTensor, num_edges: int, x: Tensor) -> Tensor:
    if edge_weight is None:
        return x.new_ones(num_edges)
    check_tensor(edge_weight, "edge_weight", floating=True)
    if edge_weight.numel() != num_edges:
        raise ValueError(f"'edge_weight' has {edge_weight.numel()} entries for {num_edges} edges")
    check_finite(edge_weight, "edge_weight")
    return edge_weight.view(-1).to(x.dtype)


def _attention_output(
    edge_index: Tensor, alpha: Tensor, layout: Optional[str],
    sparse_size: Optional[Tuple[int, int]],
) -> Union[Tuple[Tensor, Tensor], SparseTensor]:
    """The attention in the caller's layout: ``(edge_index, alpha)``, ``(adj, values)`` for a
    ``torch.sparse`` input (COO/CSR as given) or a ``SparseTensor``."""
    if layout == "torch_sparse":
        return SparseTensor(
            row=edge_index[1], col=edge_index[0], value=alpha, sparse_sizes=sparse_size
        )
    if layout is not None:
        adj = torch.sparse_coo_tensor(edge_index.flip(0), alpha, sparse_size).coalesce()
        if layout == "torch.sparse_csr":
            adj = adj.to_sparse_csr()
        return adj, adj.values()
    return edge_index, alpha


class AffinityAttentionConv(MessagePassing):
    r"""The affinity attention layer from the `"Affinity Attention Graph Neural Network for
    Weakly Supervised Semantic Segmentation" <https://arxiv.org/abs/2106.04054>`_ paper
    (TPAMI 2021, Eq. 17-18).

    .. math::
        \mathbf{h}^{\prime}_i = \sum_{j \in \mathcal{S}(i)} P_{i,j}\, \mathbf{h}_j,
        \qquad
        P_{i,j} = \frac{\exp\left(w \cos(\mathbf{h}_i, \mathbf{h}_j)
            + \beta\, [\cos(\mathbf{h}_i, \mathbf{h}_j) > 0]\, E_{i,j}\right)}
        {\sum_{k \in \mathcal{S}(i)} \exp\left(w \cos(\mathbf{h}_i, \mathbf{h}_k)
            + \beta\, [\cos(\mathbf{h}_i, \mathbf{h}_k) > 0]\, E_{i,k}\right)}

    where :math:`\mathcal{S}(i)` are the sources of the edges into node :math:`i` plus
    :math:`i` itself (with :math:`E_{i,i} = 1`), :math:`E_{i,j}` is the soft edge weight
    (the affinity of Eq. 14), :math:`w` a learnable scalar (the cosine temperature; the
    authors' code names it ``beta`` and initialises it :math:`\mathcal{U}(0, 1)`) and
    :math:`\beta` the edge weighting factor (constant 10 in the authors' code). There is no
    weight matrix, bias or non-linearity inside the layer.

    The handling of negative cosines is selectable:

    * ``"indicator"`` (paper, Eq. 18): the edge term is switched off where
      :math:`\cos \le 0`;
    * ``"mask"`` (authors' code): neighbours with :math:`\cos < 0` are removed from
      :math:`\mathcal{S}(i)` (their logit is :math:`-\infty`);
    * ``"none"``: :math:`w \cos + \beta E` everywhere.

    On non-negative features (A2GNN's, after the ReLU embedding) all cosines are
    :math:`\ge 0` and ``"mask"`` never fires. With :math:`\beta = 0`, or when all edge
    weights are equal (the edge term is then constant per softmax group and cancels; this
    needs :math:`\cos > 0` under ``"indicator"``), the layer equals PyG's
    :class:`~torch_geometric.nn.conv.AGNNConv` whose ``beta`` is :math:`w`.

    Existing self-loops of the input graph are *masked* (attention 0) rather than removed
    and one self-loop per node with weight ``self_loop_weight`` is appended, so that no
    shape depends on the data (``torch.compile`` without graph breaks); the returned
    attention weights therefore list the masked loops with weight 0.

    Args:
        requires_grad (bool, optional): If :obj:`False`, :math:`w` is a fixed buffer.
            (default: :obj:`True`)
        w_init (float, optional): Initial value of :math:`w`; :obj:`None` draws it from
            :math:`\mathcal{U}(0, 1)` like the authors' code. (default: :obj:`None`)
        beta (float, optional): Edge weighting factor :math:`\beta \ge 0`.
            (default: :obj:`10.0`, the authors' constant)
        negative_cosine (str, optional): ``"indicator"`` (paper), ``"mask"`` (code) or
            ``"none"``. (default: ``"indicator"``)
        add_self_loops (bool, optional): Mask existing self-loops and add one per node
            with :math:`E_{i,i}` = ``self_loop_weight``. (default: :obj:`True`)
        self_loop_weight (float, optional): :math:`E_{i,i}` of the added loops.
            (default: :obj:`1.0`)
        dropout (float, optional): Dropout probability on the normalised attention
            coefficients. (default: :obj:`0.0`)
        num_graphs (int, optional): Number of independent scalars :math:`w`, one per graph
            of a mini-batch (per-image models trained as one batched problem); then
            ``batch`` must be passed to :meth:`forward`. (default: :obj:`1`)
        fused (bool, optional): Use the fused CSR kernel of :mod:`pyg_wsss.ops` (SDDMM +
            segment softmax + SpMM; memory :math:`O(E + NF)`). The plain gather/scatter
            path (the reference) is used when :obj:`False`, with attention dropout in
            training, and under ``torch.compile``. Both paths compute half and bfloat16
            inputs in float32 and return the input dtype (finite wherever float32 is).
            (default: :obj:`True`)
        eps (float, optional): Norm clamp of the cosine (as
            :func:`torch.nn.functional.normalize`; AGNNConv uses ``1e-12``).
        **kwargs (optional): Additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:**
          node features :math:`(|\mathcal{V}|, F)` or
          :math:`((|\mathcal{V}_s|, F), (|\mathcal{V}_t|, F))` if bipartite,
          edge indices :math:`(2, |\mathcal{E}|)` (or a sparse adjacency
          :math:`(|\mathcal{V}_t|, |\mathcal{V}_s|)`, whose values are the edge weights),
          edge weights :math:`(|\mathcal{E}|)` *(optional, default 1)*,
          batch vector :math:`(|\mathcal{V}_t|)` *(only with* ``num_graphs > 1`` *)*
        - **output:** node features :math:`(|\mathcal{V}_t|, F)`. If
          ``return_attention_weights`` is set, additionally
          :math:`((2, |\mathcal{E}'|), (|\mathcal{E}'|))` (or the sparse adjacency with
          the attention as values), :math:`\mathcal{E}'` including the added self-loops.

    PyG integration: under :mod:`torch_geometric.explain` (an edge mask set on the layer)
    and whenever message/aggregate/edge-update hooks are registered the layer runs the
    gather/scatter path through :meth:`propagate` (the fused kernel has no per-message
    hook), and existing self-loops are then removed instead of masked, so that the messages
    are the :math:`|\mathcal{E}| - L + |\mathcal{V}|` of ``remove_self_loops`` +
    ``add_self_loops`` that PyG's explainers expect (as in
    :class:`~torch_geometric.nn.conv.GATConv`). Bipartite input ``(x_src, x_dst)``
    (e.g. through :func:`torch_geometric.nn.to_hetero`) needs ``add_self_loops=False``.

    Example:
        >>> import torch
        >>> from pyg_wsss.nn.conv import AffinityAttentionConv
        >>> x = torch.rand(4, 8)
        >>> edge_index = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])
        >>> edge_weight = torch.tensor([0.9, 0.1, 0.5, 1.0])
        >>> conv = AffinityAttentionConv(w_init=1.0, beta=10.0)
        >>> out = conv(x, edge_index, edge_weight)
        >>> out.shape
        torch.Size([4, 8])
        >>> out, (ei, alpha) = conv(x, edge_index, return_attention_weights=True)
        >>> ei.shape, alpha.shape  # 4 edges + 4 added self-loops
        (torch.Size([2, 8]), torch.Size([8]))
        >>> x_src, x_dst = torch.rand(5, 8), torch.rand(2, 8)  # bipartite
        >>> bip = AffinityAttentionConv(w_init=1.0, add_self_loops=False)
        >>> bip((x_src, x_dst), torch.tensor([[0, 3, 4], [0, 1, 1]])).shape
        torch.Size([2, 8])
    """

    def __init__(
        self,
        requires_grad: bool = True,
        w_init: Optional[float] = None,
        beta: float = 10.0,
        negative_cosine: str = "indicator",
        add_self_loops: bool = True,
        self_loop_weight: float = 1.0,
        dropout: float = 0.0,
        num_graphs: int = 1,
        eps: float = 1e-12,
        fused: bool = True,
        **kwargs,
    ):
        kwargs.setdefault("aggr", "add")
        super().__init__(node_dim=0, **kwargs)
        check_positive(beta, "beta", strict=False)
        check_choice(negative_cosine, NEGATIVE_COSINE, "negative_cosine")
        check_fraction(dropout, "dropout")
        check_positive(num_graphs, "num_graphs", integer=True)
        check_positive(eps, "eps")
        if w_init is not None and not isinstance(w_init, (int, float)):
            raise TypeError(f"'w_init' must be a number or None, got {w_init!r}")
        self.requires_grad = requires_grad
        self.w_init = w_init
        self.beta = float(beta)
        self.negative_cosine = negative_cosine
        self.add_self_loops = add_self_loops
        self.self_loop_weight = float(self_loop_weight)
        self.dropout = float(dropout)
        self.num_graphs = int(num_graphs)
        self.eps = float(eps)
        self.fused = bool(fused)
        if requires_grad:
            self.w = Parameter(torch.empty(self.num_graphs))
        else:
            self.register_buffer("w", torch.empty(self.num_graphs))
        self.reset_parameters()

    def reset_parameters(self, generator: Optional[torch.Generator] = None) -> None:
        """Re-initialise :math:`w` (``w_init`` or :math:`\\mathcal{U}(0, 1)`; draws from
        ``generator`` when given)."""
        super().reset_parameters()
        with torch.no_grad():
            if self.w_init is None:
                val = torch.rand(self.w.shape, generator=generator, dtype=self.w.dtype)
                self.w.copy_(val.to(self.w.device))
            else:
                self.w.fill_(float(self.w_init))

    def forward(
        self,
        x: Union[Tensor, PairTensor],
        edge_index: Adj,
        edge_weight: OptTensor = None,
        batch: OptTensor = None,
        return_attention_weights: Optional[bool] = None,
        size: Size = None,
    ) -> Union[Tensor, Tuple[Tensor, Tuple[Tensor, Tensor]], Tuple[Tensor, SparseTensor]]:
        r"""Runs the forward pass of the module.

        Args:
            x (torch.Tensor or (torch.Tensor, torch.Tensor)): Node features :math:`(N, F)`,
                or a bipartite pair ``(x_src, x_dst)`` of :math:`(N_s, F)` and
                :math:`(N_t, F)` (the cosine compares a target with its sources).
            edge_index (torch.Tensor or SparseTensor): ``[2, E]`` (int64/int32,
                :class:`~torch_geometric.EdgeIndex`; row 0 = source :math:`j`, row 1 =
                target :math:`i`), or a ``torch.sparse`` (COO/CSR) / ``SparseTensor``
                adjacency ``adj_t[i, j]`` of shape :math:`(N_t, N_s)` whose values are
                :math:`E_{i,j}`.
            edge_weight (torch.Tensor, optional): :math:`E_{i,j}` per edge, ``[E]``.
            batch (torch.Tensor, optional): Graph of each (target) node in
                ``[0, num_graphs)`` (``num_graphs > 1``; any order). Its length is always
                checked, its range (like the ``edge_index`` range and NaN/Inf in ``x`` /
                ``edge_weight``) under the validation level of :mod:`pyg_wsss._checks`.
            return_attention_weights (bool, optional): If set, also return
                ``(edge_index, attention)`` (the sparse layout for sparse input).
            size ((int, int), optional): ``(N_s, N_t)``; with a single ``x`` the targets are
                its first :math:`N_t` nodes (PyG's convention for sampled subgraphs).
        """
        x_src, x_dst = _split_x(x, size)
        num_src, num_dst = x_src.size(0), x_dst.size(0)
        square = x_src is x_dst
        user_edge_index, edge_weight, layout, sparse_size = _read_adjacency(
            edge_index, edge_weight, num_src, num_dst
        )
        check_finite(x_src, "x")
        if not square:
            check_finite(x_dst, "x")
        edge_index = user_edge_index  # the CSR cache is keyed on the caller's tensor
        if edge_index.dtype != torch.long:
            edge_index = edge_index.long()
        edge_weight = _edge_weights(edge_weight, edge_index.size(1), x_src)
        if batch is not None:  # checked also when unused (num_graphs = 1: all zeros)
            batch, _ = check_batch(batch, num_dst, self.num_graphs, device=x_src.device)
        if self.num_graphs > 1 and batch is None:
            raise ValueError("'batch' is required when num_graphs > 1")
        fused = self._use_fused()
        edge_index, edge_weight, keep = self._self_loops(edge_index, edge_weight, num_src, num_dst)
        if fused:
            out, alpha = self._fused_forward(
                x_src, x_dst, user_edge_index, edge_index, edge_weight, keep, batch
            )
        else:
            out, alpha = self._propagate_forward(
                x_src, x_dst, edge_index, edge_weight, keep, batch
            )
        if return_attention_weights:
            return out, _attention_output(edge_index, alpha, layout, sparse_size)
        return out

    def _self_loops(
        self, edge_index: Tensor, edge_weight: Tensor, num_src: int, num_dst: int
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """Existing loops masked (``keep``) and one loop per node appended (``min(N_s, N_t)``
        on bipartite input, as GATConv); under PyG's explainers the existing loops are
        removed instead (E - L + N messages, GATConv's layout, which the edge masks expect;
        a data-dependent shape, but explainers run eagerly)."""
        device = edge_index.device
        if not self.add_self_loops:
            return edge_index, edge_weight, torch.ones(edge_index.size(1), dtype=torch.bool,
                                                       device=device)
        num_loops = min(num_src, num_dst)
        if self._explaining():
            edge_index, edge_weight = remove_self_loops(edge_index, edge_weight)
            keep = torch.ones(edge_index.size(1) + num_loops, dtype=torch.bool, device=device)
        else:
            loop_mask = edge_index[0] == edge_index[1]
            keep = torch.cat([~loop_mask, loop_mask.new_ones(num_loops)])
        edge_index, _ = _add_self_loops(edge_index, num_nodes=(num_src, num_dst))
        edge_weight = torch.cat(
            [edge_weight, edge_weight.new_full((num_loops,), self.self_loop_weight)]
        )
        return edge_index, edge_weight, keep

    def _fused_forward(
        self, x_src: Tensor, x_dst: Tensor, user_edge_index: Tensor, edge_index: Tensor,
        edge_weight: Tensor, keep: Tensor, batch: OptTensor,
    ) -> Tuple[Tensor, Tensor]:
        # SDDMM + segment softmax + SpMM over a cached CSR (pyg_wsss.ops): no [E, F]
        # tensor in forward or backward. Same edge order as ``edge_index`` (loops appended).
        num_src, num_dst = x_src.size(0), x_dst.size(0)
        square = x_src is x_dst
        if num_src == num_dst:
            csr = to_csr(user_edge_index, num_src, self_loops=self.add_self_loops)
        elif self.add_self_loops:
            csr = to_csr(edge_index, (num_src, num_dst), cache=False)
        else:
            csr = to_csr(user_edge_index, (num_src, num_dst))
        temperature = self.w[batch] if self.num_graphs > 1 else self.w.reshape(())
        out, alpha = edge_attention(
            x_src, csr, score="cosine", temperature=temperature, edge_weight=edge_weight,
            edge_scale=self.beta, negative=self.negative_cosine, edge_mask=keep,
            eps=self.eps, return_attention_weights=True,
            query=None if square else x_dst, key=None if square else x_src,
            num_nodes=None if square else num_dst,
        )
        return out, alpha

    def _propagate_forward(
        self, x_src: Tensor, x_dst: Tensor, edge_index: Tensor, edge_weight: Tensor,
        keep: Tensor, batch: OptTensor,
    ) -> Tuple[Tensor, Tensor]:
        # The gather/scatter reference through edge_updater + propagate. Half / bfloat16 are
        # computed in float32 (as the fused kernel does): the norm of 1e4-sized features and
        # F.normalize's eps would overflow / round to 0 in fp16.
        num_src, num_dst = x_src.size(0), x_dst.size(0)
        w = self.w[batch] if self.num_graphs > 1 else self.w.expand(num_dst)
        low = x_src.dtype in (torch.float16, torch.bfloat16)
        xw_src = x_src.float() if low else x_src
        xn_src = F.normalize(xw_src, p=2.0, dim=-1, eps=self.eps)
        if x_src is x_dst:
            xn_dst = xn_src
        else:
            xn_dst = F.normalize(x_dst.float() if low else x_dst, p=2.0, dim=-1, eps=self.eps)
        # edge_updater_type: (xn_src: Tensor, xn_dst: Tensor, w: Tensor,
        #                     edge_weight: Tensor, keep: Tensor)
        alpha = self.edge_updater(
            edge_index, xn_src=xn_src, xn_dst=xn_dst, w=w.to(xw_src.dtype),
            edge_weight=edge_weight.to(xw_src.dtype), keep=keep, size=(num_src, num_dst),
        )
        # propagate_type: (x: Tensor, alpha: Tensor)
        out = self.propagate(edge_index, x=xw_src, alpha=alpha, size=(num_src, num_dst))
        return out.to(x_src.dtype), alpha

    def _explaining(self) -> bool:
        # set by torch_geometric.explain (set_masks): messages are multiplied by an edge mask
        return self._explain is True or self._edge_mask is not None

    def _use_fused(self) -> bool:
        # The fused kernel has no attention dropout, no per-message hooks and is opaque to
        # torch.compile: the gather/scatter path (the reference, through ``propagate``)
        # serves those cases, and PyG's explainers (edge masks on the messages, attention
        # read from ``message(x_j, alpha)`` by hooks).
        if not self.fused or (self.training and self.dropout > 0):
            return False
        if self._explaining():
            return False
        if (self._propagate_forward_pre_hooks or self._propagate_forward_hooks
                or self._message_forward_pre_hooks or self._message_forward_hooks
                or self._aggregate_forward_pre_hooks or self._aggregate_forward_hooks
                or self._edge_update_forward_pre_hooks or self._edge_update_forward_hooks):
            return False
        return not torch.compiler.is_compiling()

    def edge_update(
        self,
        xn_src: Tensor,
        xn_dst: Tensor,
        edge_index_i: Tensor,
        edge_index_j: Tensor,
        w_i: Tensor,
        edge_weight: Tensor,
        keep: Tensor,
        index: Tensor,
        ptr: OptTensor,
        dim_size: Optional[int],
    ) -> Tensor:
        cos = _edge_dot(xn_src, xn_dst, edge_index_j, edge_index_i)
        edge_term = self.beta * edge_weight
        if self.negative_cosine == "indicator":
            edge_term = edge_term * (cos > 0).to(cos.dtype)
        logit = w_i * cos + edge_term
        if self.negative_cosine == "mask":
            keep = keep & (cos >= 0)
        logit = logit.masked_fill(~keep, torch.finfo(logit.dtype).min)
        alpha = softmax(logit, index, ptr, dim_size)
        # A target whose edges are all masked gets uniform weights above: zero them.
        alpha = alpha.masked_fill(~keep, 0.0)
        alpha = F.dropout(alpha, p=self.dropout, training=self.training)
        return alpha

    def message(self, x_j: Tensor, alpha: Tensor) -> Tensor:
        return alpha.unsqueeze(-1) * x_j

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(beta={self.beta}, "
            f"negative_cosine={self.negative_cosine!r}, num_graphs={self.num_graphs}, "
            f"fused={self.fused})"
        )


def affinity_attention_dense(
    x: Tensor,
    adj: Tensor,
    w: Union[float, Tensor],
    beta: float = 10.0,
    negative_cosine: str = "indicator",
    add_self_loops: bool = True,
    self_loop_weight: float = 1.0,
    eps: float = 1e-12,
) -> Tuple[Tensor, Tensor]:
    r"""Dense reference of :class:`AffinityAttentionConv` (explicit opt-in: builds
    :math:`N \times N` matrices; for tests and benchmarks on small graphs).

    Args:
        x: ``[N, F]`` node features.
        adj: ``[N, N]`` dense adjacency, ``adj[i, j] = E_{i,j}`` for the edge ``j -> i``;
            the support is the set of non-zero entries (an edge of weight exactly 0 must
            be given through the sparse layer).
        w, beta, negative_cosine, add_self_loops, self_loop_weight, eps: As in the layer.

    Returns:
        ``(out [N, F], P [N, N])``.
    """
    check_tensor(x, "x", ndim=2, floating=True)
    check_tensor(adj, "adj", ndim=2, floating=True)
    n = x.size(0)
    if adj.shape != (n, n):
        raise ValueError(f"'adj' must have shape [{n}, {n}], got {tuple(adj.shape)}")
    check_choice(negative_cosine, NEGATIVE_COSINE, "negative_cosine")
    support = adj != 0
    weight = adj.clone()
    if add_self_loops:
        eye = torch.eye(n, dtype=torch.bool, device=x.device)
        support = support | eye
        weight = torch.where(eye, torch.full_like(weight, self_loop_weight), weight)
    xn = F.normalize(x, p=2.0, dim=-1, eps=eps)
    cos = xn @ xn.t()
    edge = beta * weight
    if negative_cosine == "indicator":
        edge = edge * (cos > 0).to(x.dtype)
    logit = w * cos + edge
    if negative_cosine == "mask":
        support = support & (cos >= 0)
    logit = logit.masked_fill(~support, float("-inf"))
    p = torch.softmax(logit, dim=1)
    p = torch.nan_to_num(p, nan=0.0).masked_fill(~support, 0.0)
    return p @ x, p
