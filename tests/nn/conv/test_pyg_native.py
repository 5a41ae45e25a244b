"""The conv layers as PyG-native layers: explainers on their default path, to_hetero,
torch_geometric.nn.Sequential, every adjacency layout, bipartite input and size=."""
import pytest
import torch
from torch_geometric import EdgeIndex
from torch_geometric.explain import Explainer, GNNExplainer
from torch_geometric.explain.algorithm import AttentionExplainer
from torch_geometric.explain.algorithm.utils import clear_masks, set_masks
from torch_geometric.nn import Sequential, to_hetero
from torch_geometric.typing import WITH_TORCH_SPARSE
from torch_geometric.utils import to_torch_coo_tensor, to_torch_csr_tensor

from pyg_wsss.nn.conv import AffinityAttentionConv, CoAttentionConv, GraphReasoningMapping


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def _graph(n, e, seed, loops):
    """Random graph without self-loops (``loops=False``) or with a few of them; duplicate
    edges and isolated nodes possible."""
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, e), generator=g)
    ei = ei[:, ei[0] != ei[1]]
    if loops:
        ei = torch.cat([ei, torch.tensor([[0, 2, 2], [0, 2, 2]])], dim=1)
        ei = ei[:, torch.randperm(ei.size(1), generator=g)]
    return ei.contiguous()


def _config(task_level="node"):
    return dict(mode="regression", task_level=task_level, return_type="raw")


def _check_edge_mask(edge_mask, edge_index):
    assert edge_mask.shape == (edge_index.size(1),)
    assert torch.isfinite(edge_mask).all()
    non_loop = edge_index[0] != edge_index[1]
    assert (edge_mask[non_loop] > 0).float().mean() > 0.5  # gradients reached the edges
    assert edge_mask[non_loop].std() > 1e-4  # and they differ


# ------------------------------------------------------------------------- explainers
class _AffinityNet(torch.nn.Module):
    def __init__(self, **kwargs):
        super().__init__()
        self.lin = torch.nn.Linear(4, 6)
        self.conv1 = AffinityAttentionConv(w_init=1.0, beta=2.0, **kwargs)
        self.conv2 = AffinityAttentionConv(w_init=0.5, beta=2.0, **kwargs)

    def forward(self, x, edge_index):
        return self.conv2(self.conv1(self.lin(x).relu(), edge_index), edge_index)


class _CoAttentionNet(torch.nn.Module):
    """PyG's explainers want [N, F] node features: the maps travel flattened."""

    def __init__(self, **kwargs):
        super().__init__()
        self.conv = CoAttentionConv(4, **kwargs)

    def forward(self, x, edge_index):
        out = self.conv(x.view(x.size(0), 4, 2, 2), edge_index)
        return out.flatten(1)


class _GRMNet(torch.nn.Module):
    """The class graph is the explained graph: its nodes are the class embeddings."""

    def __init__(self):
        super().__init__()
        self.grm = GraphReasoningMapping(6, node_channels=5, dropout=0.0)
        self.register_buffer("pixels", torch.randn(2, 6, 3, 3))

    def forward(self, x, edge_index):
        return self.grm(self.pixels, x, edge_index).mean((2, 3))


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("loops", [False, True])
def test_gnn_explainer_affinity_attention_default_path(loops, fused):
    torch.manual_seed(0)
    model = _AffinityNet() if fused else _AffinityNet(fused=False)
    assert model.conv1.fused == fused  # fused=True is the default
    ei = _graph(12, 40, seed=1, loops=loops)
    x = torch.rand(12, 4)
    explainer = Explainer(
        model, algorithm=GNNExplainer(epochs=20), explanation_type="model",
        node_mask_type="attributes", edge_mask_type="object", model_config=_config(),
    )
    explanation = explainer(x, ei)
    _check_edge_mask(explanation.edge_mask, ei)
    assert explanation.node_mask.shape == x.shape
    assert torch.isfinite(explanation.node_mask).all()
    if loops:  # input loops are replaced by the layer's own: they carry no message
        assert (explanation.edge_mask[ei[0] == ei[1]] == 0).all()
    # the masks are cleared afterwards: the fused kernel serves plain calls again
    assert not model.conv1._explaining() and model.conv1._use_fused() == fused


