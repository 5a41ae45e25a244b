"""Group-WSSS co-attention message passing between images (Li et al., AAAI 2021, G 4-8)."""
from __future__ import annotations

import math
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric import EdgeIndex
from torch_geometric.nn.conv import MessagePassing
from torch_geometric.typing import WITH_TORCH_SPARSE, Adj, PairTensor, Size, SparseTensor
from torch_geometric.utils import is_torch_sparse_tensor

from ..._checks import check_choice, check_edge_index, check_positive, check_tensor

__all__ = ["CoAttentionConv", "co_attention"]

_VARIANTS = {
    # reduction, bias of P/Q, sigmoid gate, self-loop self-attention (G 6)
    "paper": dict(reduction=4, bias=False, gate=False, self_attention=True),
    "code": dict(reduction=2, bias=True, gate=True, self_attention=False),
}


#: ``attention="auto"`` uses the dense path while the ``[B, L_q, L_k]`` matrix has at most
#: this many entries (16 MB in float32), the fused kernel above it.
AUTO_DENSE_MAX_ENTRIES = 1 << 22


def co_attention(q: Tensor, k: Tensor, v: Tensor, attention: str = "fused") -> Tensor:
    r"""Row-softmax attention :math:`\mathrm{softmax}_r(q k^\top) v` per batch element,
    without the :math:`1/\sqrt{d}` scaling (G 5, 7).

    ``attention="fused"`` uses :func:`torch.nn.functional.scaled_dot_product_attention` with
    ``scale=1.0``: it never keeps the ``[B, L_q, L_k]`` matrix (flash kernel on CPU, flash or
    memory-efficient kernel on CUDA). The fused CPU/CUDA kernels need equal key and value
    widths, so the value channels are split into ``ceil(C_v / C_k)`` heads of width ``C_k``
    (zero-padded), each using the same ``q`` and ``k``: memory stays ``O(B L C_v)``.
    ``attention="dense"`` is the explicit reference: it materialises the softmax matrix.
    ``attention="auto"`` takes the dense path while ``B * L_q * L_k`` is at most
    :data:`AUTO_DENSE_MAX_ENTRIES` (small maps, where the BLAS path is faster on CPU than
    the fused kernel) and the fused one above, so memory stays bounded.

    Args:
        q: ``[B, L_q, C_k]`` queries.
        k: ``[B, L_k, C_k]`` keys.
        v: ``[B, L_k, C_v]`` values.
        attention: ``"fused" | "dense" | "auto"``.

    Returns:
        ``[B, L_q, C_v]``.
    """
    check_choice(attention, ("fused", "dense", "auto"), "attention")
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_tensor(t, name, ndim=3, floating=True, finite=True)
    if k.size(0) != q.size(0) or k.size(2) != q.size(2):
        raise ValueError(f"'k' {tuple(k.shape)} must be [B, L_k, C_k] like 'q' {tuple(q.shape)}")
    if v.shape[:2] != k.shape[:2]:
        raise ValueError(f"'v' {tuple(v.shape)} must be [B, L_k, C_v] like 'k' {tuple(k.shape)}")
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()  # the fused kernels' layout
    if attention == "auto":
        dense = q.size(0) * q.size(1) * k.size(1) <= AUTO_DENSE_MAX_ENTRIES
        attention = "dense" if dense else "fused"
    if attention == "dense":
        att = torch.softmax(q @ k.transpose(-1, -2), dim=-1)
        return att @ v
    b, lq, ck = q.shape
    cv = v.size(-1)
    if b == 0 or lq == 0:
        return v.new_zeros(b, lq, cv)
    heads = max(1, math.ceil(cv / ck))
    pad = heads * ck - cv
    if pad:
        v = F.pad(v, (0, pad))
    # [B, heads, L, ck]: the same q/k for every head; head h reads value channels h*ck..
    vh = v.view(b, -1, heads, ck).transpose(1, 2)
    qh = q.unsqueeze(1).expand(b, heads, lq, ck)
    kh = k.unsqueeze(1).expand(b, heads, k.size(1), ck)
    out = F.scaled_dot_product_attention(qh, kh, vh, scale=1.0)
    out = out.transpose(1, 2).reshape(b, lq, heads * ck)
    return out[..., :cv] if pad else out


