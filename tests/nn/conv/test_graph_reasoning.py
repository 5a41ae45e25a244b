import io

import pytest
import torch
from torch_geometric.nn import DenseGCNConv, GCNConv

from pyg_wsss.nn.conv import GraphReasoningMapping
from pyg_wsss.nn.conv.graph_reasoning import add_identity_norm, relation_to_edge_index

C, K, D = 5, 6, 8


def _relation(c=C, symmetric=True):
    e = torch.rand(c, c)
    e = (e + e.t()) / 2 if symmetric else e
    e.fill_diagonal_(0.7)  # a large diagonal, as ConceptNet's: must be kept, not replaced
    return e


def _dense_ref(relation):
    a = relation + torch.eye(relation.size(0))
    d = a.sum(-1).pow(-0.5)
    return d[:, None] * a * d[None, :]


@pytest.mark.parametrize("symmetric", [True, False])
def test_normalisation_equals_dense(symmetric):
    e = _relation(symmetric=symmetric)
    ei, ew = relation_to_edge_index(e)
    ei, w = add_identity_norm(ei, ew, C)
    dense = torch.zeros(C, C).index_put_((ei[1], ei[0]), w, accumulate=True)  # [target, source]
    torch.testing.assert_close(dense, _dense_ref(e))


def test_notes_check3_dense_gcn_conv():
    """NOTES.md check 3: reason() == DenseGCNConv(add_loop=False) on E + I (two layers, ReLU),
    and != DenseGCNConv(add_loop=True) on E (which replaces the diagonal)."""
    e = _relation()
    grm = GraphReasoningMapping(D, K, hidden_channels=7, dropout=0.0)
    v = torch.randn(C, K)
    ei, ew = relation_to_edge_index(e)
    ours = grm.reason(v, ei, ew)
    c1, c2 = DenseGCNConv(K, 7, bias=False), DenseGCNConv(7, D, bias=False)
    c1.lin.weight.data.copy_(grm.lin1.weight)
    c2.lin.weight.data.copy_(grm.lin2.weight)
    eye = torch.eye(C)
    ref = torch.relu(c2(torch.relu(c1(v, e + eye, add_loop=False)), e + eye, add_loop=False))[0]
    torch.testing.assert_close(ours, ref)
    wrong = torch.relu(c2(torch.relu(c1(v, e, add_loop=True)), e, add_loop=True))[0]
    assert not torch.allclose(ours, wrong, atol=1e-4)
    # and GCNConv(normalize=False) fed the normalised weights
    g1 = GCNConv(K, 7, normalize=False, add_self_loops=False, bias=False)
    g1.lin.weight.data.copy_(grm.lin1.weight)
    nei, nw = add_identity_norm(ei, ew, C)
    torch.testing.assert_close(
        torch.relu(g1(v, nei, nw)), torch.relu(c1(v, e + eye, add_loop=False))[0]
    )


def test_shapes_and_residual(device):
    grm = GraphReasoningMapping(D, K).to(device).eval()
    x = torch.randn(2, D, 3, 4, device=device)
    ei, ew = relation_to_edge_index(_relation().to(device))
    out, h = grm(x, torch.randn(C, K, device=device), ei, ew, return_mapping=True)
    assert out.shape == x.shape and h.shape == (2, C, 12)
    torch.testing.assert_close(h.sum(-1), torch.ones(2, C, device=device))  # softmax over pixels
    assert (out - x >= -1e-6).all()  # X' = ReLU(.) + X


def test_manual_forward():
    grm = GraphReasoningMapping(D, K, score="bilinear", dropout=0.0).eval()
    x, v = torch.randn(1, D, 2, 3), torch.randn(C, K)
    ei, ew = relation_to_edge_index(_relation())
    vp = grm.reason(v, ei, ew)  # [C, D]
    xf = x.flatten(2)[0].t()  # [HW, D]
    s = xf @ grm.score_weight @ vp.t() / D**0.5  # [HW, C]
    h = torch.softmax(s, dim=0).t()  # [C, HW], softmax over pixels
    ref = torch.relu(h.t() @ vp) + xf
    torch.testing.assert_close(grm(x, v, ei, ew)[0].flatten(1).t(), ref)


def test_linear_score_is_class_independent():
    grm = GraphReasoningMapping(D, K, score="linear").eval()
    ei, ew = relation_to_edge_index(_relation())
    _, h = grm(torch.randn(2, D, 4, 4), torch.randn(C, K), ei, ew, return_mapping=True)
    torch.testing.assert_close(h, h[:, :1].expand_as(h))  # all class columns equal (NOTES 4.3)


@pytest.mark.parametrize("score", ["bilinear", "mlp"])
def test_default_scores_are_class_dependent(score):
    grm = GraphReasoningMapping(D, K, score=score).eval()
    ei, ew = relation_to_edge_index(_relation())
    _, h = grm(torch.randn(2, D, 4, 4), torch.randn(C, K), ei, ew, return_mapping=True)
    assert (h - h[:, :1]).abs().max() > 1e-3


def test_default_is_class_dependent():
    assert GraphReasoningMapping(D, K).score == "bilinear"


def test_normalize_over_classes():
    grm = GraphReasoningMapping(D, K, normalize_over="classes").eval()
    _, h = grm(
        torch.randn(1, D, 3, 3),
        torch.randn(C, K),
        torch.empty(2, 0, dtype=torch.long),
        return_mapping=True,
    )
    torch.testing.assert_close(h.sum(1), torch.ones(1, 9))


