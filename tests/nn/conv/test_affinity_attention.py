import io

import pytest
import torch
from torch_geometric import EdgeIndex
from torch_geometric.nn import AGNNConv
from torch_geometric.typing import WITH_TORCH_SPARSE
from torch_geometric.utils import to_torch_coo_tensor, to_torch_csr_tensor

from pyg_wsss.nn.conv import AffinityAttentionConv
from pyg_wsss.nn.conv.affinity_attention import affinity_attention_dense


def _graph(n=7, e=20, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, e), generator=g)
    ei = torch.unique(ei, dim=1).contiguous()  # no duplicate edges (dense reference)
    ew = torch.rand(ei.size(1), generator=g, dtype=torch.float64) + 0.05
    return ei.to(device), ew.to(device)


def _dense_adj(ei, ew, n):
    adj = torch.zeros(n, n, dtype=ew.dtype, device=ew.device)
    adj[ei[1], ei[0]] = ew
    return adj


def _independent_reference(x, ei, ew, w, beta, variant):
    """Loop-based Eq. 18 (self-loops removed then added with E_ii = 1)."""
    n = x.size(0)
    out = torch.zeros_like(x)
    for i in range(n):
        nbrs = {int(j): float(e) for j, t, e in zip(ei[0], ei[1], ew) if int(t) == i and j != i}
        nbrs[i] = 1.0
        logits, vals = [], []
        for j, e in nbrs.items():
            c = float(torch.nn.functional.cosine_similarity(x[i], x[j], dim=0, eps=1e-30))
            if variant == "mask" and c < 0:
                continue
            ind = (c > 0) if variant == "indicator" else 1.0
            logits.append(w * c + beta * ind * e)
            vals.append(x[j])
        p = torch.softmax(torch.tensor(logits, dtype=x.dtype), 0)
        out[i] = sum(pi * v for pi, v in zip(p, vals))
    return out


def test_repr_and_reset():
    conv = AffinityAttentionConv()
    expected = (
        "AffinityAttentionConv(beta=10.0, negative_cosine='indicator', num_graphs=1, fused=True)"
    )
    assert str(conv) == expected
    assert 0.0 <= float(conv.w.detach()) <= 1.0 and conv.w.requires_grad
    fixed = AffinityAttentionConv(requires_grad=False, w_init=0.5)
    assert "w" not in dict(fixed.named_parameters()) and float(fixed.w) == 0.5
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a, b = AffinityAttentionConv(), AffinityAttentionConv()
    a.reset_parameters(g1)
    b.reset_parameters(g2)
    assert torch.equal(a.w, b.w)


@pytest.mark.parametrize("variant", ["indicator", "mask", "none"])
def test_equals_agnnconv_when_beta_zero(variant, device):
    ei, ew = _graph(device=device)
    x = torch.rand(7, 5, dtype=torch.float64, device=device)  # non-negative features
    conv = AffinityAttentionConv(beta=0.0, negative_cosine=variant).double().to(device)
    agnn = AGNNConv().double().to(device)
    agnn.beta.data.fill_(float(conv.w))
    assert torch.allclose(conv(x, ei, ew), agnn(x, ei), atol=1e-6)


def test_equals_agnnconv_when_all_edge_weights_equal(device):
    ei, _ = _graph(device=device)
    x = torch.rand(7, 5, dtype=torch.float64, device=device) + 0.1  # cos > 0 everywhere
    conv = AffinityAttentionConv(beta=10.0).double().to(device)
    agnn = AGNNConv().double().to(device)
    agnn.beta.data.fill_(float(conv.w))
    ew = torch.ones(ei.size(1), dtype=torch.float64, device=device)
    assert torch.allclose(conv(x, ei, ew), agnn(x, ei), atol=1e-6)
    assert torch.allclose(conv(x, ei), agnn(x, ei), atol=1e-6)  # default weights = 1
    # with varying weights the edge term matters (it is inside the softmax)
    ew = torch.rand(ei.size(1), dtype=torch.float64, device=device)
    assert not torch.allclose(conv(x, ei, ew), agnn(x, ei), atol=1e-4)


