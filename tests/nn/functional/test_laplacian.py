import math

import pytest
import torch
from torch_geometric.utils import get_laplacian, to_dense_adj

from pyg_wsss.graphs import gaussian_edge_weight, pixel_graph
from pyg_wsss.nn.functional import laplacian_loss
from pyg_wsss.nn.functional.laplacian import laplacian_matrix, laplacian_quadratic_form


def _sym_graph(n=7, e=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, n, (e,), generator=g)
    dst = torch.randint(0, n, (e,), generator=g)
    w = torch.rand(e, generator=g, dtype=torch.float64)
    ei = torch.cat([torch.stack([src, dst]), torch.stack([dst, src])], 1)
    return ei, torch.cat([w, w])


def test_hand_worked(device):
    # two nodes joined both ways with weight w: 1/(2N) * 2 * w * ||y0 - y1||^2 = w
    ei = torch.tensor([[0, 1], [1, 0]], device=device)
    w = torch.tensor([0.3, 0.3], device=device)
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]], device=device)
    for method in ("edges", "spmm"):
        assert laplacian_loss(y, ei, w, method=method).item() == pytest.approx(0.3, rel=1e-6)
    # a third, isolated node only changes the normaliser N
    y3 = torch.cat([y, torch.tensor([[5.0, 5.0]], device=device)])
    assert laplacian_loss(y3, ei, w).item() == pytest.approx(0.2, rel=1e-6)


def test_trace_identity_and_pyg_laplacian():
    """NOTES.md check 4: tr(Y^T (D - Phi) Y) / N = 1/(2N) sum_ij Phi_ij |y_i - y_j|^2, and
    PyG's get_laplacian(normalization=None) gives D - Phi."""
    n = 7
    ei, w = _sym_graph(n)
    y = torch.randn(n, 3, dtype=torch.float64)
    phi = to_dense_adj(ei, edge_attr=w, max_num_nodes=n)[0]
    lap_dense = torch.diag(phi.sum(1)) - phi
    want = torch.trace(y.t() @ lap_dense @ y) / n
    pairwise = (phi * torch.cdist(y, y).pow(2)).sum() / (2 * n)
    assert torch.allclose(want, pairwise)
    lei, lw = get_laplacian(ei, w, normalization=None, num_nodes=n)
    assert torch.allclose(to_dense_adj(lei, edge_attr=lw, max_num_nodes=n)[0], lap_dense)
    for method in ("edges", "spmm"):
        assert torch.allclose(laplacian_loss(y, ei, w, method=method), want)
    assert torch.allclose(laplacian_matrix(ei, w, n).to_dense(), lap_dense)
    # self-loops cancel
    loops = torch.arange(n).repeat(2, 1)
    ei2 = torch.cat([ei, loops], 1)
    w2 = torch.cat([w, torch.rand(n, dtype=torch.float64)])
    assert torch.allclose(laplacian_loss(y, ei2, w2), want)


def test_asymmetric_edge_list_uses_symmetrised_weights():
    ei = torch.tensor([[0, 1, 2], [1, 2, 0]])
    w = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    y = torch.randn(3, 2, dtype=torch.float64)
    a = laplacian_loss(y, ei, w, method="edges")
    b = laplacian_loss(y, ei, w, method="spmm")
    want = sum(wi * (y[d] - y[s]).pow(2).sum() for (s, d), wi in zip(ei.t().tolist(), w)) / 6
    assert torch.allclose(a, want) and torch.allclose(b, want)


def test_variants():
    ei, w = _sym_graph(6, 10)
    x = torch.randn(6, 4, dtype=torch.float64)
    assert torch.allclose(
        laplacian_loss(x, ei, w, variant="paper"), laplacian_loss(x.softmax(-1), ei, w)
    )
    assert torch.allclose(
        laplacian_loss(x, ei, w, variant="code"), laplacian_loss(x.log_softmax(-1), ei, w)
    )
    assert not torch.allclose(
        laplacian_loss(x, ei, w, variant="paper"), laplacian_loss(x, ei, w, variant="code")
    )


@pytest.mark.parametrize("preset", ["wsgcn_paper", "wsgcn_code"])
def test_wsgcn_window_weights(preset):
    """W 7 on the 5x5 window: the loss equals the dense double sum with Phi."""
    h, w = 4, 5
    g = pixel_graph(h, w, 2, shape="square")
    colour = torch.rand(h * w, 3, dtype=torch.float64)
    phi_e = gaussian_edge_weight(colour, g.pos.double(), g.edge_index, preset=preset)
    sigma_rgb, sigma_xy = {
        "wsgcn_paper": (math.sqrt(3), 10.0),
        "wsgcn_code": (math.sqrt(6), math.sqrt(10)),
    }[preset]
    pos = g.pos.double()
    dense = torch.exp(
        -torch.cdist(colour, colour).pow(2) / (2 * sigma_rgb**2)
        - torch.cdist(pos, pos).pow(2) / (2 * sigma_xy**2)
    )
    window = (pos[:, None] - pos[None]).abs().amax(-1) <= 2
    dense = dense * window
    y = torch.randn(h * w, 3, dtype=torch.float64).softmax(-1)
    want = (dense * torch.cdist(y, y).pow(2)).sum() / (2 * h * w)
    assert torch.allclose(laplacian_loss(y, g.edge_index, phi_e), want)


