"""Edge weights (pyg_wsss.graphs.weights) against per-edge Python loops."""
import math

import pytest
import torch

from pyg_wsss.graphs import GAUSSIAN_PRESETS, feature_affinity, gaussian_edge_weight, pixel_graph


def _graph(h=5, w=6, r=2, device="cpu"):
    g = pixel_graph(h, w, r, shape="square", device=device)
    colour = torch.rand(g.num_nodes, 3, device=device)
    return g, colour


def _loop_gaussian(colour, pos, edge_index, s_rgb, s_xy):
    out = []
    for j, i in edge_index.t().tolist():
        d_rgb = sum((colour[i, k].item() - colour[j, k].item()) ** 2 for k in range(3))
        d_xy = sum((pos[i, k].item() - pos[j, k].item()) ** 2 for k in range(2))
        out.append(math.exp(-d_rgb / (2 * s_rgb**2) - d_xy / (2 * s_xy**2)))
    return torch.tensor(out, dtype=torch.float64)


def test_gaussian_matches_loop(device):
    g, colour = _graph(device=device)
    w = gaussian_edge_weight(colour, g.pos, g.edge_index, sigma_rgb=0.3, sigma_xy=2.0)
    ref = _loop_gaussian(colour.cpu(), g.pos.cpu(), g.edge_index.cpu(), 0.3, 2.0)
    assert w.shape == (g.edge_index.size(1),)
    torch.testing.assert_close(w.cpu().double(), ref, rtol=1e-5, atol=1e-7)


def test_gaussian_presets():
    g, colour = _graph()
    src, dst = g.edge_index
    d_rgb = (colour[dst] - colour[src]).pow(2).sum(-1)
    d_xy = (g.pos[dst] - g.pos[src]).pow(2).sum(-1)
    # WSGCN code: exp(-|drgb|^2 / 12 - |dxy|^2 / 20)  (NOTES.md 9)
    code = gaussian_edge_weight(colour, g.pos, g.edge_index, preset="wsgcn_code")
    torch.testing.assert_close(code, torch.exp(-d_rgb / 12 - d_xy / 20))
    # WSGCN paper (W 7): sigma1 = sqrt(3), sigma2 = 10 -> divisors 2*3 and 2*100
    paper = gaussian_edge_weight(colour, g.pos, g.edge_index, preset="wsgcn_paper")
    torch.testing.assert_close(paper, torch.exp(-d_rgb / 6 - d_xy / 200))
    for name, (s_rgb, s_xy) in GAUSSIAN_PRESETS.items():
        a = gaussian_edge_weight(colour, g.pos, g.edge_index, preset=name)
        b = gaussian_edge_weight(colour, g.pos, g.edge_index, sigma_rgb=s_rgb, sigma_xy=s_xy)
        torch.testing.assert_close(a, b)
        assert (a > 0).all() and (a <= 1).all()


def test_gaussian_bad_input():
    g, colour = _graph()
    ei = g.edge_index
    with pytest.raises(ValueError):  # neither sigmas nor preset
        gaussian_edge_weight(colour, g.pos, ei)
    with pytest.raises(ValueError):  # both
        gaussian_edge_weight(colour, g.pos, ei, sigma_rgb=1.0, sigma_xy=1.0, preset="a2gnn")
    with pytest.raises(ValueError):
        gaussian_edge_weight(colour, g.pos, ei, preset="nope")
    with pytest.raises(ValueError):
        gaussian_edge_weight(colour, g.pos, ei, sigma_rgb=-1.0, sigma_xy=1.0)
    with pytest.raises(ValueError):  # mismatched sizes
        gaussian_edge_weight(colour[:-1], g.pos, ei, preset="a2gnn")
    with pytest.raises(ValueError):  # edge index out of range
        gaussian_edge_weight(colour[:5], g.pos[:5], ei, preset="a2gnn")
    with pytest.raises(ValueError):
        gaussian_edge_weight(colour, g.pos, ei[:1], preset="a2gnn")
    bad = colour.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError):
        gaussian_edge_weight(bad, g.pos, ei, preset="a2gnn")
    with pytest.raises(TypeError):
        gaussian_edge_weight((colour * 255).long(), g.pos, ei, preset="a2gnn")
    with pytest.raises(TypeError):
        gaussian_edge_weight(colour.numpy(), g.pos, ei, preset="a2gnn")


