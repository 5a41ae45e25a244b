"""Pixel graphs (pyg_wsss.graphs.pixel) against brute-force Python-loop references."""
import pytest
import torch

from pyg_wsss.graphs import (
    PixelGraph,
    batch_pixel_graphs,
    half_plane_offsets,
    pixel_graph,
    stencil_offsets,
)


def _forward(dy, dx):
    return dy > 0 or (dy == 0 and dx > 0)


def _in_shape(dy, dx, r, shape):
    if shape == "square":
        return max(abs(dy), abs(dx)) <= r
    return dy * dy + dx * dx < r * r


def brute_force_edges(h, w, r, shape, symmetric, self_loops):
    """Set of (source, target) pairs by looping over every pair of cells."""
    edges = set()
    for a in range(h * w):
        ar, ac = divmod(a, w)
        if self_loops:
            edges.add((a, a))
        for b in range(h * w):
            br, bc = divmod(b, w)
            dy, dx = br - ar, bc - ac
            if (dy, dx) == (0, 0) or not _forward(dy, dx):
                continue
            if not _in_shape(dy, dx, r, shape):
                continue
            if shape == "psa":  # the anchor a must lie in PSA's interior crop
                if not (ar <= h - r and r - 1 <= ac <= w - r):
                    continue
            edges.add((a, b))  # half-plane direction: source a, target a + h
            if symmetric:
                edges.add((b, a))
    return edges


CASES = [
    (h, w, r, shape, sym, loops)
    for (h, w) in [(5, 6), (7, 4)]
    for r in [1, 2, 3]
    for shape in ["square", "disc", "psa", "irn"]
    for sym in [True, False]
    for loops in [False, True]
]