@pytest.mark.parametrize("loops", [False, True])
def test_gnn_explainer_co_attention(loops):
    torch.manual_seed(0)
    for kwargs in ({}, dict(variant="code")):
        model = _CoAttentionNet(**kwargs)
        ei = _graph(5, 14, seed=2, loops=loops)
        x = torch.randn(5, 16)
        explainer = Explainer(
            model, algorithm=GNNExplainer(epochs=10), explanation_type="model",
            node_mask_type="attributes", edge_mask_type="object", model_config=_config(),
        )
        explanation = explainer(x, ei)
        _check_edge_mask(explanation.edge_mask, ei)
        if loops:  # co-attention adds no loops: the input loops are ordinary messages
            assert (explanation.edge_mask[ei[0] == ei[1]] > 0).all()


@pytest.mark.parametrize("loops", [False, True])
def test_gnn_explainer_graph_reasoning(loops):
    torch.manual_seed(0)
    model = _GRMNet()
    ei = _graph(6, 16, seed=3, loops=loops)
    x = torch.randn(6, 5)
    explainer = Explainer(
        model, algorithm=GNNExplainer(epochs=10), explanation_type="model",
        node_mask_type="attributes", edge_mask_type="object",
        model_config=_config("graph"),
    )
    explanation = explainer(x, ei)
    _check_edge_mask(explanation.edge_mask, ei)


def test_explain_layouts_equal_plain_results():
    # an all-ones edge mask (no sigmoid) leaves every layer's output unchanged: the explain
    # path (propagate, E - L + N messages) is the default path
    torch.manual_seed(1)
    ei = _graph(10, 30, seed=4, loops=True)
    ones = torch.ones(ei.size(1))
    cases = [
        (_AffinityNet(), torch.rand(10, 4)),
        (_CoAttentionNet(), torch.randn(10, 16)),
        (_GRMNet(), torch.randn(10, 5)),
    ]
    for model, x in cases:
        model.eval()
        ref = model(x, ei)
        set_masks(model, ones, ei, apply_sigmoid=False)
        try:
            torch.testing.assert_close(model(x, ei), ref)
        finally:
            clear_masks(model)


def test_attention_explainer_reads_affinity_attention():
    # AttentionExplainer hooks `message(x_j, alpha)`: the hooks switch the default layer to
    # the propagate path, and the input edges come first in the attention (masked loops 0)
    torch.manual_seed(2)
    model = _AffinityNet()
    ei = _graph(9, 30, seed=5, loops=True)
    x = torch.rand(9, 4)
    explainer = Explainer(
        model, algorithm=AttentionExplainer(), explanation_type="model",
        edge_mask_type="object", model_config=_config(),
    )
    edge_mask = explainer(x, ei).edge_mask
    assert edge_mask.shape == (ei.size(1),) and torch.isfinite(edge_mask).all()
    h = model.conv1(model.lin(x).relu(), ei)
    _, (_, a1) = model.conv1(model.lin(x).relu(), ei, return_attention_weights=True)
    _, (_, a2) = model.conv2(h, ei, return_attention_weights=True)
    e = ei.size(1)
    torch.testing.assert_close(edge_mask, torch.maximum(a1[:e], a2[:e]))
    assert (edge_mask[ei[0] == ei[1]] == 0).all()


# ------------------------------------------------------------------------- paths agree
@pytest.mark.parametrize("negative", ["indicator", "mask", "none"])
def test_affinity_fused_default_equals_propagate_path(negative, device):
    # default fused kernel vs the propagate path (fused=False), and vs the explain layout
    # (loops removed then added): values and gradients, input with loops and duplicates
    torch.manual_seed(3)
    ei = torch.cat([_graph(15, 60, seed=6, loops=True), torch.tensor([[3], [4]])], 1)
    ei = ei.to(device)
    ew = torch.rand(ei.size(1), dtype=torch.float64, device=device)
    x0 = torch.randn(17, 5, dtype=torch.float64, device=device)  # nodes 15, 16 isolated
    results = []
    for mode in ("fused", "propagate", "explain"):
        conv = AffinityAttentionConv(negative_cosine=negative, w_init=0.8, beta=3.0,
                                     fused=mode == "fused").double().to(device)
        x = x0.clone().requires_grad_()
        e = ew.clone().requires_grad_()
        if mode == "explain":
            set_masks(conv, torch.ones(ei.size(1), dtype=torch.float64, device=device), ei,
                      apply_sigmoid=False)
        out = conv(x, ei, e)
        out.square().sum().backward()
        results.append((out, x.grad, e.grad, conv.w.grad))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            torch.testing.assert_close(a, b)