def _check_adjacency(edge_index: Adj, num_src: int, num_dst: int) -> Adj:
    """A checked ``[2, E]`` int64 tensor (``EdgeIndex`` unwrapped, int32 widened), or the
    ``torch.sparse`` / ``SparseTensor`` ``adj_t [N_t, N_s]`` as given."""
    if isinstance(edge_index, EdgeIndex):
        edge_index = edge_index.as_tensor()
    if is_torch_sparse_tensor(edge_index) or (
        WITH_TORCH_SPARSE and isinstance(edge_index, SparseTensor)
    ):
        if (edge_index.size(0), edge_index.size(1)) != (num_dst, num_src):
            raise ValueError(
                f"the sparse adjacency adj_t must be [num_dst, num_src] = [{num_dst}, "
                f"{num_src}], got {[edge_index.size(0), edge_index.size(1)]}"
            )
        return edge_index
    if not isinstance(edge_index, Tensor):
        raise TypeError(f"'edge_index' must be a Tensor or SparseTensor, got {type(edge_index)}")
    check_tensor(edge_index, "edge_index", ndim=2, floating=False)
    if edge_index.size(0) != 2:
        raise ValueError(f"'edge_index' must have shape [2, E], got {tuple(edge_index.shape)}")
    check_edge_index(edge_index, max(num_src, num_dst))
    if edge_index.dtype == torch.int32:  # PyG's scatter needs int64 indices
        edge_index = edge_index.long()
    return edge_index


