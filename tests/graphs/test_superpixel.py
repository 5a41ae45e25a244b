"""Superpixel graphs (pyg_wsss.graphs.superpixel) against brute-force loops."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pyg_wsss.graphs import SuperpixelGraph, superpixel_graph
from pyg_wsss.graphs.superpixel import region_adjacency, slic_segments


def _image(h=24, w=30, seed=0):
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (200, 30, 30)
    img[h // 2 :, w // 2 :] = (30, 200, 30)
    img[: h // 2, w // 2 :] = (30, 30, 200)
    noise = rng.integers(-10, 10, size=img.shape)
    return np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8)


def _random_segments(h, w, r, seed=0):
    rng = np.random.default_rng(seed)
    seg = rng.integers(0, r, size=(-(-h // 2), -(-w // 3))).repeat(2, 0).repeat(3, 1)
    seg = np.unique(seg[:h, :w], return_inverse=True)[1].reshape(h, w)  # ids 0 .. R-1
    return seg[:h, :w]


def brute_adjacency(seg, connectivity=4):
    h, w = seg.shape
    nb = [(0, 1), (1, 0)] + ([(1, 1), (1, -1)] if connectivity == 8 else [])
    edges = set()
    for r in range(h):
        for c in range(w):
            for dy, dx in nb:
                rr, cc = r + dy, c + dx
                if 0 <= rr < h and 0 <= cc < w and seg[r, c] != seg[rr, cc]:
                    edges.add((int(seg[r, c]), int(seg[rr, cc])))
                    edges.add((int(seg[rr, cc]), int(seg[r, c])))
    return edges


def brute_means(values, seg):
    """values [H, W, C] -> per-region means by a loop over regions."""
    r = seg.max() + 1
    return np.stack([values[seg == k].mean(0) for k in range(r)])


@pytest.mark.parametrize("connectivity", [4, 8])
def test_region_adjacency_brute_force(connectivity):
    seg = _random_segments(12, 15, 6)
    ei = region_adjacency(torch.from_numpy(seg), connectivity=connectivity)
    got = list(map(tuple, ei.t().tolist()))
    assert len(got) == len(set(got))
    assert set(got) == brute_adjacency(seg, connectivity)
    key = ei[1] * 6 + ei[0]
    assert torch.equal(key, key.sort().values)


def test_region_adjacency_hand_example():
    seg = torch.tensor([[0, 1], [2, 3]])
    e4 = set(map(tuple, region_adjacency(seg).t().tolist()))
    assert e4 == {(0, 1), (1, 0), (0, 2), (2, 0), (1, 3), (3, 1), (2, 3), (3, 2)}
    e8 = set(map(tuple, region_adjacency(seg, connectivity=8).t().tolist()))
    assert e8 == e4 | {(0, 3), (3, 0), (1, 2), (2, 1)}
    loops = region_adjacency(seg, self_loops=True)
    assert loops.size(1) == 8 + 4


def test_given_segments_brute_force(device):
    img = _image()
    seg = _random_segments(24, 30, 7, seed=1)
    feats = torch.rand(5, 24, 30, dtype=torch.float64)
    g = superpixel_graph(img, features=feats, segments=seg, device=device)
    assert isinstance(g, SuperpixelGraph)
    r = seg.max() + 1
    assert g.num_nodes == r
    np.testing.assert_allclose(
        g.x.cpu().numpy(), brute_means(feats.permute(1, 2, 0).numpy(), seg), rtol=1e-10
    )
    np.testing.assert_allclose(
        g.colour.cpu().numpy(), brute_means(img.astype(np.float64) / 255, seg), rtol=1e-5
    )
    rows, cols = np.mgrid[:24, :30]
    np.testing.assert_allclose(
        g.pos.cpu().numpy(), brute_means(np.stack([rows, cols], -1).astype(float), seg),
        rtol=1e-5,
    )
    assert g.area.tolist() == [int((seg == k).sum()) for k in range(r)]
    assert set(map(tuple, g.edge_index.cpu().t().tolist())) == brute_adjacency(seg)
    assert torch.equal(g.segments.cpu(), torch.from_numpy(seg))
    # the map back to pixels
    lab = torch.arange(r, device=g.segments.device) * 10
    assert torch.equal(g.to_pixels(lab).cpu(), torch.from_numpy(seg) * 10)
    assert g.to_pixels(g.x).shape == (24, 30, 5)
    # no features: x is the mean colour
    g2 = superpixel_graph(img, segments=seg)
    torch.testing.assert_close(g2.x, g2.colour)


def test_segments_are_relabelled():
    img = _image(4, 6)
    seg = np.array([[5, 5, 9, 9, 2, 2]] * 4)
    g = superpixel_graph(img, segments=seg)
    assert g.num_nodes == 3
    assert g.segments[0].tolist() == [1, 1, 2, 2, 0, 0]  # order preserving


def test_low_resolution_features_are_upsampled():
    img = _image()
    seg = _random_segments(24, 30, 5, seed=2)
    low = torch.rand(3, 6, 8)
    g = superpixel_graph(img, features=low, segments=seg)
    up = F.interpolate(low[None], size=(24, 30), mode="bilinear", align_corners=False)[0]
    ref = brute_means(up.permute(1, 2, 0).numpy(), seg)
    np.testing.assert_allclose(g.x.numpy(), ref, rtol=1e-5, atol=1e-6)


def test_slic_regions():
    img = _image(32, 32)
    seg = slic_segments(img, n_segments=16, compactness=10)
    assert seg.shape == (32, 32) and seg.min() == 0
    assert np.array_equal(np.unique(seg), np.arange(seg.max() + 1))  # contiguous, start 0
    g = superpixel_graph(img, n_segments=16, compactness=10)
    assert g.num_nodes == seg.max() + 1
    assert torch.equal(g.segments, torch.from_numpy(seg))
    assert g.to_pixels(torch.arange(g.num_nodes)).equal(g.segments)
    assert int(g.area.sum()) == 32 * 32
    # regions are (mostly) uniform in colour on this 3-colour image
    from torch_geometric.utils import is_undirected

    assert is_undirected(g.edge_index, num_nodes=g.num_nodes)
    # float image in [0, 1] and [3, H, W] tensor give the same graph
    gf = superpixel_graph(torch.from_numpy(img).permute(2, 0, 1).float() / 255, n_segments=16)
    assert torch.equal(gf.segments, g.segments)


def test_batch_of_images():
    imgs = [_image(16, 20, seed=s) for s in range(3)]
    segs = [_random_segments(16, 20, 4 + s, seed=s) for s in range(3)]
    feats = [torch.rand(2, 16, 20) for _ in range(3)]
    b = superpixel_graph(imgs, features=feats, segments=segs)
    singles = [superpixel_graph(i, features=f, segments=s) for i, f, s in zip(imgs, feats, segs)]
    assert b.num_graphs == 3
    assert b.segments.shape == (3, 16, 20)
    offset = 0
    for k, g in enumerate(singles):
        assert torch.equal(b.segments[k], g.segments + offset)
        sl = slice(offset, offset + g.num_nodes)
        torch.testing.assert_close(b.x[sl], g.x)
        offset += g.num_nodes
    assert torch.equal(b.edge_index, torch.cat(
        [g.edge_index + int(b.ptr[k]) for k, g in enumerate(singles)], 1))
    # to_pixels on the batch
    px = b.to_pixels(b.x)
    assert px.shape == (3, 16, 20, 2)
    torch.testing.assert_close(px[1], singles[1].to_pixels(singles[1].x))
    assert torch.equal(b.get_example(2).segments, singles[2].segments)
    # SLIC on a list
    b2 = superpixel_graph(imgs[:2], n_segments=8)
    assert b2.segments.shape == (2, 16, 20) and int(b2.segments[1].min()) == int(b2.ptr[1])


def test_bad_input():
    img = _image(8, 8)
    seg = np.zeros((8, 8), np.int64)
    with pytest.raises(ValueError):
        superpixel_graph(img[..., 0])  # grey
    with pytest.raises(ValueError):
        superpixel_graph(img, segments=np.zeros((7, 8), np.int64))
    with pytest.raises(ValueError):
        superpixel_graph(img, segments=-np.ones((8, 8), np.int64))
    with pytest.raises(TypeError):
        superpixel_graph(img, segments=np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError):
        superpixel_graph(img, features=torch.rand(8, 8), segments=seg)
    with pytest.raises(TypeError):
        superpixel_graph(img, features=torch.ones(2, 8, 8, dtype=torch.long), segments=seg)
    with pytest.raises(ValueError):
        superpixel_graph(img, features=torch.full((2, 8, 8), float("nan")), segments=seg)
    with pytest.raises(ValueError):
        superpixel_graph(img, connectivity=6)
    with pytest.raises(ValueError):
        superpixel_graph([])
    with pytest.raises(ValueError):  # different sizes cannot be batched
        superpixel_graph([img, _image(8, 10)], n_segments=4)
    with pytest.raises(TypeError):
        superpixel_graph([img, img], features=torch.rand(2, 8, 8))
    with pytest.raises(ValueError):
        superpixel_graph(img, n_segments=0)
    with pytest.raises(TypeError):
        superpixel_graph("image.png")
    g = superpixel_graph(img, segments=seg)
    with pytest.raises(ValueError):
        g.to_pixels(torch.zeros(5))