def _loop_affinity(x, edge_index):
    d = x.size(1)
    out = []
    for j, i in edge_index.t().tolist():
        out.append(math.exp(-sum(abs(x[i, k].item() - x[j, k].item()) for k in range(d)) / d))
    return torch.tensor(out, dtype=torch.float64)


def test_feature_affinity_matches_loop(device):
    g, _ = _graph(device=device)
    x = torch.rand(g.num_nodes, 7, device=device, dtype=torch.float64) * 3
    w = feature_affinity(x, g.edge_index)
    torch.testing.assert_close(w.cpu(), _loop_affinity(x.cpu(), g.edge_index.cpu()))
    # chunking does not change the result
    torch.testing.assert_close(feature_affinity(x, g.edge_index, chunk_size=7), w)
    # int32 edge index
    torch.testing.assert_close(feature_affinity(x, g.edge_index.int()), w)


def test_feature_affinity_threshold():
    g, _ = _graph()
    x = torch.rand(g.num_nodes, 4, dtype=torch.float64) * 20
    w = feature_affinity(x, g.edge_index)
    thr = float(w.median())
    wt = feature_affinity(x, g.edge_index, threshold=thr)
    ref = torch.where(w >= thr, w, torch.zeros_like(w))
    torch.testing.assert_close(wt, ref)
    assert (wt == 0).any() and wt.shape == w.shape  # edges kept, weights zeroed
    # paper threshold 1e-3 on ordinary features changes nothing
    torch.testing.assert_close(feature_affinity(x / 20, g.edge_index, threshold=1e-3),
                               feature_affinity(x / 20, g.edge_index))


def test_feature_affinity_empty_and_gradcheck():
    x = torch.rand(4, 3, dtype=torch.float64)
    empty = torch.empty(2, 0, dtype=torch.long)
    assert feature_affinity(x, empty).shape == (0,)
    ei = torch.tensor([[0, 1, 2, 3, 0], [1, 0, 3, 2, 2]])
    xg = torch.rand(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: feature_affinity(t, ei), (xg,))
    assert torch.autograd.gradcheck(lambda t: feature_affinity(t, ei, threshold=0.2), (xg,))


def test_feature_affinity_bad_input():
    ei = torch.tensor([[0, 1], [1, 0]])
    x = torch.rand(2, 3)
    with pytest.raises(ValueError):  # mismatched sizes: index 2 with 2 nodes
        feature_affinity(x, torch.tensor([[0, 2], [2, 0]]))
    with pytest.raises(ValueError):
        feature_affinity(x[0], ei)
    with pytest.raises(TypeError):
        feature_affinity(torch.ones(2, 3, dtype=torch.long), ei)
    with pytest.raises(ValueError):
        feature_affinity(x, ei, threshold=1.0)
    with pytest.raises(ValueError):
        feature_affinity(x, ei, threshold=-0.1)
    with pytest.raises(TypeError):
        feature_affinity(x, ei.float())
    with pytest.raises(ValueError):
        feature_affinity(torch.tensor([[0.0, float("inf"), 1.0], [0, 0, 0]]), ei)


def test_gaussian_unsquared_is_a13_as_printed():
    # A 13 printed: exp(-||dp||_2 / (2 s_xy^2) - ||dc||_2 / (2 s_rgb^2)), by hand on one edge
    colour = torch.tensor([[0.0, 0.0, 0.0], [0.3, 0.4, 0.0]])
    pos = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    ei = torch.tensor([[0], [1]])
    w = gaussian_edge_weight(colour, pos, ei, sigma_rgb=0.5, sigma_xy=2.0, squared=False)
    torch.testing.assert_close(w, torch.tensor([math.exp(-5 / 8 - 0.5 / 0.5)]))
    sq = gaussian_edge_weight(colour, pos, ei, sigma_rgb=0.5, sigma_xy=2.0)
    torch.testing.assert_close(sq, torch.tensor([math.exp(-25 / 8 - 0.25 / 0.5)]))
    with pytest.raises(TypeError, match="squared"):
        gaussian_edge_weight(colour, pos, ei, sigma_rgb=0.5, sigma_xy=2.0, squared="no")