def test_affinity_fused_equals_propagate_empty_graph():
    for fused in (True, False):
        conv = AffinityAttentionConv(fused=fused)
        x = torch.rand(3, 2)
        empty = torch.empty(2, 0, dtype=torch.long)
        torch.testing.assert_close(conv(x, empty), x)
        assert conv(torch.empty(0, 2), empty).shape == (0, 2)
        bip = AffinityAttentionConv(fused=fused, add_self_loops=False)
        out = bip((torch.rand(4, 2), torch.rand(3, 2)), empty)
        torch.testing.assert_close(out, torch.zeros(3, 2))


# ------------------------------------------------------------------------- layouts
def _layouts(ei, n_src, n_dst, ew=None):
    ei = ei.contiguous()  # EdgeIndex needs contiguous rows (torch.unique(dim=1) is not)
    yield "int32", ei.int(), ew
    yield "EdgeIndex", EdgeIndex(ei, sparse_size=(n_src, n_dst)), ew
    yield "EdgeIndex int32", EdgeIndex(ei.int(), sparse_size=(n_src, n_dst)), ew
    yield "sorted EdgeIndex", *_sorted_edge_index(ei, ew, n_src, n_dst)
    val = torch.ones(ei.size(1)) if ew is None else ew
    yield "coo", to_torch_coo_tensor(ei.flip(0), val, size=(n_dst, n_src)), None
    yield "csr", to_torch_csr_tensor(ei.flip(0), val, size=(n_dst, n_src)), None


def _sorted_edge_index(ei, ew, n_src, n_dst):
    perm = torch.argsort(ei[1] * n_src + ei[0])
    sorted_ei = EdgeIndex(ei[:, perm].contiguous(), sparse_size=(n_src, n_dst), sort_order="col")
    return sorted_ei, None if ew is None else ew[perm]


def test_affinity_layouts_equal_edge_index():
    torch.manual_seed(4)
    ei = torch.unique(_graph(9, 30, seed=7, loops=True), dim=1)  # coalesced: sparse == list
    ew = torch.rand(ei.size(1), dtype=torch.float64) + 0.1
    x = torch.randn(9, 4, dtype=torch.float64)
    for fused in (True, False):
        conv = AffinityAttentionConv(w_init=0.6, fused=fused).double()
        ref = conv(x, ei, ew)
        for name, adj, w in _layouts(ei, 9, 9, ew):
            torch.testing.assert_close(conv(x, adj, w), ref, msg=name)
    if WITH_TORCH_SPARSE:  # pragma: no cover - optional dependency
        from torch_geometric.typing import SparseTensor

        st = SparseTensor(row=ei[1], col=ei[0], value=ew, sparse_sizes=(9, 9))
        torch.testing.assert_close(conv(x, st), ref)


def test_co_attention_layouts_equal_edge_index():
    torch.manual_seed(5)
    ei = torch.unique(_graph(5, 14, seed=8, loops=True), dim=1)
    x = torch.randn(5, 4, 2, 3, dtype=torch.float64)
    conv = CoAttentionConv(4).double()
    ref = conv(x, ei)
    for name, adj, _ in _layouts(ei, 5, 5):
        torch.testing.assert_close(conv(x, adj), ref, msg=name)
    if WITH_TORCH_SPARSE:  # pragma: no cover - optional dependency
        from torch_geometric.typing import SparseTensor

        st = SparseTensor(row=ei[1], col=ei[0], sparse_sizes=(5, 5))
        torch.testing.assert_close(conv(x, st), ref)