@pytest.mark.parametrize("h,w,r,shape,symmetric,self_loops", CASES)
def test_edges_equal_brute_force(h, w, r, shape, symmetric, self_loops):
    g = pixel_graph(h, w, r, shape=shape, symmetric=symmetric, self_loops=self_loops)
    got = list(map(tuple, g.edge_index.t().tolist()))
    assert len(got) == len(set(got)), "duplicate edges"
    assert set(got) == brute_force_edges(h, w, r, shape, symmetric, self_loops)
    # sorted by (target, source)
    key = g.edge_index[1] * g.num_nodes + g.edge_index[0]
    assert torch.equal(key, key.sort().values)
    # edge_offset: source = target + offsets[edge_offset] in (row, col)
    src, dst = g.edge_index
    d = torch.stack([src // w - dst // w, src % w - dst % w], 1)
    assert torch.equal(d, g.offsets[g.edge_offset])
    assert g.num_nodes == h * w and tuple(g.grid_size) == (h, w)
    assert torch.equal(g.pos[7], torch.tensor([7 // w, 7 % w], dtype=torch.float))


@pytest.mark.parametrize("shape", ["disc", "square", "psa"])
def test_symmetric_graph_is_undirected(shape):
    from torch_geometric.utils import is_undirected

    g = pixel_graph(9, 8, 3, shape=shape)
    assert is_undirected(g.edge_index, num_nodes=g.num_nodes)
    gd = pixel_graph(9, 8, 3, shape=shape, symmetric=False)
    assert gd.edge_index.size(1) * 2 == g.edge_index.size(1)


def test_offset_counts():
    # NOTES.md 5.1/5.2: 34 forward offsets at radius 5 (PSA and IRNet)
    for shape in ["disc", "psa", "irn"]:
        assert half_plane_offsets(5, shape).size(0) == 34
        assert stencil_offsets(5, shape).size(0) == 68
        assert stencil_offsets(5, shape, self_loops=True).size(0) == 69
    for r in [1, 2, 3, 4]:
        assert half_plane_offsets(r, "square").size(0) == ((2 * r + 1) ** 2 - 1) // 2
    expected = set()
    for dx in range(1, 5):
        expected.add((0, dx))
    for dy in range(1, 5):
        for dx in range(-4, 5):
            if dy * dy + dx * dx < 25:
                expected.add((dy, dx))
    assert set(map(tuple, half_plane_offsets(5).tolist())) == expected
    full = stencil_offsets(3, "disc", self_loops=True)
    assert full.tolist() == sorted(full.tolist())  # lexicographic


def test_upstream_counts(device):
    # NOTES.md section 6
    psa = pixel_graph(64, 64, 5, shape="psa", symmetric=False, device=device)
    assert psa.edge_index.size(1) == 114_240  # 3,360 sources x 34 offsets
    assert pixel_graph(64, 64, 5, shape="psa", device=device).edge_index.size(1) == 2 * 114_240
    sq4 = pixel_graph(64, 64, 4, shape="square", self_loops=True, device=device)
    assert sq4.edge_index.size(1) == 309_136
    sq3 = pixel_graph(64, 64, 3, shape="square", self_loops=True, device=device)
    assert sq3.edge_index.size(1) == 190_096
    irn = pixel_graph(128, 128, 5, shape="irn", self_loops=True, device=device)
    assert irn.edge_index.size(1) == 1_095_920
    assert pixel_graph(128, 128, 5, shape="irn", symmetric=False).edge_index.size(1) == 539_768
    assert irn.edge_index.device.type == torch.device(device).type


def test_wsgcn_window_laplacian_count():
    # NOTES.md 6: WSGCN 5x5 window on 128x128: 385,572 non-self entries
    assert pixel_graph(128, 128, 2, shape="square").edge_index.size(1) == 385_572


def test_batching_offsets():
    g = pixel_graph(4, 5, 2, shape="disc")
    b = batch_pixel_graphs(g, batch_size=3)
    n, e = g.num_nodes, g.edge_index.size(1)
    assert b.num_graphs == 3 and b.num_nodes == 3 * n
    assert b.offsets.shape == (3, g.offsets.size(0), 2)
    for k in range(3):
        assert torch.equal(b.edge_index[:, k * e:(k + 1) * e], g.edge_index + k * n)
        assert torch.equal(b.edge_offset[k * e:(k + 1) * e], g.edge_offset)  # not incremented
    assert torch.equal(b.batch, torch.arange(3).repeat_interleave(n))
    # different grids (same stencil) in one batch
    g2 = pixel_graph(3, 7, 2, shape="disc")
    b2 = batch_pixel_graphs([g, g2])
    assert b2.num_nodes == n + 21
    assert torch.equal(b2.edge_index[:, e:], g2.edge_index + n)
    assert isinstance(b2.get_example(1), PixelGraph)
    assert torch.equal(b2.get_example(1).edge_index, g2.edge_index)


def test_128_grid_edge_count():
    # speed is measured in benchmarks/graphs.py; here the size the benchmark relies on
    g = pixel_graph(128, 128, 5)
    assert g.edge_index.shape == (2, 2 * 539_768)


@pytest.mark.parametrize(
    "kwargs,err",
    [
        (dict(height=8, width=8, radius=0), ValueError),
        (dict(height=8, width=8, radius=-2), ValueError),
        (dict(height=8, width=8, radius=1.5), TypeError),
        (dict(height=8, width=8, radius=True), TypeError),
        (dict(height=0, width=8, radius=2), ValueError),
        (dict(height=8, width=-1, radius=2), ValueError),
        (dict(height=8.0, width=8, radius=2), TypeError),
        (dict(height=8, width=8, radius=2, shape="hexagon"), ValueError),
    ],
)
def test_bad_input(kwargs, err):
    with pytest.raises(err):
        pixel_graph(**kwargs)


def test_bad_input_offsets_and_batch():
    with pytest.raises(ValueError):
        half_plane_offsets(0)
    with pytest.raises(ValueError):
        stencil_offsets(3, "ring")
    with pytest.raises(ValueError):
        batch_pixel_graphs([])
    with pytest.raises(ValueError):
        batch_pixel_graphs(pixel_graph(3, 3, 1))  # batch_size missing
    with pytest.raises(ValueError):
        batch_pixel_graphs(pixel_graph(3, 3, 1), batch_size=0)
