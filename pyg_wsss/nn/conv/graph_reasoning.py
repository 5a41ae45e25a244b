"""Graph Reasoning Mapping (GRM) of knowledge-graph WSSS (Zhang et al., EAAI 2024, K 1-2, 7-8)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric import EdgeIndex
from torch_geometric.nn.conv import MessagePassing
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.nn.inits import glorot
from torch_geometric.typing import WITH_TORCH_SPARSE, Adj, OptTensor, SparseTensor
from torch_geometric.utils import (
    add_self_loops,
    dense_to_sparse,
    is_torch_sparse_tensor,
    scatter,
    to_edge_index,
)

from pyg_wsss._checks import (
    check_choice,
    check_edge_index,
    check_fraction,
    check_positive,
    check_tensor,
)

__all__ = ["GraphReasoningMapping", "relation_to_edge_index", "add_identity_norm"]

SCORES = ("linear", "bilinear", "mlp")


def relation_to_edge_index(relation: Tensor) -> tuple[Tensor, Tensor]:
    r"""Turn a dense class-relation matrix :math:`E \in \mathbb{R}^{C \times C}` into an edge list.

    Entry :math:`E_{ij}` (how much class :math:`i` receives from class :math:`j`) becomes the
    weight of the edge :math:`j \to i` (``edge_index[0] = j`` source, ``edge_index[1] = i``
    target), the package's convention. Zero entries are dropped.

    Returns:
        ``(edge_index [2, E], edge_weight [E])``.
    """
    check_tensor(relation, "relation", ndim=2, floating=True, finite=True)
    if relation.size(0) != relation.size(1):
        raise ValueError(f"'relation' must be square [C, C], got {tuple(relation.shape)}")
    edge_index, edge_weight = dense_to_sparse(relation)  # edge_index[0] = row i, [1] = col j
    return edge_index.flip(0), edge_weight


def add_identity_norm(
    edge_index: Tensor, edge_weight: OptTensor, num_nodes: int, merge_loops: bool = False
) -> tuple[Tensor, Tensor]:
    r"""Edge weights of :math:`\hat{Q}^{-1/2} (E + I) \hat{Q}^{-1/2}` (K 2).

    The identity is **added** (an existing diagonal :math:`E_{ii}` is kept and increased by
    one), :math:`\hat{Q}_{ii} = \sum_j \hat{E}_{ij}` (row sums, i.e. over the edges whose target
    is :math:`i`). This equals ``DenseGCNConv(add_loop=False)`` applied to :math:`E + I`; it is
    not ``DenseGCNConv(add_loop=True)`` on :math:`E` (which *sets* the diagonal to 1) nor
    ``gcn_norm(add_self_loops=True)`` (which keeps an existing :math:`E_{ii}` instead of adding
    1). Nodes of zero degree get zero weights (never inf/NaN).

    Args:
        merge_loops: Fold the existing self-loops into the added ones (one loop per node of
            weight :math:`1 + \sum E_{ii}`, the same matrix): the edges are then the
            non-loop edges in their order followed by one loop per node, the
            :math:`E - L + C` layout of ``remove_self_loops`` + ``add_self_loops`` that
            PyG's explainers expect. The default keeps every given edge (no
            data-dependent shape).

    Returns:
        ``(edge_index [2, E + C], edge_weight [E + C])`` (``[2, E - L + C]`` with
        ``merge_loops``).
    """
    if edge_weight is None:
        edge_weight = torch.ones(edge_index.size(1), device=edge_index.device)
    if merge_loops:
        edge_index = edge_index.long()
        loop = edge_index[0] == edge_index[1]
        diag = edge_weight.new_ones(num_nodes).index_add_(
            0, edge_index[0][loop], edge_weight[loop]
        )
        arange = torch.arange(num_nodes, device=edge_index.device)
        edge_index = torch.cat([edge_index[:, ~loop], arange.repeat(2, 1)], dim=1)
        edge_weight = torch.cat([edge_weight[~loop], diag])
    else:
        edge_index, edge_weight = add_self_loops(
            edge_index.long(), edge_weight, fill_value=1.0, num_nodes=num_nodes
        )
    row, col = edge_index[0], edge_index[1]  # source j, target i
    deg = scatter(edge_weight, col, dim=0, dim_size=num_nodes, reduce="sum")
    deg_inv_sqrt = deg.clamp_min(0).pow(-0.5)
    deg_inv_sqrt = deg_inv_sqrt.masked_fill(torch.isinf(deg_inv_sqrt), 0.0)
    return edge_index, deg_inv_sqrt[row] * edge_weight * deg_inv_sqrt[col]


def _reject_pair(value: object, name: str) -> None:
    if isinstance(value, (tuple, list)) and all(isinstance(v, Tensor) for v in value):
        raise ValueError(
            f"'{name}' is a pair of tensors, but GraphReasoningMapping reasons over one class "
            "graph (a single node type): bipartite / heterogeneous input (e.g. through "
            "torch_geometric.nn.to_hetero) is not supported"
        )


def _to_edge_list(
    edge_index: Adj, edge_weight: OptTensor, num_nodes: int
) -> tuple[Tensor, OptTensor]:
    """``(edge_index [2, E], edge_weight)`` of a ``[2, E]`` tensor, an ``EdgeIndex``, a
    ``torch.sparse`` (COO/CSR) or ``SparseTensor`` adjacency ``adj_t[i, j] = E_ij``."""
    sparse = None
    if WITH_TORCH_SPARSE and isinstance(edge_index, SparseTensor):
        row, col, value = edge_index.coo()
        sparse = (torch.stack([col, row], dim=0), value, edge_index.sizes())
    elif is_torch_sparse_tensor(edge_index):
        indices, value = to_edge_index(edge_index)
        sparse = (indices.flip(0), value, list(edge_index.shape))
    elif isinstance(edge_index, EdgeIndex):
        edge_index = edge_index.as_tensor()
    elif not isinstance(edge_index, Tensor):
        raise TypeError(
            f"'edge_index' must be a Tensor or SparseTensor, got {type(edge_index).__name__}"
        )
    if sparse is not None:
        edge_index, value, shape = sparse
        if list(shape) != [num_nodes, num_nodes]:
            raise ValueError(
                f"the class adjacency must be [{num_nodes}, {num_nodes}], got {list(shape)}"
            )
        if edge_weight is None:
            edge_weight = value
    return edge_index, edge_weight


class GraphReasoningMapping(MessagePassing):
    r"""Graph Reasoning Mapping (GRM, Zhang et al., "Graph reasoning with knowledge for weakly
    supervised semantic segmentation", EAAI 2024, Eqs. 1-2 and 7-8).

    **Graph reasoning** over the :math:`C` class nodes (Eq. 2, two layers, no biases):

    .. math::
        V^{(1)} = \mathrm{ReLU}\big(\hat{A}\, V^{(0)} W_1\big), \qquad
        V' = \mathrm{ReLU}\big(\hat{A}\, \mathrm{dropout}(V^{(1)}) W_2\big), \qquad
        \hat{A} = \hat{Q}^{-1/2} (E + I) \hat{Q}^{-1/2}

    with :math:`V^{(0)} \in \mathbb{R}^{C \times K}` the class embeddings (GloVe) and
    :math:`E` the class-relation matrix given as an edge list (message passing ``j -> i`` with
    weight :math:`E_{ij}`). :math:`W_1, W_2` are trainable parameters (the authors' code never
    adds them to the optimiser; ``train_gcn=False`` reproduces that).

    **Class-to-pixel mapping** (Eq. 7) with visual features :math:`x_i \in \mathbb{R}^D`
    (pixels :math:`i = 1..HW`) and compatibility

    .. math::
        h_{m \to i} = \frac{\exp s(v'_m, x_i)}{\sum_{i'} \exp s(v'_m, x_{i'})}
        \quad (\text{softmax over pixels, per class } m),

    **and the residual update** (Eq. 8, with :math:`H \in \mathbb{R}^{C \times HW}`, so the
    product that fits the shapes is :math:`H^\top V' \in \mathbb{R}^{HW \times D}`):

    .. math::
        X' = \mathrm{ReLU}\big(H^\top V'\big) + X .

    Scores:

    - ``"linear"``: :math:`s = w^\top [x_i; v'_m] + b` (the printed Eq. 7 and the authors' 1x1
      convolution). Reproduction only: :math:`w_v^\top v'_m + b` is constant over pixels and
      cancels in the softmax, so **every class column of H is the same** spatial attention and
      the update is class-independent (NOTES.md 4.3).
    - ``"bilinear"`` (default): :math:`s = x_i^\top W v'_m / \sqrt{D}`, class-dependent.
    - ``"mlp"``: :math:`s = u^\top \mathrm{ReLU}(A x_i + B v'_m + c) + d`, class-dependent.

    ``normalize_over="classes"`` is an extension (not in the paper): softmax over the class
    nodes for every pixel, so each pixel receives a convex combination of class nodes instead
    of the paper's :math:`\sim 1/HW`-sized update.

    Args:
        in_channels: Visual feature channels :math:`D` (also the class-node output size).
        node_channels: Class-embedding size :math:`K` (50 for the shipped GloVe-50 vectors,
            300 in the paper).
        hidden_channels: Hidden size of the class GCN (default: ``in_channels``, as the code).
        score: ``"linear"`` | ``"bilinear"`` | ``"mlp"`` (see above).
        mlp_channels: Hidden size of the ``"mlp"`` score.
        dropout: Dropout between the two GCN layers (code: 0.3).
        dropout_in_eval: Keep that dropout active in evaluation mode (authors' code: ``True``,
            hard-coded ``training=True``; default ``False``).
        normalize_over: ``"pixels"`` (paper, Eq. 7) or ``"classes"`` (extension).
        normalize: Apply :math:`\hat{Q}^{-1/2}(E + I)\hat{Q}^{-1/2}` to the given edge weights
            (``False``: use them as they are, e.g. pre-normalised).
        train_gcn: ``False`` freezes :math:`W_1, W_2` (the authors' code).

    Shapes:
        - **input:** x :math:`(B, D, H, W)`, node_features :math:`(C, K)`, edge_index
          :math:`(2, |\mathcal{E}|)`, edge_weight :math:`(|\mathcal{E}|)` (optional)
        - **output:** :math:`(B, D, H, W)`; with ``return_mapping=True`` also
          :math:`H` of shape :math:`(B, C, HW)`.

    PyG integration: the class graph may be a ``[2, E]`` tensor (int64/int32,
    :class:`~torch_geometric.EdgeIndex`) or a ``torch.sparse`` / ``SparseTensor``
    adjacency; both GCN layers run through :meth:`propagate`, and under
    :mod:`torch_geometric.explain` existing self-loops are folded into the added identity
    (the same :math:`\hat{A}`, :math:`|\mathcal{E}| - L + C` messages, the layout PyG's
    edge masks expect). The layer works on one class graph: bipartite or heterogeneous
    input (:func:`torch_geometric.nn.to_hetero`) raises a :class:`ValueError`.

    Example:
        >>> import torch
        >>> from pyg_wsss.nn.conv import GraphReasoningMapping
        >>> grm = GraphReasoningMapping(8, node_channels=5)
        >>> x = torch.randn(2, 8, 4, 4)  # visual features [B, D, H, W]
        >>> classes = torch.randn(3, 5)  # class embeddings [C, K]
        >>> edge_index = torch.tensor([[0, 1, 2], [1, 2, 0]])
        >>> out, mapping = grm(x, classes, edge_index, return_mapping=True)
        >>> out.shape, mapping.shape
        (torch.Size([2, 8, 4, 4]), torch.Size([2, 3, 16]))
        >>> adj_t = torch.eye(3).to_sparse()  # a torch.sparse class adjacency
        >>> grm(x, classes, adj_t).shape
        torch.Size([2, 8, 4, 4])
    """

    def __init__(
        self,
        in_channels: int,
        node_channels: int,
        hidden_channels: int | None = None,
        score: str = "bilinear",
        mlp_channels: int = 64,
        dropout: float = 0.3,
        dropout_in_eval: bool = False,
        normalize_over: str = "pixels",
        normalize: bool = True,
        train_gcn: bool = True,
    ) -> None:
        super().__init__(aggr="add")
        check_positive(in_channels, "in_channels", integer=True)
        check_positive(node_channels, "node_channels", integer=True)
        hidden_channels = in_channels if hidden_channels is None else hidden_channels
        check_positive(hidden_channels, "hidden_channels", integer=True)
        check_positive(mlp_channels, "mlp_channels", integer=True)
        check_choice(score, SCORES, "score")
        check_choice(normalize_over, ("pixels", "classes"), "normalize_over")
        check_fraction(dropout, "dropout")
        self.in_channels = in_channels
        self.node_channels = node_channels
        self.hidden_channels = hidden_channels
        self.score = score
        self.mlp_channels = mlp_channels
        self.dropout = float(dropout)
        self.dropout_in_eval = dropout_in_eval
        self.normalize_over = normalize_over
        self.normalize = normalize
        self.train_gcn = train_gcn

        self.lin1 = Linear(node_channels, hidden_channels, bias=False, weight_initializer="glorot")
        self.lin2 = Linear(hidden_channels, in_channels, bias=False, weight_initializer="glorot")
        if score == "linear":
            # the authors' 1x1 convolution on the concatenation [x_i; v_m] (2D -> 1, with bias)
            self.score_lin = Linear(2 * in_channels, 1, bias=True, weight_initializer="glorot")
        elif score == "bilinear":
            self.score_weight = torch.nn.Parameter(torch.empty(in_channels, in_channels))
        else:
            self.score_x = Linear(in_channels, mlp_channels, bias=True, weight_initializer="glorot")
            self.score_v = Linear(
                in_channels, mlp_channels, bias=False, weight_initializer="glorot"
            )
            self.score_out = Linear(mlp_channels, 1, bias=True, weight_initializer="glorot")
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.lin1.reset_parameters()
        self.lin2.reset_parameters()
        if self.score == "linear":
            self.score_lin.reset_parameters()
        elif self.score == "bilinear":
            glorot(self.score_weight)
        else:
            self.score_x.reset_parameters()
            self.score_v.reset_parameters()
            self.score_out.reset_parameters()
        for p in (self.lin1.weight, self.lin2.weight):
            p.requires_grad_(self.train_gcn)

    # ------------------------------------------------------------------ graph reasoning
    def _check_graph(
        self, node_features: Tensor, edge_index: Tensor, edge_weight: OptTensor
    ) -> None:
        check_tensor(node_features, "node_features", ndim=2, floating=True, finite=True)
        if node_features.size(1) != self.node_channels:
            raise ValueError(
                f"'node_features' must have {self.node_channels} channels, "
                f"got {node_features.size(1)}"
            )
        num_nodes = node_features.size(0)
        check_edge_index(edge_index, num_nodes)
        if edge_weight is not None:
            check_tensor(edge_weight, "edge_weight", ndim=1, floating=True, finite=True)
            if edge_weight.numel() != edge_index.size(1):
                raise ValueError(
                    f"'edge_weight' must have {edge_index.size(1)} entries, "
                    f"got {edge_weight.numel()}"
                )
            if edge_weight.numel() and edge_weight.min() < 0:
                raise ValueError("'edge_weight' must be non-negative (a relation matrix)")

    def reason(
        self, node_features: Tensor, edge_index: Adj, edge_weight: OptTensor = None
    ) -> Tensor:
        r"""The two GCN layers over the class graph (Eq. 2): :math:`V' \in (C, D)`.

        ``edge_index`` is a ``[2, E]`` tensor (int64/int32, ``EdgeIndex``) or a
        ``torch.sparse`` / ``SparseTensor`` adjacency ``adj_t[i, j] = E_ij`` (its values are
        the edge weights unless ``edge_weight`` is given)."""
        _reject_pair(node_features, "node_features")
        if not isinstance(node_features, Tensor):
            check_tensor(node_features, "node_features", ndim=2, floating=True)  # TypeError
        num_nodes = node_features.size(0)
        edge_index, edge_weight = _to_edge_list(edge_index, edge_weight, num_nodes)
        if not torch.compiler.is_compiling():  # value checks would break the compiled graph
            self._check_graph(node_features, edge_index, edge_weight)
        edge_index = edge_index.long()
        if self.normalize:
            # under PyG's explainers (an edge mask on the messages) the existing loops are
            # folded into the added identity: E - L + C messages, as the mask expects
            explaining = self._explain is True or self._edge_mask is not None
            edge_index, edge_weight = add_identity_norm(
                edge_index, edge_weight, num_nodes, merge_loops=explaining
            )
        elif edge_weight is None:
            edge_weight = torch.ones(edge_index.size(1), device=edge_index.device)
        edge_weight = edge_weight.to(node_features.dtype)
        h = self.lin1(node_features)
        h = F.relu(
            self.propagate(edge_index, x=h, edge_weight=edge_weight, size=(num_nodes, num_nodes))
        )
        h = F.dropout(h, p=self.dropout, training=self.training or self.dropout_in_eval)
        h = self.lin2(h)
        return F.relu(
            self.propagate(edge_index, x=h, edge_weight=edge_weight, size=(num_nodes, num_nodes))
        )

    def message(self, x_j: Tensor, edge_weight: Tensor) -> Tensor:
        return edge_weight.view(-1, 1) * x_j

    # ------------------------------------------------------------------ mapping
    def scores(self, x: Tensor, nodes: Tensor) -> Tensor:
        r"""Compatibility scores :math:`s(v'_m, x_i)`: x :math:`(B, HW, D)`, nodes
        :math:`(C, D)` -> :math:`(B, HW, C)`."""
        if self.score == "linear":
            w = self.score_lin.weight.view(-1)
            d = self.in_channels
            sx = x @ w[:d]  # [B, HW]
            sv = nodes @ w[d:] + self.score_lin.bias  # [C]
            return sx.unsqueeze(-1) + sv.view(1, 1, -1)
        if self.score == "bilinear":
            return (x @ self.score_weight) @ nodes.t() / math.sqrt(self.in_channels)
        hx = self.score_x(x)  # [B, HW, m]
        hv = self.score_v(nodes)  # [C, m]
        hidden = F.relu(hx.unsqueeze(2) + hv.view(1, 1, *hv.shape))  # [B, HW, C, m]
        return self.score_out(hidden).squeeze(-1)

    def forward(
        self,
        x: Tensor,
        node_features: Tensor,
        edge_index: Adj,
        edge_weight: OptTensor = None,
        return_mapping: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        r"""Runs the forward pass.

        Args:
            x: Visual features ``[B, D, H, W]``.
            node_features: Class embeddings :math:`V^{(0)}` ``[C, K]``.
            edge_index: The class graph: ``[2, E]`` (int64/int32,
                :class:`~torch_geometric.EdgeIndex`; row 0 = source :math:`j`, row 1 =
                target :math:`i`) or a ``torch.sparse`` (COO/CSR) / ``SparseTensor``
                adjacency ``adj_t[i, j] = E_{ij}``.
            edge_weight: :math:`E_{ij}` per edge ``[E]`` (default: 1, or the values of a
                sparse adjacency).
            return_mapping: Also return :math:`H` ``[B, C, HW]``.
        """
        _reject_pair(x, "x")
        if not torch.compiler.is_compiling():
            check_tensor(x, "x", ndim=4, floating=True, finite=True)
            if x.size(1) != self.in_channels:
                raise ValueError(f"'x' must have {self.in_channels} channels, got {x.size(1)}")
        b, d, h, w = x.shape
        nodes = self.reason(node_features, edge_index, edge_weight).to(x.dtype)  # [C, D]
        flat = x.flatten(2).transpose(1, 2)  # [B, HW, D]
        s = self.scores(flat, nodes)  # [B, HW, C]
        mapping = torch.softmax(s, dim=1 if self.normalize_over == "pixels" else 2)
        update = F.relu(mapping @ nodes)  # [B, HW, D] = H^T V'
        out = update.transpose(1, 2).reshape(b, d, h, w) + x
        if return_mapping:
            return out, mapping.transpose(1, 2)  # H: [B, C, HW]
        return out

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.in_channels}, node_channels={self.node_channels}, "
            f"hidden_channels={self.hidden_channels}, score='{self.score}', "
            f"normalize_over='{self.normalize_over}')"
        )
