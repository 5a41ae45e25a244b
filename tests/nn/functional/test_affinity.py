import pytest
import torch

from pyg_wsss.graphs import feature_affinity, pixel_graph
from pyg_wsss.nn.functional import affinity_loss, affinity_regularized_loss
from pyg_wsss.nn.functional.gated_crf import gated_crf_kernel


def test_hand_worked_affinity_loss():
    # nodes: 0 bg, 1 bg, 2 fg(1), 3 fg(1), 4 fg(2), 5 unlabelled
    labels = torch.tensor([0, 0, 1, 1, 2, 255])
    ei = torch.tensor([[1, 3, 2, 4, 5], [0, 2, 4, 3, 0]])
    aff = torch.tensor([0.9, 0.8, 0.3, 0.2, 0.5], dtype=torch.float64)
    eps = 1e-5
    bg = -torch.log(torch.tensor(0.9 + eps, dtype=torch.float64)) / (1 + eps)
    fg = -torch.log(torch.tensor(0.8 + eps, dtype=torch.float64)) / (1 + eps)
    neg = -(torch.log(torch.tensor(1 + eps - 0.3, dtype=torch.float64))
            + torch.log(torch.tensor(1 + eps - 0.2, dtype=torch.float64))) / (2 + eps)
    assert torch.allclose(affinity_loss(aff, ei, labels), bg / 4 + fg / 4 + neg / 2)
    pos = -(torch.log(torch.tensor(0.9 + eps, dtype=torch.float64))
            + torch.log(torch.tensor(0.8 + eps, dtype=torch.float64))) / (2 + eps)
    assert torch.allclose(affinity_loss(aff, ei, labels, variant="paper"), pos + neg)


def test_affinity_loss_empty_sets_and_gradcheck():
    labels = torch.full((4,), 255)
    ei = torch.tensor([[0, 1], [1, 2]])
    assert affinity_loss(torch.tensor([0.5, 0.5]), ei, labels) == 0
    x = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    graph = pixel_graph(2, 3, 1, shape="square")
    lab = torch.tensor([0, 0, 1, 1, 2, 255])
    def f(z):
        return affinity_loss(feature_affinity(z, graph.edge_index), graph.edge_index, lab)
    assert torch.autograd.gradcheck(f, (x,))


def test_regularized_loss_reference_and_gradcheck():
    graph = pixel_graph(3, 4, 2, shape="square", self_loops=True)
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(12, 5, generator=g, dtype=torch.float64, requires_grad=True)
    colour = torch.rand(12, 3, generator=g, dtype=torch.float64)
    kern = gated_crf_kernel(colour, graph.pos.double(), graph.edge_index)
    out = affinity_regularized_loss(feats, graph.edge_index, kern)
    src, dst = graph.edge_index
    ref = 0.0
    count = 0
    for s, t, k in zip(src.tolist(), dst.tolist(), kern.tolist()):
        if s == t:
            continue
        count += 1
        ref += k * (feats[t] - feats[s]).abs().sum().item() / 5
    assert abs(out.item() - ref / count) < 1e-10
    total = affinity_regularized_loss(feats, graph.edge_index, kern, normalization="none")
    assert abs(total.item() - ref) < 1e-10
    assert torch.autograd.gradcheck(
        lambda z: affinity_regularized_loss(z, graph.edge_index, kern), (feats,)
    )


def test_bad_inputs():
    ei = torch.tensor([[0], [1]])
    with pytest.raises(ValueError, match="affinity"):
        affinity_loss(torch.tensor([1.5]), ei, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="variant"):
        affinity_loss(torch.tensor([0.5]), ei, torch.tensor([0, 1]), variant="x")
    with pytest.raises(TypeError, match="labels"):
        affinity_loss(torch.tensor([0.5]), ei, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="edge_index"):
        affinity_loss(torch.tensor([0.5]), torch.tensor([[0], [5]]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="kernel"):
        affinity_regularized_loss(torch.randn(2, 3), ei, torch.ones(2))
    with pytest.raises(ValueError, match="normalization"):
        affinity_regularized_loss(torch.randn(2, 3), ei, torch.ones(1), normalization="x")
    with pytest.raises(ValueError, match="NaN"):
        affinity_regularized_loss(torch.full((2, 3), float("nan")), ei, torch.ones(1))