@pytest.mark.parametrize("score", ["linear", "bilinear", "mlp"])
def test_gradients_reach_gcn_weights(score):
    grm = GraphReasoningMapping(D, K, score=score)
    ei, ew = relation_to_edge_index(_relation())
    grm(torch.randn(2, D, 3, 3), torch.randn(C, K), ei, ew).square().sum().backward()
    for name, p in grm.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_frozen_gcn_like_code():
    grm = GraphReasoningMapping(D, K, train_gcn=False)
    assert not grm.lin1.weight.requires_grad and not grm.lin2.weight.requires_grad


def test_dropout_in_eval_like_code():
    ei, ew = relation_to_edge_index(_relation())
    v = torch.randn(C, K)
    grm = GraphReasoningMapping(D, K, dropout=0.5, dropout_in_eval=True).eval()
    assert not torch.equal(grm.reason(v, ei, ew), grm.reason(v, ei, ew))
    grm = GraphReasoningMapping(D, K, dropout=0.5).eval()
    assert torch.equal(grm.reason(v, ei, ew), grm.reason(v, ei, ew))


def test_any_number_of_classes_and_int32_and_empty_graph():
    grm = GraphReasoningMapping(D, K).eval()
    x = torch.randn(1, D, 2, 2)
    for c in (1, 3, 21):
        ei, ew = relation_to_edge_index(_relation(c))
        assert grm(x, torch.randn(c, K), ei.int(), ew).shape == x.shape
    out = grm(x, torch.randn(4, K), torch.empty(2, 0, dtype=torch.long))
    assert torch.isfinite(out).all()


def test_edge_order_invariance():
    grm = GraphReasoningMapping(D, K).eval()
    x, v = torch.randn(1, D, 3, 3), torch.randn(C, K)
    ei, ew = relation_to_edge_index(_relation())
    perm = torch.randperm(ei.size(1))
    torch.testing.assert_close(grm(x, v, ei, ew), grm(x, v, ei[:, perm], ew[perm]))


def test_gradcheck_float64():
    grm = GraphReasoningMapping(
        3, 2, hidden_channels=3, score="mlp", mlp_channels=3, dropout=0.0
    ).double()
    ei, ew = relation_to_edge_index(_relation(3).double())
    x = torch.randn(1, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    v = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: grm(a, b, ei, ew), (x, v))


def test_save_load_and_repr():
    grm = GraphReasoningMapping(D, K, score="mlp").eval()
    ei, ew = relation_to_edge_index(_relation())
    x, v = torch.randn(1, D, 3, 3), torch.randn(C, K)
    buf = io.BytesIO()
    torch.save(grm.state_dict(), buf)
    buf.seek(0)
    other = GraphReasoningMapping(D, K, score="mlp").eval()
    other.load_state_dict(torch.load(buf))
    torch.testing.assert_close(grm(x, v, ei, ew), other(x, v, ei, ew))
    buf = io.BytesIO()
    torch.save(grm, buf)
    buf.seek(0)
    torch.testing.assert_close(grm(x, v, ei, ew), torch.load(buf, weights_only=False)(x, v, ei, ew))
    assert str(grm) == (
        "GraphReasoningMapping(8, node_channels=6, hidden_channels=8, score='mlp', "
        "normalize_over='pixels')"
    )


def test_reset_parameters():
    grm = GraphReasoningMapping(D, K)
    before = grm.score_weight.clone()
    grm.reset_parameters()
    assert not torch.equal(before, grm.score_weight)


def test_bad_input():
    with pytest.raises(ValueError, match="score"):
        GraphReasoningMapping(D, K, score="dot")
    with pytest.raises(ValueError, match="in_channels"):
        GraphReasoningMapping(0, K)
    grm = GraphReasoningMapping(D, K)
    ei, ew = relation_to_edge_index(_relation())
    v = torch.randn(C, K)
    with pytest.raises(ValueError, match="'x'"):
        grm(torch.randn(D, 3, 3), v, ei, ew)
    with pytest.raises(ValueError, match="channels"):
        grm(torch.randn(1, D + 1, 3, 3), v, ei, ew)
    with pytest.raises(ValueError, match="node_features"):
        grm(torch.randn(1, D, 3, 3), torch.randn(C, K + 1), ei, ew)
    with pytest.raises(ValueError, match="edge_index"):
        grm(torch.randn(1, D, 3, 3), v, ei + C, ew)
    with pytest.raises(ValueError, match="edge_weight"):
        grm(torch.randn(1, D, 3, 3), v, ei, -ew)
    with pytest.raises(ValueError, match="NaN"):
        grm(torch.full((1, D, 3, 3), float("nan")), v, ei, ew)
    with pytest.raises(ValueError, match="square"):
        relation_to_edge_index(torch.rand(3, 4))
    with pytest.raises(TypeError, match="edge_index"):
        grm(torch.randn(1, D, 3, 3), v, ei.tolist(), ew)
    with pytest.raises(ValueError, match="one class graph"):
        grm((torch.randn(1, D, 3, 3), torch.randn(1, D, 3, 3)), v, ei, ew)
    with pytest.raises(ValueError, match="one class graph"):
        grm(torch.randn(1, D, 3, 3), (v, v), ei, ew)
    with pytest.raises(ValueError, match="class adjacency"):
        grm(torch.randn(1, D, 3, 3), v, torch.eye(C + 1).to_sparse())


def test_no_graph_breaks():
    grm = GraphReasoningMapping(D, K).eval()
    ei, ew = relation_to_edge_index(_relation())
    explain = torch._dynamo.explain(grm)(torch.randn(1, D, 3, 3), torch.randn(C, K), ei, ew)
    assert explain.graph_break_count == 0, explain.break_reasons