def test_graph_reasoning_layouts_equal_edge_index():
    torch.manual_seed(6)
    ei = torch.unique(_graph(6, 18, seed=9, loops=True), dim=1)
    ew = torch.rand(ei.size(1), dtype=torch.float64) + 0.1
    grm = GraphReasoningMapping(4, node_channels=3).double().eval()
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    nodes = torch.randn(6, 3, dtype=torch.float64)
    ref = grm(x, nodes, ei, ew)
    for name, adj, w in _layouts(ei, 6, 6, ew):
        torch.testing.assert_close(grm(x, nodes, adj, w), ref, msg=name)
    # the values of a sparse adjacency are the relation weights; explicit weights (in the
    # adjacency's coalesced (target, source) order) win
    adj = to_torch_coo_tensor(ei.flip(0), torch.ones(ei.size(1), dtype=torch.float64), (6, 6))
    perm = torch.argsort(ei[1] * 6 + ei[0])
    torch.testing.assert_close(grm(x, nodes, adj, ew[perm]), ref)
    if WITH_TORCH_SPARSE:  # pragma: no cover - optional dependency
        from torch_geometric.typing import SparseTensor

        st = SparseTensor(row=ei[1], col=ei[0], value=ew, sparse_sizes=(6, 6))
        torch.testing.assert_close(grm(x, nodes, st), ref)
    with pytest.raises(ValueError, match="class adjacency"):
        grm(x, nodes, to_torch_coo_tensor(ei.flip(0), ew, (7, 7)))


@pytest.mark.skipif(not WITH_TORCH_SPARSE, reason="torch-sparse is not installed")
def test_sparse_tensor_attention_weights():  # pragma: no cover - optional dependency
    from torch_geometric.typing import SparseTensor

    ei = torch.tensor([[0, 1, 2], [1, 2, 0]])
    st = SparseTensor(row=ei[1], col=ei[0], sparse_sizes=(3, 3))
    out, adj = AffinityAttentionConv()(torch.rand(3, 2), st, return_attention_weights=True)
    assert isinstance(adj, SparseTensor) and out.shape == (3, 2)


def test_merge_loops_is_the_same_matrix():
    from pyg_wsss.nn.conv.graph_reasoning import add_identity_norm

    ei = torch.tensor([[0, 1, 1, 2, 2], [1, 0, 1, 2, 2]])  # loops at 1 and a doubled one at 2
    ew = torch.tensor([0.5, 0.2, 0.7, 0.1, 0.3])
    a_ei, a_w = add_identity_norm(ei, ew, 4)
    b_ei, b_w = add_identity_norm(ei, ew, 4, merge_loops=True)
    assert b_ei.size(1) == ei.size(1) - 3 + 4
    torch.testing.assert_close(b_ei[:, -4:], torch.arange(4).repeat(2, 1))
    dense_a = torch.zeros(4, 4).index_put_((a_ei[1], a_ei[0]), a_w, accumulate=True)
    dense_b = torch.zeros(4, 4).index_put_((b_ei[1], b_ei[0]), b_w, accumulate=True)
    torch.testing.assert_close(dense_a, dense_b)


# ------------------------------------------------------------------------- bipartite, size
@pytest.mark.parametrize("fused", [True, False])
def test_affinity_bipartite_equals_union_graph(fused, device):
    # (x_src, x_dst) equals the homogeneous layer on the union of both node sets
    torch.manual_seed(7)
    x_src = torch.randn(6, 3, dtype=torch.float64, device=device, requires_grad=True)
    x_dst = torch.randn(4, 3, dtype=torch.float64, device=device, requires_grad=True)
    g = torch.Generator().manual_seed(10)
    ei = torch.stack([torch.randint(0, 6, (15,), generator=g),
                      torch.randint(0, 4, (15,), generator=g)])
    ei = torch.unique(ei, dim=1).to(device)  # coalesced: the sparse adjacency is the same
    ew = torch.rand(ei.size(1), dtype=torch.float64, device=device)
    conv = AffinityAttentionConv(w_init=0.9, beta=2.0, add_self_loops=False, fused=fused)
    conv = conv.double().to(device)
    out = conv((x_src, x_dst), ei, ew)
    assert out.shape == (4, 3)
    union = torch.cat([x_src, x_dst])
    ref = conv(union, torch.stack([ei[0], ei[1] + 6]), ew)[6:]
    torch.testing.assert_close(out, ref)
    ga = torch.autograd.grad(out.sin().sum(), (x_src, x_dst, conv.w))
    gb = torch.autograd.grad(ref.sin().sum(), (x_src, x_dst, conv.w))
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b)
    # sparse bipartite adjacency adj_t [N_t, N_s]
    adj_t = to_torch_coo_tensor(ei.flip(0), ew, size=(4, 6))
    torch.testing.assert_close(conv((x_src, x_dst), adj_t), out)
    with pytest.raises(ValueError, match="num_dst, num_src"):
        conv((x_src, x_dst), to_torch_coo_tensor(ei.flip(0), ew, size=(6, 6)))
    with pytest.raises(ValueError, match="targets"):
        conv((x_src.cpu(), x_dst.cpu()), torch.tensor([[0], [5]]))


