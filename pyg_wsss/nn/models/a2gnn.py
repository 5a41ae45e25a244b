r"""A2GNN (Zhang et al., TPAMI 2021, section 4.4): embedding, three affinity attention
layers, output layer; optionally many independent per-image models in one module."""
from __future__ import annotations

from typing import Optional, Sequence, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.typing import Adj, OptTensor

from ..._checks import check_batch, check_fraction, check_positive, check_tensor, value_checks
from ..conv.affinity_attention import AffinityAttentionConv


class A2GNN(nn.Module):
    r"""The A2GNN node classifier (A 16-19):

    .. math::
        \mathbf{H}^1 = \mathrm{ReLU}(\mathbf{X} \mathbf{W}^0), \quad
        \mathbf{H}^{l+1} = \mathbf{P}^l \mathbf{H}^l \ (l = 1..L), \quad
        \mathbf{O} = \mathbf{H}^{L+1} \mathbf{W}^{L+1}

    with dropout after the embedding, :math:`L` :class:`AffinityAttentionConv` layers and
    bias-free linear layers (Xavier-uniform, as the code). The model returns logits (no
    softmax) and :math:`\mathbf{H}^{L+1}` (used by the multi-point loss).

    **Per-image models.** With ``num_graphs = B > 1`` the module holds ``B`` independent
    A2GNNs (weights ``[B, in, out]``, one :math:`w` per layer and graph) that are applied to
    a PyG mini-batch through its ``batch`` vector: training them together with the summed
    per-image losses is the same as training ``B`` fresh models one by one (Adam is
    element-wise), with no Python loop over images. :meth:`reset_parameters` takes one seed
    per model so that every model is initialised as a single model with that seed.

    Args:
        in_channels (int): Node feature size.
        out_channels (int): Number of classes.
        hidden_channels (int, optional): Embedding size. (default: :obj:`256`)
        num_layers (int, optional): Affinity attention layers. (default: :obj:`3`)
        dropout (float, optional): Dropout after the embedding. (default: :obj:`0.5`)
        num_graphs (int, optional): Independent models, one per graph. (default: :obj:`1`)
        seeds (sequence of int, optional): Initialisation seed of each model.
        **conv_kwargs: Passed to :class:`AffinityAttentionConv` (``beta``,
            ``negative_cosine``, ``w_init``, ``requires_grad``, ...).

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})`, edge indices
          :math:`(2, |\mathcal{E}|)`, edge weights :math:`(|\mathcal{E}|)` *(optional)*,
          batch :math:`(|\mathcal{V}|)` *(with* ``num_graphs > 1`` *)*
        - **output:** ``(logits (|V|, out_channels), features (|V|, hidden_channels))``
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden_channels: int = 256,
        num_layers: int = 3,
        dropout: float = 0.5,
        num_graphs: int = 1,
        seeds: Optional[Sequence[int]] = None,
        **conv_kwargs,
    ):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels),
                        ("hidden_channels", hidden_channels), ("num_graphs", num_graphs)):
            check_positive(v, name, integer=True)
        check_positive(num_layers, "num_layers", strict=False, integer=True)
        check_fraction(dropout, "dropout")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.hidden_channels = hidden_channels
        self.num_layers = num_layers
        self.dropout = float(dropout)
        self.num_graphs = num_graphs
        self.lin_in = nn.Parameter(torch.empty(num_graphs, in_channels, hidden_channels))
        self.lin_out = nn.Parameter(torch.empty(num_graphs, hidden_channels, out_channels))
        self.convs = nn.ModuleList(
            [AffinityAttentionConv(num_graphs=num_graphs, **conv_kwargs) for _ in range(num_layers)]
        )
        self.reset_parameters(seeds)

    def reset_parameters(self, seeds: Optional[Sequence[int]] = None) -> None:
        """Xavier-uniform linear weights, :math:`w` per ``conv_kwargs``. With ``seeds`` (one
        per model) model ``b`` is drawn from ``torch.Generator().manual_seed(seeds[b])`` in
        the order embedding, layers, output (so it equals a single model with that seed)."""
        if seeds is not None and len(seeds) != self.num_graphs:
            raise ValueError(f"'seeds' must have {self.num_graphs} entries, got {len(seeds)}")
        with torch.no_grad():
            for b in range(self.num_graphs):
                g = None if seeds is None else torch.Generator().manual_seed(int(seeds[b]))
                w_in = torch.empty(self.hidden_channels, self.in_channels)
                nn.init.xavier_uniform_(w_in, generator=g)
                self.lin_in[b].copy_(w_in.t())
                for conv in cast("Sequence[AffinityAttentionConv]", self.convs):
                    if conv.w_init is None:
                        conv.w[b] = torch.rand((), generator=g)
                    else:
                        conv.w[b] = conv.w_init
                w_out = torch.empty(self.out_channels, self.hidden_channels)
                nn.init.xavier_uniform_(w_out, generator=g)
                self.lin_out[b].copy_(w_out.t())

    def _linear(self, x: Tensor, weight: Tensor, batch: OptTensor,
                max_num_nodes: Optional[int] = None) -> Tensor:
        if self.num_graphs == 1:
            return x @ weight[0]
        if batch is None:
            raise ValueError("'batch' is required when num_graphs > 1")
        # per-graph weights: pad to [B, N_max, C], one batched matmul, unpad (the layout of
        # to_dense_batch, built with static shapes: no boolean mask, no host sync once
        # ``max_num_nodes`` is known)
        flat, m = self._dense_layout(batch, max_num_nodes)
        b, c = self.num_graphs, x.size(1)
        dense = x.new_zeros(b * m, c).index_copy(0, flat, x).view(b, m, c)
        out = torch.bmm(dense, weight)
        return out.reshape(b * m, -1).index_select(0, flat)

    def _dense_layout(self, batch: Tensor, max_num_nodes: Optional[int]) -> tuple[Tensor, int]:
        """Row of every node in the padded ``[B * N_max]`` layout (``batch`` sorted)."""
        b = self.num_graphs
        ones = torch.ones_like(batch)
        counts = torch.zeros(b, dtype=batch.dtype, device=batch.device).index_add_(0, batch, ones)
        if max_num_nodes is None:  # eager convenience: one host read
            max_num_nodes = int(counts.max()) if batch.numel() else 0
        ptr = counts.cumsum(0) - counts
        local = torch.arange(batch.numel(), device=batch.device) - ptr[batch]
        return batch * max_num_nodes + local, int(max_num_nodes)

    def forward(
        self,
        x: Tensor,
        edge_index: Adj,
        edge_weight: OptTensor = None,
        batch: OptTensor = None,
        dropout_mask: OptTensor = None,
        max_num_nodes: Optional[int] = None,
    ) -> tuple[Tensor, Tensor]:
        """Returns ``(logits, features)``.

        Args:
            x: ``[N, in_channels]`` (L1-normalised node features, A 15).
            edge_index: ``[2, E]`` graph (or a sparse adjacency).
            edge_weight: ``[E]`` soft edges :math:`E_{ij}`.
            batch: ``[N]`` sorted graph index (required with ``num_graphs > 1``).
            dropout_mask: Optional ``[N, hidden]`` pre-drawn, pre-scaled dropout mask
                (per-image seeded dropout); otherwise :func:`F.dropout` in training.
            max_num_nodes: Nodes of the largest graph (``num_graphs > 1``); computed from
                ``batch`` (a host read) when omitted. Pass it in training loops and under
                :func:`torch.compile` (no data-dependent shape then).
        """
        check_tensor(x, "x", ndim=2, floating=True)
        if x.size(1) != self.in_channels:
            raise ValueError(f"'x' must have {self.in_channels} channels, got {x.size(1)}")
        if batch is not None and self.num_graphs > 1:
            batch, _ = check_batch(batch, x.size(0), self.num_graphs)  # length, dtype, range
            if (
                value_checks(batch)
                and batch.numel() > 1
                and bool((batch[1:] < batch[:-1]).any())
            ):
                raise ValueError("'batch' must be sorted (PyG Batch order)")
        if batch is not None and self.num_graphs > 1 and max_num_nodes is None:
            max_num_nodes = self._dense_layout(batch, None)[1]
        h = F.relu(self._linear(x, self.lin_in, batch, max_num_nodes))
        if self.training and self.dropout > 0:
            if dropout_mask is not None:
                if dropout_mask.shape != h.shape:
                    raise ValueError(
                        f"'dropout_mask' must have shape {tuple(h.shape)}, "
                        f"got {tuple(dropout_mask.shape)}"
                    )
                h = h * dropout_mask
            else:
                h = F.dropout(h, p=self.dropout, training=True)
        for conv in self.convs:
            h = conv(h, edge_index, edge_weight, batch=batch)
        return self._linear(h, self.lin_out, batch, max_num_nodes), h

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
            f"hidden_channels={self.hidden_channels}, num_layers={self.num_layers}, "
            f"num_graphs={self.num_graphs})"
        )


def dropout_masks(
    num_nodes: Sequence[int],
    channels: int,
    p: float,
    generators: Sequence[torch.Generator],
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Per-graph seeded inverted-dropout masks (``[sum(num_nodes), channels]``, values 0 or
    ``1 / (1 - p)``), drawn from one generator per graph so that a graph gets the same mask
    whether it is trained alone or in a batch. Each part is drawn on its generator's device
    (pass ``torch.Generator(device=...)`` to draw on the GPU: no host-device copy per step);
    the result is moved to ``device`` (default: the generators' device)."""
    check_fraction(p, "p")
    if len(num_nodes) != len(generators):
        raise ValueError("one generator per graph is required")
    parts = []
    for n, g in zip(num_nodes, generators):
        keep = torch.rand(int(n), channels, generator=g, device=g.device) >= p
        parts.append(keep.to(dtype) / max(1.0 - p, 1e-12))
    if not parts:
        return torch.empty(0, channels, dtype=dtype, device=device)
    out = torch.cat(parts)
    return out if device is None else out.to(device)
