import pytest
import torch

from pyg_wsss.graphs import feature_affinity
from pyg_wsss.nn.models import AffinityNet, SmallCNN


def _pyramid(b=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(b, 8, 8, 10, generator=g), torch.rand(b, 16, 4, 5, generator=g),
            torch.rand(b, 32, 4, 5, generator=g)]


def test_head_shapes_and_resizing():
    net = AffinityNet(in_channels=(8, 16, 32))
    fa = net(_pyramid(2))
    assert fa.shape == (2, 448, 8, 10)
    assert [c.out_channels for c in net.reduce] == [64, 128, 256]
    assert net.mix.in_channels == 448 and net.mix.out_channels == 448
    assert (fa >= -1).all()  # ELU
    assert "AffinityNet(in_channels=(8, 16, 32)" in str(net)


def test_with_backbone_and_full_pyramid():
    torch.manual_seed(0)
    backbone = SmallCNN(widths=(4, 8, 8, 16))
    net = AffinityNet(backbone)
    assert net.in_channels == (8, 8, 16)
    img = torch.rand(1, 3, 32, 40)
    fa = net(img)
    assert fa.shape == (1, 448, 8, 10)  # finest picked level: stride 4
    feats = backbone.eval()(img)
    assert torch.allclose(net(feats), fa, atol=1e-5)  # full pyramid -> picks levels
    assert not any(p.grad is not None for p in backbone.parameters())


def test_build_graph():
    net = AffinityNet(in_channels=(8, 16, 32))
    pyr = _pyramid(1, 1)
    imgs = torch.rand(1, 3, 32, 40)
    (g,) = net.build_graph(pyr, radius=2, shape="square", images=imgs)
    assert g.x.shape == (80, 56) and torch.allclose(g.x.sum(1), torch.ones(80))  # A 15
    assert tuple(g.grid_size) == (8, 10) and g.colour.shape == (80, 3)
    assert (g.edge_index[0] != g.edge_index[1]).all()
    assert g.edge_index.size(1) == g.edge_weight.numel()
    assert torch.allclose(g.edge_weight, feature_affinity(g.aff, g.edge_index))
    assert (g.edge_weight > 0).all() and (g.edge_weight <= 1).all()
    # square window radius 2: interior node has 24 neighbours
    assert (g.edge_index[1] == 4 * 10 + 5).sum() == 24
    (gt,) = net.build_graph(pyr, radius=2, threshold=0.999)
    assert ((gt.edge_weight == 0) | (gt.edge_weight >= 0.999)).all()


def test_training_step_reduces_loss():
    from pyg_wsss.graphs import pixel_graph
    from pyg_wsss.nn.functional import affinity_loss

    torch.manual_seed(0)
    net = AffinityNet(in_channels=(8, 16, 32), reduce_channels=(8, 8, 8))
    pyr = _pyramid(1, 2)
    g = pixel_graph(8, 10, 2, shape="square")
    labels = torch.full((80,), 255)
    labels[:30] = 0
    labels[50:] = 1
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    losses = []
    for _ in range(15):
        fa = net(pyr)[0].flatten(1).t()
        loss = affinity_loss(feature_affinity(fa, g.edge_index), g.edge_index, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_bad_inputs():
    with pytest.raises(ValueError, match="in_channels"):
        AffinityNet()
    with pytest.raises(ValueError, match="levels"):
        AffinityNet(in_channels=(1, 2), levels=(0, 1), reduce_channels=(4,))
    net = AffinityNet(in_channels=(8, 16, 32))
    with pytest.raises(ValueError, match="channels"):
        net([torch.rand(1, 9, 4, 4), torch.rand(1, 16, 4, 4), torch.rand(1, 32, 4, 4)])
    with pytest.raises(ValueError, match="backbone"):
        net(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="levels"):
        AffinityNet(SmallCNN(), levels=(0, 9, 1))