class CoAttentionConv(MessagePassing):
    r"""The co-attention message passing layer of Group-WSSS (`"Group-Wise Semantic Mining for
    Weakly Supervised Semantic Segmentation" <https://arxiv.org/abs/2012.05007>`_, Li et al.,
    AAAI 2021, Eq. 4-8). Nodes are images whose features are whole feature maps.

    For an edge :math:`j \to i` between two images, with the maps flattened to
    :math:`\mathbf{h}_i \in \mathbb{R}^{HW \times C}`, the edge embedding is the low-rank
    bilinear affinity between all pixel pairs (G 5)

    .. math::
        \mathbf{e}_{i,j} = (\mathbf{h}_i \mathbf{P}) (\mathbf{h}_j \mathbf{Q})^{\top}
        \in \mathbb{R}^{HW \times HW}, \qquad \mathbf{P}, \mathbf{Q} \in
        \mathbb{R}^{C \times C/d},

    and the message is the sender's map re-arranged by the row-softmax of the affinity (G 7)

    .. math::
        \mathbf{m}_{j \to i} = g\big(\mathrm{softmax}_r(\mathbf{e}_{i,j})\, \mathbf{h}_j\big),

    where :math:`g(\mathbf{m}) = \mathbf{m} \odot \sigma(\mathbf{m} \mathbf{w}_g)` is the
    optional pixel-wise sigmoid gate of the authors' code (``gate=True``) and the identity
    otherwise. On a self-loop :math:`i \to i` the paper's message is a non-local
    self-attention with a residual (G 6, ``self_attention=True``)

    .. math::
        \mathbf{m}_{i \to i} = \mathrm{softmax}_r\big(\phi_f(\mathbf{h}_i)
        \phi_g(\mathbf{h}_i)^{\top}\big) \phi_h(\mathbf{h}_i) + \mathbf{h}_i,

    with 1x1 convolutions :math:`\phi_f, \phi_g: C \to C/d` and :math:`\phi_h: C \to C`.
    Messages are summed (G 8): :math:`\mathbf{m}_i = \sum_{j \in \mathcal{N}(i)}
    \mathbf{m}_{j \to i}`. The paper's graph gives every image a self-loop (add them when
    building the graph, e.g. ``image_group_graph(tags, self_loops=True)``); without a
    self-loop or neighbours a node receives a zero message.

    The attention is computed with
    :func:`torch.nn.functional.scaled_dot_product_attention` (``scale=1.0``, no
    :math:`1/\sqrt{d}`; NOTES.md check 5), so memory is :math:`O(|\mathcal{E}|\, HW C)`,
    never :math:`O(|\mathcal{E}|\, (HW)^2)` (the default ``attention="auto"`` only takes the
    dense path while that matrix is small, at most 16 MB). ``attention="dense"`` is the
    explicit dense reference; ``return_attention_weights=True`` materialises the
    ``[E, HW, HW]`` softmax matrices on request.

    Paper vs code (NOTES.md 1.1, 9), chosen by ``variant`` and overridable one by one:

    ============== ====================== ==============================
    flag           ``"paper"`` (default)  ``"code"``
    ============== ====================== ==============================
    reduction d    4                      2
    bias of P, Q   no                     yes
    gate           no                     sigmoid gate on each message
    self_attention G 6 on self-loops      none (a self-loop is an
                                          ordinary co-attention edge)
    ============== ====================== ==============================

    The code's concatenation of the two neighbour messages followed by a 3x3 conv needs a
    fixed in-degree and is not a graph layer: this layer always sums (G 8), so any group
    size and any edge set work. The code's :math:`\mathbf{e}_{j,i}` is recomputed with the
    roles of P and Q swapped, which is what the layer does for the reverse edge (the paper
    states :math:`\mathbf{e}_{j,i} = \mathbf{e}_{i,j}^{\top}`, which only holds for
    ``P = Q``).

    Args:
        channels: Channels :math:`C` of the node feature maps.
        reduction: Reduction ratio :math:`d` (projected width ``max(1, C // d)``).
            ``None`` takes the variant's (4 paper, 2 code).
        variant: ``"paper" | "code"`` (defaults of the flags below).
        bias: Biases in ``P``/``Q`` (and :math:`\phi`).
        gate: The code's sigmoid message gate (a bias-free 1x1 conv ``C -> 1``).
        self_attention: The paper's self-attention message on self-loop edges (G 6).
        attention: ``"fused"`` (SDPA), ``"dense"`` (reference, ``[E, HW, HW]``) or
            ``"auto"`` (default: dense while ``E (HW)^2 <= 2^22``, else fused; see
            :func:`co_attention`).
        **kwargs: Additional arguments of :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, C, H, W)` or, bipartite,
          :math:`((|\mathcal{V}_s|, C, H_s, W_s), (|\mathcal{V}_t|, C, H_t, W_t))`, edge
          indices :math:`(2, |\mathcal{E}|)` (int64 or int32, ``EdgeIndex``;
          ``edge_index[0]`` = source j) or a ``torch.sparse`` / ``SparseTensor`` adjacency
          ``adj_t`` :math:`(|\mathcal{V}_t|, |\mathcal{V}_s|)` (rows = targets)
        - **output:** node features :math:`(|\mathcal{V}_t|, C, H_t, W_t)`; with
          ``return_attention_weights=True`` also ``(edge_index, alpha)`` with
          :math:`\alpha` of shape :math:`(|\mathcal{E}|, H_t W_t, H_s W_s)` (receiver
          pixels x sender pixels, rows sum to one)

    PyG integration: the layer runs through :meth:`propagate` (one message per edge, no
    added self-loops), so :mod:`torch_geometric.explain` edge masks and message hooks apply
    as they are. PyG's explainers expect ``[N, F]`` node features: pass the flattened maps
    and reshape inside the model (``x.view(N, C, H, W)``). Bipartite input
    ``(x_src, x_dst)`` (e.g. through :func:`torch_geometric.nn.to_hetero` with several
    node types) needs ``self_attention=False``.

    Example:
        >>> import torch
        >>> from pyg_wsss.nn.conv import CoAttentionConv
        >>> x = torch.randn(3, 16, 8, 8)  # three images, 16-channel 8x8 maps
        >>> edge_index = torch.tensor([[0, 1, 2, 0, 1, 2], [1, 2, 0, 0, 1, 2]])
        >>> conv = CoAttentionConv(16)  # paper variant: G 6 self-attention on the loops
        >>> out = conv(x, edge_index)
        >>> out.shape
        torch.Size([3, 16, 8, 8])
        >>> out, (ei, alpha) = conv(x, edge_index, return_attention_weights=True)
        >>> alpha.shape  # [E, HW receiver, HW sender]
        torch.Size([6, 64, 64])
        >>> code = CoAttentionConv(16, variant="code")  # bipartite: no self-attention
        >>> code((torch.randn(2, 16, 4, 4), x), torch.tensor([[0, 1], [2, 2]])).shape
        torch.Size([3, 16, 8, 8])
    """

    def __init__(
        self,
        channels: int,
        reduction: Optional[int] = None,
        variant: str = "paper",
        bias: Optional[bool] = None,
        gate: Optional[bool] = None,
        self_attention: Optional[bool] = None,
        attention: str = "auto",
        **kwargs,
    ) -> None:
        kwargs.setdefault("aggr", "add")
        super().__init__(node_dim=0, **kwargs)
        check_positive(channels, "channels", integer=True)
        check_choice(variant, tuple(_VARIANTS), "variant")
        check_choice(attention, ("fused", "dense", "auto"), "attention")
        defaults = _VARIANTS[variant]
        reduction = defaults["reduction"] if reduction is None else reduction
        check_positive(reduction, "reduction", integer=True)
        self.channels = int(channels)
        self.variant = variant
        self.reduction = int(reduction)
        self.bias = bool(defaults["bias"] if bias is None else bias)
        self.gate = bool(defaults["gate"] if gate is None else gate)
        self.self_attention = bool(
            defaults["self_attention"] if self_attention is None else self_attention
        )
        self.attention = attention
        self.key_channels = max(1, self.channels // self.reduction)

        c, ck = self.channels, self.key_channels
        self.lin_p = nn.Conv2d(c, ck, 1, bias=self.bias)  # receiver (query)
        self.lin_q = nn.Conv2d(c, ck, 1, bias=self.bias)  # sender (key)
        if self.gate:
            self.lin_gate = nn.Conv2d(c, 1, 1, bias=False)
        else:
            self.register_module("lin_gate", None)
        if self.self_attention:
            self.phi_f = nn.Conv2d(c, ck, 1, bias=self.bias)
            self.phi_g = nn.Conv2d(c, ck, 1, bias=self.bias)
            self.phi_h = nn.Conv2d(c, c, 1, bias=self.bias)
        else:
            self.register_module("phi_f", None)
            self.register_module("phi_g", None)
            self.register_module("phi_h", None)
        self._return_alpha = False
        self._alpha: Optional[Tensor] = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        for m in (self.lin_p, self.lin_q, self.lin_gate, self.phi_f, self.phi_g, self.phi_h):
            if m is not None:
                m.reset_parameters()

    @staticmethod
    def _tokens(x: Tensor) -> Tensor:  # noqa: D401
        # [N, C, H, W] -> [N, HW, C]
        return x.flatten(2).transpose(1, 2)

    def forward(
        self,
        x: Union[Tensor, PairTensor],
        edge_index: Adj,
        return_attention_weights: Optional[bool] = None,
        size: Size = None,
    ) -> Union[Tensor, tuple[Tensor, tuple[Adj, Tensor]]]:
        r"""Runs the forward pass.

        Args:
            x: Node feature maps ``[N, C, H, W]``, or a bipartite pair ``(x_src, x_dst)``
                of ``[N_s, C, H_s, W_s]`` senders and ``[N_t, C, H_t, W_t]`` receivers
                (the sizes may differ; ``self_attention`` must then be off: there are no
                self-loops between two node sets).
            edge_index: ``[2, E]`` edges (source j, target i; int64/int32 or
                :class:`~torch_geometric.EdgeIndex`), a ``torch.sparse`` (COO/CSR) or
                ``SparseTensor`` adjacency ``adj_t`` of shape ``[N_t, N_s]`` (its values
                are ignored: the layer has no edge weights).
            return_attention_weights: Also return ``(edge_index, alpha)`` with the
                ``[E, HW_t, HW_s]`` attention matrices (materialised only on request; for
                self-attention self-loops, the G 6 matrix).
            size: ``(N_s, N_t)``; with a single ``x`` the receivers are its first ``N_t``
                nodes (PyG's convention for sampled subgraphs).
        """
        x_src, x_dst, num_dst = self._split_input(x, size)
        num_src = x_src.size(0)
        edge_index = _check_adjacency(edge_index, num_src, num_dst)
        c = self.channels
        hw_src = x_src.size(2) * x_src.size(3)
        hw_dst = x_dst.size(2) * x_dst.size(3)
        tok, q, k, sq, sk, sv = self._project(x_src, x_dst, num_dst)
        self._return_alpha = bool(return_attention_weights)
        try:
            # node tensors go to propagate flattened to [N, HW * C'] (fast row gathers)
            flat = [
                None if t is None else t.reshape(t.size(0), t.size(1) * t.size(2))
                for t in (tok, q, k, sq, sk, sv)
            ]
            out = self.propagate(
                edge_index, x=flat[0], q=flat[1], k=flat[2], sq=flat[3], sk=flat[4],
                sv=flat[5], hw_src=hw_src, hw_dst=hw_dst, size=(num_src, num_dst),
            )
            alpha = self._alpha
        finally:
            self._return_alpha = False
            self._alpha = None
        out = out.view(num_dst, hw_dst, c).transpose(1, 2)
        out = out.reshape(num_dst, c, x_dst.size(2), x_dst.size(3))
        if return_attention_weights:
            assert alpha is not None
            return out, (edge_index, alpha)
        return out

    def _split_input(
        self, x: Union[Tensor, PairTensor], size: Size
    ) -> tuple[Tensor, Tensor, int]:
        """``(x_src, x_dst, num_dst)``, checked (one ``x`` with ``size=(N, M)``: the targets
        are its first ``M`` nodes)."""
        if isinstance(x, (tuple, list)):
            if len(x) != 2 or not all(isinstance(t, Tensor) for t in x):
                raise TypeError("'x' must be a Tensor or a pair (x_src, x_dst) of Tensors")
            if self.self_attention:
                raise ValueError(
                    "self_attention=True (G 6) needs one node set: its self-loop messages "
                    "are undefined on bipartite input (x_src, x_dst); use "
                    "self_attention=False (e.g. variant='code') for bipartite graphs and "
                    "torch_geometric.nn.to_hetero over several node types"
                )
            x_src, x_dst = x
        else:
            x_src = x_dst = x
        for t in (x_src, x_dst):
            check_tensor(t, "x", ndim=4, floating=True, finite=True)
            if t.size(1) != self.channels:
                raise ValueError(
                    f"'x' must have {self.channels} channels, got shape {tuple(t.shape)}"
                )
        if x_src.dtype != x_dst.dtype:
            raise ValueError(f"'x' pair dtypes differ: {x_src.dtype} and {x_dst.dtype}")
        num_dst = x_dst.size(0)
        if size is None:
            return x_src, x_dst, num_dst
        if len(size) != 2:
            raise ValueError(f"'size' must be (num_src, num_dst), got {size!r}")
        if size[0] is not None and int(size[0]) != x_src.size(0):
            raise ValueError(f"'size' {tuple(size)} does not match {x_src.size(0)} sources")
        if size[1] is not None:
            if not 0 <= int(size[1]) <= num_dst or (x_src is not x_dst and size[1] != num_dst):
                raise ValueError(
                    f"'size' {tuple(size)} does not match {num_dst} targets (with one "
                    "'x' the targets are its first size[1] nodes)"
                )
            num_dst = int(size[1])
        return x_src, x_dst, num_dst

    def _project(self, x_src: Tensor, x_dst: Tensor, num_dst: int) -> tuple[
        Tensor, Tensor, Tensor, Optional[Tensor], Optional[Tensor], Optional[Tensor]
    ]:
        """Pixel tokens ``[N, HW, C]`` and the 1x1 projections: queries (receivers, the
        first ``num_dst``), keys, and the G 6 self-attention ones (``None`` when off)."""
        ck, c = self.key_channels, self.channels
        tok = self._tokens(x_src).contiguous()  # [N, HW, C]; contiguous for fast gathers
        if x_src is not x_dst:  # bipartite: receivers' queries, senders' keys
            q = F.linear(self._tokens(x_dst), self.lin_p.weight.flatten(1), self.lin_p.bias)
            k = F.linear(tok, self.lin_q.weight.flatten(1), self.lin_q.bias)
            return tok, q, k, None, None, None
        # all 1x1 projections as one matmul over pixel tokens
        convs = [self.lin_p, self.lin_q]
        if self.self_attention:
            convs += [self.phi_f, self.phi_g, self.phi_h]
        weight = torch.cat([m.weight.flatten(1) for m in convs], dim=0)
        biases = [m.bias for m in convs if m.bias is not None]
        bias = torch.cat(biases) if self.bias else None
        proj = F.linear(tok, weight, bias)
        if self.self_attention:
            q, k, sq, sk, sv = proj.split([ck, ck, ck, ck, c], dim=-1)
            return tok, q[:num_dst], k, sq[:num_dst], sk, sv
        q, k = proj.split([ck, ck], dim=-1)
        return tok, q[:num_dst], k, None, None, None  # no gathers of unused tensors

    def message(
        self,
        x_j: Tensor,
        q_i: Tensor,
        k_j: Tensor,
        sq_i: Optional[Tensor],
        sk_j: Optional[Tensor],
        sv_j: Optional[Tensor],
        edge_index_i: Tensor,
        edge_index_j: Tensor,
        hw_src: int,
        hw_dst: int,
    ) -> Tensor:
        e = x_j.size(0)

        def split(t: Tensor, hw: int) -> Tensor:  # [E, HW * C'] -> [E, HW, C']
            return t.view(e, hw, t.size(-1) // max(hw, 1))

        x_j, q_i, k_j = split(x_j, hw_src), split(q_i, hw_dst), split(k_j, hw_src)
        if self.self_attention:
            # Self-loops take the G 6 projections; no data-dependent shapes (torch.where).
            # (self_attention implies one node set, hence hw_src == hw_dst)
            assert sq_i is not None and sk_j is not None and sv_j is not None
            sq_i, sk_j, sv_j = split(sq_i, hw_dst), split(sk_j, hw_src), split(sv_j, hw_src)
            loop = (edge_index_i == edge_index_j).view(-1, 1, 1)
            query = torch.where(loop, sq_i, q_i)
            key = torch.where(loop, sk_j, k_j)
            value = torch.where(loop, sv_j, x_j)
        else:
            query, key, value = q_i, k_j, x_j
        msg = co_attention(query, key, value, self.attention)
        if self._return_alpha:
            self._alpha = torch.softmax(query @ key.transpose(-1, -2), dim=-1)
        if self.gate:
            # pixel-wise gate sigmoid(w_g . m), a bias-free 1x1 conv C -> 1
            g = torch.sigmoid(msg @ self.lin_gate.weight.view(1, -1).t())
            gated = msg * g
            msg = torch.where(loop, msg, gated) if self.self_attention else gated
        if self.self_attention:
            msg = msg + loop.to(msg.dtype) * x_j  # residual of G 6 on self-loops
        return msg.reshape(e, msg.size(1) * msg.size(2))

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.channels}, reduction={self.reduction}, "
            f"variant={self.variant!r}, gate={self.gate}, "
            f"self_attention={self.self_attention})"
        )