@pytest.mark.parametrize("variant", ["indicator", "mask", "none"])
def test_dense_and_loop_reference_signed_features(variant, device):
    ei, ew = _graph(n=6, e=18, seed=1, device=device)
    x = torch.randn(6, 4, dtype=torch.float64, device=device)
    conv = AffinityAttentionConv(negative_cosine=variant, w_init=0.7, beta=3.0).double()
    conv = conv.to(device)
    out, (ei2, alpha) = conv(x, ei, ew, return_attention_weights=True)
    dense_out, p = affinity_attention_dense(x, _dense_adj(ei, ew, 6), 0.7, 3.0, variant)
    assert torch.allclose(out, dense_out, atol=1e-10)
    ref = _independent_reference(x.cpu(), ei.cpu(), ew.cpu(), 0.7, 3.0, variant)
    assert torch.allclose(out.cpu(), ref, atol=1e-10)
    # returned attention matches the dense P on the (kept) edges
    p_edges = p[ei2[1], ei2[0]]
    keep = ei2[0] != ei2[1]
    keep[-6:] = True  # added loops
    assert torch.allclose(alpha[keep], p_edges[keep], atol=1e-10)
    assert torch.all(alpha[~keep] == 0)  # input self-loops are masked


def test_mask_variant_drops_negative_neighbours():
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    ei = torch.tensor([[1, 2], [0, 0]])
    conv = AffinityAttentionConv(negative_cosine="mask", w_init=1.0, beta=0.0).double()
    out, (_, alpha) = conv(x, ei, return_attention_weights=True)
    # node 0: neighbour 1 has cos -1 (dropped), neighbour 2 cos 0 (kept), self cos 1
    e = torch.exp(torch.tensor([0.0, 1.0], dtype=torch.float64))
    p = e / e.sum()
    assert alpha[0] == 0
    assert torch.allclose(out[0], p[0] * x[2] + p[1] * x[0])


def test_hand_worked_example():
    # node 0 receives from 1 (E=0.5) and itself (E=1): x0 = (1, 0), x1 = (1, 1)
    x = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    ei = torch.tensor([[1], [0]])
    conv = AffinityAttentionConv(w_init=2.0, beta=10.0).double()
    out = conv(x, ei, torch.tensor([0.5], dtype=torch.float64))
    c = 1 / 2**0.5
    l_self, l_nb = 2.0 * 1 + 10 * 1.0, 2.0 * c + 10 * 0.5
    p_nb = 1 / (1 + torch.exp(torch.tensor(l_self - l_nb, dtype=torch.float64)))
    assert torch.allclose(out[0], (1 - p_nb) * x[0] + p_nb * x[1])
    assert torch.allclose(out[1], x[1])  # isolated except its self-loop


def test_index_types_and_sparse_layouts():
    ei, ew = _graph(n=7, e=20, seed=2)
    x = torch.rand(7, 3, dtype=torch.float64)
    conv = AffinityAttentionConv().double()
    ref = conv(x, ei, ew)
    assert torch.allclose(conv(x, ei.int(), ew), ref)
    assert torch.allclose(conv(x, EdgeIndex(ei, sparse_size=(7, 7)), ew), ref)
    assert torch.allclose(conv(x, EdgeIndex(ei.int(), sparse_size=(7, 7)), ew), ref)
    adj_t = to_torch_coo_tensor(ei.flip(0), ew, size=(7, 7))
    assert torch.allclose(conv(x, adj_t), ref)
    out, (adj_att, vals) = conv(x, adj_t, return_attention_weights=True)
    assert adj_att.is_sparse and torch.allclose(torch.sparse.sum(adj_att, 1).to_dense(),
                                                torch.ones(7, dtype=torch.float64))
    adj_csr = to_torch_csr_tensor(ei.flip(0), ew, size=(7, 7))
    assert torch.allclose(conv(x, adj_csr), ref)
    if WITH_TORCH_SPARSE:  # pragma: no cover - optional dependency
        from torch_geometric.typing import SparseTensor

        st = SparseTensor(row=ei[1], col=ei[0], value=ew, sparse_sizes=(7, 7))
        assert torch.allclose(conv(x, st), ref)


