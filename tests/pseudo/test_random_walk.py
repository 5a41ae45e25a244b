import numpy as np
import pytest
import torch
from torch_geometric.nn import MessagePassing

from pyg_wsss.graphs.pixel import pixel_graph
from pyg_wsss.graphs.weights import feature_affinity
from pyg_wsss.pseudo.walk import (
    random_walk,
    random_walk_dense,
    random_walk_from_image,
    random_walk_propagate,
    transition_matrix,
)


def _graph(h=6, w=7, radius=3, device="cpu", seed=0):
    g = pixel_graph(h, w, radius, shape="disc", device=device)
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(h * w, 4, generator=gen).to(device)
    return g, feature_affinity(x, g.edge_index)  # symmetric affinities in (0, 1]


def _brute_transition(edge_index, weight, n, beta, self_loops=True):
    """Loops over edges: A (diagonal 1), A^beta, column-normalise (PSA)."""
    a = np.zeros((n, n))
    for (i, j), wij in zip(edge_index.t().tolist(), weight.tolist()):
        if self_loops and i == j:
            continue
        a[i, j] += wij**beta
    if self_loops:
        a[np.arange(n), np.arange(n)] = 1.0
    for j in range(n):
        s = a[:, j].sum()
        if s > 0:
            a[:, j] /= s
        else:
            a[j, j] = 1.0
    return a


def test_transition_matches_brute_force_and_is_column_stochastic(device):
    g, w = _graph(device=device)
    n = g.num_nodes
    t = transition_matrix(g.edge_index, w, n, beta=8)
    assert t.layout == torch.sparse_csc
    dense = t.to_dense()
    torch.testing.assert_close(dense.sum(0), torch.ones(n, device=device))
    ref = _brute_transition(g.edge_index.cpu(), w.cpu(), n, 8)
    np.testing.assert_allclose(dense.cpu().numpy(), ref, atol=1e-6)
    torch.testing.assert_close(transition_matrix(g.edge_index, w, n, beta=8, dense=True), dense)
    assert torch.all(torch.diagonal(dense) > 0)


@pytest.mark.parametrize("log_t", [0, 1, 2, 3])
def test_sparse_steps_equal_dense_squaring(log_t, device):
    g, w = _graph(device=device)
    x = torch.rand(3, g.num_nodes, device=device)
    t = transition_matrix(g.edge_index, w, g.num_nodes, beta=8)
    sparse = random_walk(x, t, 2**log_t)
    dense = random_walk_dense(x, g.edge_index, w, g.num_nodes, beta=8, log_t=log_t)
    torch.testing.assert_close(sparse, dense, atol=1e-5, rtol=1e-5)
    # column-stochastic T: the all-ones row vector is a fixed point (1 T = 1)
    ones = torch.ones(1, g.num_nodes, device=device)
    torch.testing.assert_close(random_walk(ones, t, 2**log_t), ones)


class _Walk(MessagePassing):
    """NOTES.md check: one step = add-aggregation with weight T_ij on edge i -> j."""

    def __init__(self):
        super().__init__(aggr="add")

    def forward(self, x, edge_index, weight):
        return self.propagate(edge_index, x=x, weight=weight)

    def message(self, x_j, weight):
        return weight.view(-1, 1) * x_j


def test_equals_pyg_message_passing_8_steps():
    g, w = _graph(h=5, w=6, radius=2)
    n = g.num_nodes
    dense = transition_matrix(g.edge_index, w, n, beta=8, dense=True)
    src, dst = torch.nonzero(dense, as_tuple=True)
    weight = dense[src, dst]
    x = torch.rand(n, 2)
    y = x
    layer = _Walk()
    for _ in range(8):
        y = layer(y, torch.stack([src, dst]), weight)
    t = transition_matrix(g.edge_index, w, n, beta=8)
    torch.testing.assert_close(random_walk(x, t, 8), y, atol=1e-5, rtol=1e-5)  # [N, K]
    dense8 = torch.linalg.matrix_power(dense.double(), 8)
    torch.testing.assert_close(y.double(), dense8.t() @ x.double(), atol=1e-5, rtol=1e-5)


def test_layouts_and_orientation():
    g, w = _graph()
    n = g.num_nodes
    t = transition_matrix(g.edge_index, w, n)
    x = torch.rand(4, n, dtype=torch.float64)
    ref = random_walk(x, t, 4)
    assert ref.dtype == torch.float64
    torch.testing.assert_close(random_walk(x.t(), t, 4), ref.t())
    torch.testing.assert_close(random_walk(x.float(), t.to_dense(), 4), ref.float())
    torch.testing.assert_close(random_walk(x.float(), t.to_dense().to_sparse_csr(), 4), ref.float())
    torch.testing.assert_close(random_walk(x.float(), t.to_dense().to_sparse(), 4), ref.float())
    torch.testing.assert_close(random_walk(x, t, 0), x)
    # K == N is ambiguous: [K, N] is assumed unless node_dim says otherwise
    sq = torch.rand(n, n)
    torch.testing.assert_close(random_walk(sq, t, 2, node_dim=0), random_walk(sq.t(), t, 2).t())