@pytest.mark.parametrize("fused", [True, False])
def test_affinity_size_argument(fused):
    # one x and size=(N, M): the targets are the first M nodes (PyG's sampled subgraphs)
    torch.manual_seed(8)
    x = torch.randn(8, 3, dtype=torch.float64)
    g = torch.Generator().manual_seed(11)
    ei = torch.stack([torch.randint(0, 8, (20,), generator=g),
                      torch.randint(0, 5, (20,), generator=g)])
    conv = AffinityAttentionConv(w_init=0.4, fused=fused).double()
    out = conv(x, ei, size=(8, 5))
    assert out.shape == (5, 3)
    torch.testing.assert_close(out, conv(x, ei)[:5])
    torch.testing.assert_close(conv(x, ei, size=(8, 8)), conv(x, ei))
    with pytest.raises(ValueError, match="size"):
        conv(x, ei, size=(7, 5))
    with pytest.raises(ValueError, match="size"):
        conv(x, ei, size=(8, 9))


def test_bipartite_and_size_without_graph_breaks():
    conv = AffinityAttentionConv(add_self_loops=False)
    ei = torch.tensor([[0, 1, 5, 3], [0, 0, 3, 2]])
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(conv)((torch.rand(6, 3), torch.rand(4, 3)), ei)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    explanation = torch._dynamo.explain(AffinityAttentionConv())(torch.rand(6, 3), ei,
                                                                  size=(6, 4))
    assert explanation.graph_break_count == 0, explanation.break_reasons


def test_co_attention_bipartite_and_size():
    torch.manual_seed(9)
    conv = CoAttentionConv(4, variant="code").double()
    x_src = torch.randn(3, 4, 2, 3, dtype=torch.float64)
    x_dst = torch.randn(2, 4, 2, 3, dtype=torch.float64)
    ei = torch.tensor([[0, 1, 2, 2], [0, 0, 1, 0]])
    out = conv((x_src, x_dst), ei)
    assert out.shape == x_dst.shape
    ref = conv(torch.cat([x_src, x_dst]), torch.stack([ei[0], ei[1] + 3]))[3:]
    torch.testing.assert_close(out, ref)
    # different map sizes for senders and receivers
    out = conv((torch.randn(3, 4, 4, 4, dtype=torch.float64), x_dst), ei)
    assert out.shape == x_dst.shape and torch.isfinite(out).all()
    # one x with size=(N, M), also with the paper's self-attention on the loops
    paper = CoAttentionConv(4).double()
    x = torch.randn(4, 4, 2, 2, dtype=torch.float64)
    ei = torch.tensor([[0, 1, 2, 3, 1], [1, 0, 0, 1, 1]])
    torch.testing.assert_close(paper(x, ei, size=(4, 2)), paper(x, ei)[:2])
    with pytest.raises(ValueError, match="self_attention"):
        paper((x, x[:2]), ei)
    with pytest.raises(ValueError, match="size"):
        paper(x, ei, size=(3, 2))


# ------------------------------------------------------------------------- to_hetero
_META = (["a", "b"], [("a", "to", "b"), ("b", "to", "a"), ("a", "self", "a")])


def _hetero_edges():
    return {
        ("a", "to", "b"): torch.tensor([[0, 1, 2, 4], [0, 0, 1, 2]]),
        ("b", "to", "a"): torch.tensor([[0, 1, 2, 2], [3, 0, 1, 4]]),
        ("a", "self", "a"): torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]]),
    }