def test_attention_rows_sum_to_one_and_dropout():
    ei, ew = _graph(n=7, e=20, seed=4)
    x = torch.rand(7, 3)
    conv = AffinityAttentionConv(dropout=0.5)
    conv.eval()
    _, (ei2, alpha) = conv(x, ei, ew.float(), return_attention_weights=True)
    sums = torch.zeros(7).index_add_(0, ei2[1], alpha)
    assert torch.allclose(sums, torch.ones(7), atol=1e-6)
    conv.train()
    _, (_, alpha_d) = conv(x, ei, ew.float(), return_attention_weights=True)
    assert ((alpha_d == 0) | torch.isclose(alpha_d, 2 * alpha, atol=1e-6)).all()


def test_empty_graph_and_isolated_nodes(device):
    conv = AffinityAttentionConv().to(device)
    x = torch.rand(4, 3, device=device)
    empty = torch.empty(2, 0, dtype=torch.long, device=device)
    assert torch.allclose(conv(x, empty), x)  # only self-loops: identity
    no_loops = AffinityAttentionConv(add_self_loops=False).to(device)
    assert torch.equal(no_loops(x, empty), torch.zeros_like(x))
    out = no_loops(torch.empty(0, 3, device=device), empty)
    assert out.shape == (0, 3)
    assert conv(torch.empty(0, 3, device=device), empty).shape == (0, 3)
    # isolated node 3 keeps its features; others mix
    ei = torch.tensor([[0, 1], [1, 2]], device=device)
    out = conv(x, ei)
    assert torch.allclose(out[3], x[3]) and torch.allclose(out[0], x[0])


def test_permutation_invariance():
    ei, ew = _graph(n=8, e=30, seed=5)
    x = torch.rand(8, 4, dtype=torch.float64)
    conv = AffinityAttentionConv().double()
    perm = torch.randperm(ei.size(1))
    assert torch.allclose(conv(x, ei, ew), conv(x, ei[:, perm], ew[perm]), atol=1e-12)


