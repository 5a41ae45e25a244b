"""Image-group graphs and the group sampler (pyg_wsss.graphs.group)."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from pyg_wsss.graphs import GreedyGroupSampler, image_group_graph


def _tags(n=12, c=5, p=0.35, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = (torch.rand(n, c, generator=g) < p).float()
    t[t.sum(1) == 0, 0] = 1.0  # every image has a class
    return t


def brute_edges(tags, self_loops=False):
    t = (tags > 0).tolist()
    out = {}
    for i in range(len(t)):
        for j in range(len(t)):
            shared = sum(a and b for a, b in zip(t[i], t[j]))
            if i == j:
                if self_loops:
                    out[(j, i)] = shared
            elif shared:
                out[(j, i)] = shared
    return out


@pytest.mark.parametrize("self_loops", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_image_group_graph_brute_force(self_loops, seed):
    tags = _tags(seed=seed)
    tags[3] = 0  # an untagged image: isolated (or only a self-loop)
    ei, shared = image_group_graph(tags, self_loops=self_loops, return_shared=True)
    ref = brute_edges(tags, self_loops)
    got = {(j, i): int(s) for (j, i), s in zip(ei.t().tolist(), shared.tolist())}
    assert got == ref
    assert ei.size(1) == len(ref)
    key = ei[1] * tags.size(0) + ei[0]
    assert torch.equal(key, key.sort().values)  # sorted by target, then source
    assert ei.dtype == torch.long
    assert torch.equal(image_group_graph(tags, self_loops=self_loops), ei)


def test_image_group_graph_small_cases(device):
    tags = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1]], device=device)
    ei = image_group_graph(tags)
    assert ei.tolist() == [[1, 0, 2, 1], [0, 1, 1, 2]]
    assert ei.device.type == torch.device(device).type
    from torch_geometric.utils import is_undirected

    assert is_undirected(ei)
    assert image_group_graph(torch.zeros(0, 3)).shape == (2, 0)
    assert image_group_graph(torch.zeros(3, 3)).shape == (2, 0)
    assert image_group_graph(torch.zeros(3, 3), self_loops=True).tolist() == [[0, 1, 2]] * 2
    # bool and numpy tags
    assert torch.equal(image_group_graph(tags.cpu().bool()), ei.cpu())
    assert torch.equal(image_group_graph(tags.cpu().numpy()), ei.cpu())


def test_image_group_graph_bad_input():
    with pytest.raises(ValueError):
        image_group_graph(torch.ones(4))
    with pytest.raises(ValueError):
        image_group_graph(-torch.ones(2, 3))
    with pytest.raises(ValueError):
        image_group_graph(torch.full((2, 3), float("nan")))
    with pytest.raises(TypeError):
        image_group_graph([[1, 0], [0, 1]])


def test_paper_sampler_picks_most_shared():
    tags = torch.tensor([
        [1, 1, 1, 0],  # 0 anchor
        [1, 1, 0, 0],  # 1 shares 2 with 0
        [1, 0, 0, 0],  # 2 shares 1
        [0, 0, 1, 0],  # 3 shares 1
        [1, 1, 1, 0],  # 4 shares 3 (identical)
        [0, 0, 0, 1],  # 5 shares nothing with anyone
    ])
    s = GreedyGroupSampler(tags, group_size=3, shuffle=False)
    groups = list(s)
    assert len(groups) == len(s) == 6
    assert [g[0] for g in groups] == list(range(6))  # anchors in order, anchor first
    assert groups[0] == [0, 4, 1]
    assert groups[5] == [5, 5, 5]  # padded with the anchor
    s_none = GreedyGroupSampler(tags, group_size=3, shuffle=False, pad=None)
    assert list(s_none)[5] == [5]
    assert all(len(g) == 3 for g in groups)


def test_paper_sampler_property():
    tags = _tags(n=30, c=6, seed=3)
    t = (tags > 0).long()
    shared_all = t @ t.t()
    for g in GreedyGroupSampler(tags, group_size=4, seed=1):
        a, partners = g[0], g[1:]
        assert a not in partners and len(set(partners)) == len(partners)
        sh = shared_all[a].clone()
        sh[a] = -1
        chosen = sh[partners]
        rest = torch.ones(len(t), dtype=torch.bool)
        rest[partners] = False
        rest[a] = False
        assert (chosen >= 1).all()
        assert chosen.min() >= sh[rest].max()  # nobody left out shares more


def test_paper_sampler_prefers_unused_on_ties():
    # anchor shares exactly one class with each of 1..4; group_size 2, no shuffle
    tags = torch.tensor([[1, 0], [1, 0], [1, 0], [1, 0], [1, 0]])
    groups = list(GreedyGroupSampler(tags, group_size=2, shuffle=False, seed=0))
    # anchors 0..4 in order; the partner is an image not used yet whenever one exists
    used = set()
    for g in groups:
        unused = set(range(5)) - {g[0]} - used
        if unused:
            assert g[1] in unused
        used |= set(g)


def test_sampler_epochs_and_determinism():
    tags = _tags(n=20, seed=4)
    a = list(GreedyGroupSampler(tags, 3, seed=7))
    b = list(GreedyGroupSampler(tags, 3, seed=7))
    assert a == b
    s = GreedyGroupSampler(tags, 3, seed=7)
    s.set_epoch(1)
    c = list(s)
    assert c != a
    assert sorted(g[0] for g in c) == list(range(20))  # every image is an anchor once


def test_code_sampler():
    tags = torch.tensor([[1, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 1, 0], [1, 1, 0]])
    groups = list(GreedyGroupSampler(tags, 3, strategy="code", seed=0))
    assert len(groups) == 6
    for g in groups:
        for p in g[1:]:  # identical label vectors exist for everyone (maybe the anchor itself)
            assert torch.equal(tags[p], tags[g[0]])
    # no identical vector except the anchor itself, and max_tries = 1: fallback -> shares a class
    tags2 = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 1, 1], [0, 0, 1]])
    for g in GreedyGroupSampler(tags2, 4, strategy="code", max_tries=1, seed=2):
        for p in g[1:]:
            assert (tags2[p] * tags2[g[0]]).sum() >= 1


def test_sampler_as_batch_sampler():
    tags = _tags(n=10, seed=5)
    ds = TensorDataset(torch.arange(10), tags)
    loader = DataLoader(ds, batch_sampler=GreedyGroupSampler(tags, group_size=3))
    batches = list(loader)
    assert len(batches) == 10
    for idx, t in batches:
        assert idx.shape == (3,) and t.shape == (3, tags.size(1))
        assert (t[0] * t[1:]).sum(1).min() >= 1  # partners share a class with the anchor


def test_sampler_empty_tags():
    tags = torch.tensor([[1, 0], [0, 0], [1, 0]])
    with pytest.raises(ValueError):
        GreedyGroupSampler(tags, 2)
    s = GreedyGroupSampler(tags, 2, empty="skip", shuffle=False)
    groups = list(s)
    assert len(s) == 2 and all(1 not in g for g in groups)
    for strategy in ("paper", "code"):
        for g in GreedyGroupSampler(tags, 3, strategy=strategy, empty="skip"):
            assert 1 not in g
    with pytest.raises(ValueError):
        GreedyGroupSampler(torch.zeros(3, 2), 2, empty="skip")


def test_sampler_bad_input():
    tags = _tags()
    with pytest.raises(ValueError):
        GreedyGroupSampler(tags, 0)
    with pytest.raises(TypeError):
        GreedyGroupSampler(tags, 2.5)
    with pytest.raises(ValueError):
        GreedyGroupSampler(tags, 2, strategy="random")
    with pytest.raises(ValueError):
        GreedyGroupSampler(tags, 2, max_tries=0)
    with pytest.raises(ValueError):
        GreedyGroupSampler(tags, 2, pad="zeros")
    with pytest.raises(ValueError):
        GreedyGroupSampler(tags[0], 2)
    with pytest.raises(ValueError):
        GreedyGroupSampler(torch.zeros(0, 3), 2)
    with pytest.raises(TypeError):
        GreedyGroupSampler(tags, 2, seed=None)
    assert "GreedyGroupSampler" in repr(GreedyGroupSampler(tags, 2))
    assert isinstance(GreedyGroupSampler(np.asarray(tags), 2), GreedyGroupSampler)