def test_batch(device):
    ei1, w1 = _sym_graph(5, 8, seed=1)
    ei2, w2 = _sym_graph(4, 6, seed=2)
    y = torch.randn(9, 3, dtype=torch.float64, device=device)
    ei = torch.cat([ei1, ei2 + 5], 1).to(device)
    w = torch.cat([w1, w2]).to(device)
    batch = torch.tensor([0] * 5 + [1] * 4, device=device)
    for method in ("edges", "spmm"):
        per = laplacian_loss(y, ei, w, batch=batch, reduction="none", method=method)
        want = torch.stack(
            [
                laplacian_loss(y[:5], ei1.to(device), w1.to(device)),
                laplacian_loss(y[5:], ei2.to(device), w2.to(device)),
            ]
        )
        assert torch.allclose(per, want)


def test_empty_graph():
    y = torch.randn(3, 2, requires_grad=True)
    ei = torch.empty(2, 0, dtype=torch.long)
    for method in ("edges", "spmm"):
        loss = laplacian_loss(y, ei, method=method)
        assert loss.item() == 0.0
        loss.backward()
    y0 = torch.zeros(0, 2)
    assert laplacian_loss(y0, ei).item() == 0.0


@pytest.mark.parametrize("method", ["edges", "spmm"])
def test_gradcheck(method):
    ei, w = _sym_graph(5, 7)
    y = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda t: laplacian_loss(t, ei, w, variant="paper", method=method), (y,)
    )


def test_int32_edges():
    ei, w = _sym_graph(5, 7)
    y = torch.randn(5, 2, dtype=torch.float64)
    assert torch.allclose(laplacian_loss(y, ei.int(), w), laplacian_loss(y, ei, w))


def test_bad_input():
    y = torch.randn(3, 2)
    ei = torch.tensor([[0, 1], [1, 0]])
    with pytest.raises(ValueError):
        laplacian_loss(torch.randn(3), ei)
    with pytest.raises(ValueError):
        laplacian_loss(y, torch.tensor([[0, 5], [1, 0]]))
    with pytest.raises(ValueError):
        laplacian_loss(y, ei, torch.ones(3))
    with pytest.raises(TypeError):
        laplacian_loss(y, ei.float())
    with pytest.raises(ValueError):
        laplacian_loss(y, ei, variant="probs")
    with pytest.raises(ValueError):
        laplacian_loss(y, ei, method="dense")
    with pytest.raises(ValueError):
        laplacian_loss(y, ei, num_nodes=5)


def test_quadratic_form_one_spmm_backward_equals_autograd():
    # per-graph tr(Y_b^T L Y_b) on a batch of two graphs: value and gradient against the
    # plain autograd expression sum(Y * (L_dense Y)) per graph, and gradcheck
    ei1, w1 = _sym_graph(5, 8, seed=3)
    ei2, w2 = _sym_graph(4, 6, seed=4)
    ei = torch.cat([ei1, ei2 + 5], 1)
    w = torch.cat([w1, w2])
    batch = torch.tensor([0] * 5 + [1] * 4)
    lap = laplacian_matrix(ei, w, 9)
    dense = lap.to_dense()
    y = torch.randn(9, 3, dtype=torch.float64, requires_grad=True)
    scale = torch.tensor([0.3, -1.7], dtype=torch.float64)
    got = laplacian_quadratic_form(lap, y, batch, 2)
    per_node = (y * (dense @ y)).sum(-1)
    want = torch.zeros(2, dtype=torch.float64).index_add(0, batch, per_node)
    assert torch.allclose(got, want)
    (g1,) = torch.autograd.grad((got * scale).sum(), y)
    (g2,) = torch.autograd.grad((want * scale).sum(), y)
    assert torch.allclose(g1, g2)
    assert torch.autograd.gradcheck(lambda t: laplacian_quadratic_form(lap, t, batch, 2), (y,))
    with pytest.raises(ValueError, match="lap"):
        laplacian_quadratic_form(dense, y, batch, 2)
    with pytest.raises(ValueError, match="lap"):
        laplacian_quadratic_form(lap, y[:4], batch[:4], 2)