def test_per_graph_temperatures_match_single_graphs():
    ei1, ew1 = _graph(n=5, e=12, seed=6)
    ei2, ew2 = _graph(n=4, e=9, seed=7)
    x1, x2 = torch.randn(5, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    conv = AffinityAttentionConv(num_graphs=2).double()
    c1 = AffinityAttentionConv(w_init=float(conv.w[0])).double()
    c2 = AffinityAttentionConv(w_init=float(conv.w[1])).double()
    x = torch.cat([x1, x2])
    ei = torch.cat([ei1, ei2 + 5], 1)
    batch = torch.tensor([0] * 5 + [1] * 4)
    out = conv(x, ei, torch.cat([ew1, ew2]), batch=batch)
    assert torch.allclose(out[:5], c1(x1, ei1, ew1)) and torch.allclose(out[5:], c2(x2, ei2, ew2))
    with pytest.raises(ValueError, match="batch"):
        conv(x, ei)


def test_gradcheck():
    ei, ew = _graph(n=5, e=12, seed=8)
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    ew = ew.clone().requires_grad_()
    conv = AffinityAttentionConv(negative_cosine="none", beta=2.0).double()
    assert torch.autograd.gradcheck(lambda a, b: conv(a, ei, b), (x, ew))
    # gradient w.r.t. w
    conv(x, ei, ew).sum().backward()
    assert conv.w.grad is not None and torch.isfinite(conv.w.grad).all()


def test_save_load_roundtrip(tmp_path):
    conv = AffinityAttentionConv(beta=4.0, negative_cosine="mask")
    path = tmp_path / "conv.pt"
    torch.save(conv, path)
    loaded = torch.load(path, weights_only=False)
    buf = io.BytesIO()
    torch.save(conv.state_dict(), buf)
    buf.seek(0)
    fresh = AffinityAttentionConv(beta=4.0, negative_cosine="mask")
    fresh.load_state_dict(torch.load(buf))
    ei, ew = _graph(seed=9)
    x = torch.rand(7, 3)
    for other in (loaded, fresh):
        assert torch.allclose(conv(x, ei, ew.float()), other(x, ei, ew.float()))


def test_dynamo_no_graph_breaks():
    conv = AffinityAttentionConv()
    ei, ew = _graph(seed=10)
    x = torch.rand(7, 3)
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(conv)(x, ei, ew.float())
    assert explanation.graph_break_count == 0, explanation.break_reasons


def test_bad_inputs():
    with pytest.raises(ValueError, match="negative_cosine"):
        AffinityAttentionConv(negative_cosine="bad")
    with pytest.raises(ValueError, match="beta"):
        AffinityAttentionConv(beta=-1.0)
    with pytest.raises(ValueError, match="dropout"):
        AffinityAttentionConv(dropout=1.5)
    with pytest.raises(ValueError, match="num_graphs"):
        AffinityAttentionConv(num_graphs=0)
    conv = AffinityAttentionConv()
    x = torch.rand(3, 2)
    with pytest.raises(TypeError, match="edge_index"):
        conv(x, torch.zeros(2, 1))
    with pytest.raises(ValueError, match="edge_index"):
        conv(x, torch.zeros(3, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="edge_weight"):
        conv(x, torch.tensor([[0], [1]]), torch.ones(2))
    with pytest.raises(TypeError, match="'x'"):
        conv(torch.ones(3, 2, dtype=torch.long), torch.tensor([[0], [1]]))
    with pytest.raises(ValueError, match="'x'"):
        conv(torch.ones(3), torch.tensor([[0], [1]]))


@pytest.mark.parametrize("negative", ["indicator", "mask", "none"])
def test_fused_equals_gather_scatter_values_and_grads(negative):
    # random graph: unsorted, duplicate edges, existing self-loops, isolated nodes, int32
    torch.manual_seed(7)
    n = 40
    ei = torch.randint(0, n - 3, (2, 200))
    ei = torch.cat([ei, torch.tensor([[0, 5], [0, 5]])], 1).int()
    batch = (torch.arange(n) >= 20).long()
    e = torch.rand(ei.size(1), dtype=torch.float64)
    outs, grads = [], []
    for fused in (True, False):
        conv = AffinityAttentionConv(negative_cosine=negative, num_graphs=2, fused=fused).double()
        with torch.no_grad():
            conv.w.copy_(torch.tensor([0.3, 1.7]))
        x = torch.randn(n, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        x.requires_grad_()
        out, (ei_out, alpha) = conv(x, ei, e, batch=batch, return_attention_weights=True)
        (out.square().sum() + alpha.sum()).backward()
        outs.append((out, ei_out, alpha))
        grads.append((x.grad, conv.w.grad))
    for a, b in zip(outs[0], outs[1]):
        torch.testing.assert_close(a, b)
    for a, b in zip(grads[0], grads[1]):
        torch.testing.assert_close(a, b)


def test_message_hooks_take_the_propagate_path():
    # PyG hooks (e.g. AttentionExplainer's) see message(x_j, alpha) on the default layer
    ei, ew = _graph(n=7, e=20, seed=11)
    x = torch.rand(7, 3, dtype=torch.float64)
    conv = AffinityAttentionConv().double()
    assert conv._use_fused()
    ref = conv(x, ei, ew)
    seen = []
    handle = conv.register_message_forward_hook(
        lambda module, inputs, out: seen.append(inputs[0]["alpha"].shape)
    )
    try:
        assert not conv._use_fused()
        torch.testing.assert_close(conv(x, ei, ew), ref)
    finally:
        handle.remove()
    assert seen == [torch.Size([ei.size(1) + 7])] and conv._use_fused()


def test_bad_bipartite_inputs():
    conv = AffinityAttentionConv(add_self_loops=False)
    ei = torch.tensor([[0], [1]])
    with pytest.raises(ValueError, match="widths"):
        conv((torch.rand(3, 2), torch.rand(2, 4)), ei)
    with pytest.raises(TypeError, match="pair"):
        conv((torch.rand(3, 2),), ei)
    with pytest.raises(TypeError, match="pair"):
        conv((torch.rand(3, 2), None), ei)
    with pytest.raises(ValueError, match="num_dst, num_src"):
        conv(torch.rand(3, 2), torch.eye(4).to_sparse())
    with pytest.raises(TypeError, match="edge_index"):
        conv(torch.rand(3, 2), [[0], [1]])