class _One(torch.nn.Module):
    def __init__(self, conv):
        super().__init__()
        self.conv = conv

    def forward(self, x, edge_index):
        return self.conv(x, edge_index)


def test_to_hetero_affinity_attention():
    torch.manual_seed(10)
    model = to_hetero(_One(AffinityAttentionConv(add_self_loops=False)), _META, aggr="sum")
    x = {"a": torch.randn(5, 3), "b": torch.randn(3, 3)}
    ei = _hetero_edges()
    out = model(x, ei)
    convs = model.conv
    ref_b = convs["a__to__b"]((x["a"], x["b"]), ei[("a", "to", "b")])
    ref_a = convs["b__to__a"]((x["b"], x["a"]), ei[("b", "to", "a")]) + convs["a__self__a"](
        x["a"], ei[("a", "self", "a")]
    )
    torch.testing.assert_close(out["b"], ref_b)
    torch.testing.assert_close(out["a"], ref_a)
    # self-loops across two node types are meaningless: PyG refuses them with a clear error
    with pytest.raises(ValueError, match="add_self_loops"):
        to_hetero(_One(AffinityAttentionConv()), _META)


def test_to_hetero_co_attention():
    torch.manual_seed(11)
    model = to_hetero(_One(CoAttentionConv(4, variant="code")), _META, aggr="sum")
    x = {"a": torch.randn(5, 4, 2, 2), "b": torch.randn(3, 4, 3, 3)}
    ei = _hetero_edges()
    out = model(x, ei)
    convs = model.conv
    torch.testing.assert_close(
        out["b"], convs["a__to__b"]((x["a"], x["b"]), ei[("a", "to", "b")])
    )
    assert out["a"].shape == x["a"].shape
    paper = to_hetero(_One(CoAttentionConv(4)), _META)
    with pytest.raises(ValueError, match="self_attention"):
        paper(x, ei)


def test_to_hetero_graph_reasoning_raises_clearly():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.grm = GraphReasoningMapping(3, node_channels=3)

        def forward(self, x, edge_index):
            return self.grm(x, x, edge_index)

    model = to_hetero(Net(), (["a", "b"], [("a", "to", "b"), ("b", "to", "a")]))
    x = {"a": torch.randn(3, 3), "b": torch.randn(2, 3)}
    ei = {("a", "to", "b"): torch.tensor([[0], [1]]), ("b", "to", "a"): torch.tensor([[1], [0]])}
    with pytest.raises(ValueError, match="one class graph"):
        model(x, ei)


# ------------------------------------------------------------------------- Sequential
def test_sequential_affinity_attention():
    torch.manual_seed(12)
    lin = torch.nn.Linear(4, 6)
    c1, c2 = AffinityAttentionConv(w_init=0.3), AffinityAttentionConv(w_init=0.7)
    model = Sequential("x, edge_index, edge_weight", [
        (lin, "x -> x"),
        torch.nn.ReLU(),
        (c1, "x, edge_index, edge_weight -> x"),
        (c2, "x, edge_index -> x"),
    ])
    ei = _graph(8, 24, seed=12, loops=True)
    ew = torch.rand(ei.size(1))
    x = torch.randn(8, 4)
    torch.testing.assert_close(model(x, ei, ew), c2(c1(lin(x).relu(), ei, ew), ei))
    assert "AffinityAttentionConv" in str(model)


def test_sequential_co_attention_and_graph_reasoning():
    torch.manual_seed(13)
    c1, c2 = CoAttentionConv(4), CoAttentionConv(4, variant="code")
    grm = GraphReasoningMapping(4, node_channels=3).eval()
    model = Sequential("x, edge_index, classes, class_edges", [
        (c1, "x, edge_index -> x"),
        torch.nn.ReLU(),
        (c2, "x, edge_index -> x"),
        (grm, "x, classes, class_edges -> x"),
    ]).eval()
    x = torch.randn(3, 4, 2, 2)
    ei = _graph(3, 8, seed=13, loops=True)
    classes = torch.randn(5, 3)
    class_edges = _graph(5, 10, seed=14, loops=False)
    ref = grm(c2(c1(x, ei).relu(), ei), classes, class_edges)
    torch.testing.assert_close(model(x, ei, classes, class_edges), ref)
