import pytest
import torch

from pyg_wsss.nn.models import A2GNN
from pyg_wsss.nn.models.a2gnn import dropout_masks


def _graph(n, e, seed):
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, e), generator=g)
    return torch.rand(n, 6, generator=g), ei, torch.rand(e, generator=g)


def test_shapes_repr_and_structure():
    model = A2GNN(6, 4, hidden_channels=8)
    x, ei, ew = _graph(10, 30, 0)
    logits, h = model(x, ei, ew)
    assert logits.shape == (10, 4) and h.shape == (10, 8)
    assert str(model) == "A2GNN(6, 4, hidden_channels=8, num_layers=3, num_graphs=1)"
    assert len(model.convs) == 3 and model.convs[0].beta == 10.0
    assert (h >= 0).all()  # ReLU embedding + convex attention: non-negative features
    # no bias anywhere: zero input gives zero logits
    model.eval()
    assert torch.all(model(torch.zeros(10, 6), ei, ew)[0] == 0)


def test_matches_manual_forward():
    model = A2GNN(6, 3, hidden_channels=5, dropout=0.0).double()
    x, ei, ew = _graph(8, 20, 1)
    x, ew = x.double(), ew.double()
    h = torch.relu(x @ model.lin_in[0])
    for conv in model.convs:
        h = conv(h, ei, ew)
    logits, feats = model(x, ei, ew)
    assert torch.allclose(feats, h) and torch.allclose(logits, h @ model.lin_out[0])


def test_per_graph_models_equal_single_models():
    seeds = [3, 11]
    batched = A2GNN(6, 4, hidden_channels=8, num_graphs=2, seeds=seeds).double()
    singles = [A2GNN(6, 4, hidden_channels=8, seeds=[s]).double() for s in seeds]
    for b, single in enumerate(singles):
        assert torch.equal(batched.lin_in[b], single.lin_in[0])
        assert torch.equal(batched.lin_out[b], single.lin_out[0])
        for cb, cs in zip(batched.convs, single.convs):
            assert cb.w[b] == cs.w[0]
    x1, e1, w1 = _graph(7, 20, 2)
    x2, e2, w2 = _graph(5, 12, 3)
    x = torch.cat([x1, x2]).double()
    ei = torch.cat([e1, e2 + 7], 1)
    ew = torch.cat([w1, w2]).double()
    batch = torch.tensor([0] * 7 + [1] * 5)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    mask = dropout_masks([7, 5], 8, 0.5, gens, dtype=torch.float64)
    out, h = batched(x, ei, ew, batch=batch, dropout_mask=mask)
    o1, _ = singles[0](x1.double(), e1, w1.double(), dropout_mask=mask[:7])
    o2, _ = singles[1](x2.double(), e2, w2.double(), dropout_mask=mask[7:])
    assert torch.allclose(out, torch.cat([o1, o2]), atol=1e-12)
    # gradients of the summed loss are the single-model gradients
    (out.sum()).backward()
    (o1.sum() + o2.sum()).backward()
    assert torch.allclose(batched.lin_in.grad[0], singles[0].lin_in.grad[0])
    assert torch.allclose(batched.convs[1].w.grad[1], singles[1].convs[1].w.grad[0])


def test_dropout_masks_are_per_graph():
    g1 = [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)]
    g2 = [torch.Generator().manual_seed(2)]
    m = dropout_masks([3, 4], 5, 0.5, g1)
    assert torch.equal(m[3:], dropout_masks([4], 5, 0.5, g2))
    assert set(m.unique().tolist()) <= {0.0, 2.0}


def test_save_load_and_train_eval(tmp_path):
    model = A2GNN(6, 3, hidden_channels=8)
    x, ei, ew = _graph(9, 25, 4)
    torch.save(model.state_dict(), tmp_path / "m.pt")
    other = A2GNN(6, 3, hidden_channels=8)
    other.load_state_dict(torch.load(tmp_path / "m.pt"))
    model.eval()
    other.eval()
    assert torch.allclose(model(x, ei, ew)[0], other(x, ei, ew)[0])
    model.train()
    torch.manual_seed(0)
    a = model(x, ei, ew)[0]
    torch.manual_seed(1)
    b = model(x, ei, ew)[0]
    assert not torch.allclose(a, b)  # dropout active in training


def test_bad_inputs():
    with pytest.raises(ValueError, match="hidden_channels"):
        A2GNN(4, 2, hidden_channels=0)
    with pytest.raises(ValueError, match="dropout"):
        A2GNN(4, 2, dropout=2.0)
    with pytest.raises(ValueError, match="seeds"):
        A2GNN(4, 2, num_graphs=2, seeds=[1])
    model = A2GNN(6, 3, hidden_channels=4, num_graphs=2)
    x, ei, ew = _graph(6, 10, 5)
    with pytest.raises(ValueError, match="batch"):
        model(x, ei, ew)
    with pytest.raises(ValueError, match="sorted"):
        model(x, ei, ew, batch=torch.tensor([1, 0, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="channels"):
        A2GNN(5, 3)(x, ei, ew)