def test_no_edges_isolated_nodes_and_zero_weights():
    empty = torch.zeros(2, 0, dtype=torch.long)
    x = torch.rand(2, 5)
    for loops in (True, False):
        t = transition_matrix(empty, None, 5, self_loops=loops)
        torch.testing.assert_close(t.to_dense(), torch.eye(5))
        torch.testing.assert_close(random_walk(x, t, 16), x)
    # zero weights, no self-loops: columns without weight keep their score
    ei = torch.tensor([[0, 1], [1, 0]])
    t = transition_matrix(ei, torch.zeros(2), 3, self_loops=False)
    torch.testing.assert_close(t.to_dense(), torch.eye(3))
    # node 2 isolated in a graph with edges
    t = transition_matrix(ei, torch.ones(2), 3)
    out = random_walk(x[:, :3], t, 8)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[:, 2], x[:, 2])
    # empty graph with 0 nodes
    t0 = transition_matrix(empty, None, 0)
    assert random_walk(torch.zeros(3, 0), t0, 4).shape == (3, 0)


def test_duplicates_and_existing_self_loops():
    g, w = _graph(h=4, w=4, radius=2)
    n = g.num_nodes
    ei = torch.cat([g.edge_index[:, 7:], g.edge_index[:, :12], torch.tensor([[2, 5], [2, 5]])], 1)
    ew = torch.cat([w[7:], w[:12], torch.tensor([0.3, 0.3])])
    for loops in (True, False):
        t = transition_matrix(ei, ew, n, beta=2, self_loops=loops).to_dense()
        ref = _brute_transition(ei, ew, n, 2, self_loops=loops)
        np.testing.assert_allclose(t.numpy(), ref, atol=1e-6)


def test_propagate_grid_and_dense_guard():
    g, w = _graph(h=6, w=5, radius=3)
    cams = torch.rand(3, 6, 5)
    a = random_walk_propagate(cams, g.edge_index, w, beta=8, log_t=3)
    b = random_walk_propagate(cams, g.edge_index, w, beta=8, log_t=3, dense=True)
    assert a.shape == cams.shape
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    # the default path never builds N x N: a grid above the dense guard works sparsely
    big = pixel_graph(65, 65, 2)
    x = torch.rand(2, 65, 65)
    out = random_walk_propagate(x, big.edge_index, None, log_t=1)
    assert out.shape == x.shape and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="guard"):
        random_walk_propagate(x, big.edge_index, None, log_t=1, dense=True)
    with pytest.raises(ValueError, match="guard"):
        transition_matrix(big.edge_index, None, 65 * 65, dense=True)


def test_walk_spreads_a_seed_inside_a_colour_region():
    image = np.zeros((24, 24, 3), np.uint8)
    image[:, 12:] = 255
    cams = torch.zeros(1, 24, 24)
    cams[0, 10:14, 2:5] = 1.0  # a small activation in the left (black) half
    probs = random_walk_from_image(image, cams, [1], stride=2, radius=4, log_t=5, bg_power=2,
                                   normalize=None)
    assert probs.shape == (2, 24, 24)
    torch.testing.assert_close(probs.sum(0), torch.ones(24, 24))
    left = probs[1, :, :10].mean()
    right = probs[1, :, 14:].mean()
    assert left > 2 * right  # the walk stays on its side of the colour edge
    feats = torch.rand(8, 6, 6)
    probs2 = random_walk_from_image(image, cams, [1], features=feats, stride=3, log_t=2)
    assert torch.isfinite(probs2).all()


def test_bad_input():
    g, w = _graph()
    n = g.num_nodes
    with pytest.raises(ValueError, match="non-negative"):
        transition_matrix(g.edge_index, -w, n)
    bad = w.clone()
    bad[0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        transition_matrix(g.edge_index, bad, n)
    with pytest.raises(ValueError, match="entries"):
        transition_matrix(g.edge_index, w[:-1], n)
    with pytest.raises(ValueError, match="beta"):
        transition_matrix(g.edge_index, w, n, beta=0)
    with pytest.raises(ValueError, match="edge_index"):
        transition_matrix(g.edge_index, w, n - 5)
    with pytest.raises(TypeError, match="floating"):
        transition_matrix(g.edge_index, torch.ones(w.numel(), dtype=torch.long), n)
    t = transition_matrix(g.edge_index, w, n)
    with pytest.raises(ValueError, match="scores"):
        random_walk(torch.rand(3, n + 1), t, 2)
    with pytest.raises(ValueError, match="NaN"):
        random_walk(torch.full((3, n), float("nan")), t, 2)
    with pytest.raises(ValueError, match="num_steps"):
        random_walk(torch.rand(3, n), t, -1)
    with pytest.raises(ValueError, match="square"):
        random_walk(torch.rand(3, n), torch.rand(n, n + 1), 2)
    with pytest.raises(ValueError, match="node_dim"):
        random_walk(torch.rand(3, n), t, 2, node_dim=2)
    with pytest.raises(ValueError, match="cam_scores"):
        random_walk_propagate(torch.rand(3, n), g.edge_index, w)
    with pytest.raises(ValueError, match="image size"):
        random_walk_from_image(np.zeros((8, 8, 3), np.uint8), torch.rand(2, 7, 8), [1, 1])
