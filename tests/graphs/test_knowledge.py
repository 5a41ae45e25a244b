"""Class-relation graphs (pyg_wsss.graphs.knowledge) and the shipped class knowledge."""
import numpy as np
import pytest
import torch

from pyg_wsss.graphs import (
    class_relation_graph,
    cooccurrence_matrix,
    load_class_knowledge,
    mlgcn_reweight,
    normalize_relation,
    random_walk_with_restart,
)

VOC = [
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
]


def _graph(m=9, seed=0, dangling=True):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(m, m, generator=g, dtype=torch.float64)
    a = a * (torch.rand(m, m, generator=g) < 0.4)
    a.fill_diagonal_(0)
    a[:, 0] += 0.5  # everyone reaches node 0
    a[0, 0] = 0
    if dangling:
        a[m - 1] = 0  # node m-1 has no out-edges
    else:
        a[m - 1, 0] = 1.0
    return a


def reference_rwr(a, seed, c, dangling="restart"):
    """Closed form in numpy: r = c (I - (1 - c) T~)^-1 q (adjacency rows = sources)."""
    a = a.numpy()
    m = a.shape[0]
    deg = a.sum(1)
    t = np.zeros((m, m))
    for j in range(m):
        if deg[j] > 0:
            t[:, j] = a[j] / deg[j]  # column j: where the walker at j goes
    q = np.zeros(m)
    q[seed] = 1
    for j in range(m):
        if deg[j] == 0:
            if dangling == "restart":
                t[:, j] = q
            elif dangling == "uniform":
                t[:, j] = 1.0 / m
    return c * np.linalg.solve(np.eye(m) - (1 - c) * t, q)


@pytest.mark.parametrize("dangling", ["restart", "uniform", "drop"])
def test_rwr_matches_closed_form(dangling):
    a = _graph()
    r = random_walk_with_restart(a, [0, 3, 8], restart=0.15, dangling=dangling)
    assert r.shape == (3, 9) and r.dtype == torch.float64
    for k, s in enumerate([0, 3, 8]):
        np.testing.assert_allclose(r[k].numpy(), reference_rwr(a, s, 0.15, dangling), atol=1e-8)
    dense = random_walk_with_restart(a, [0, 3, 8], dangling=dangling, dense=True)
    torch.testing.assert_close(r, dense, atol=1e-8, rtol=0)
    if dangling != "drop":
        torch.testing.assert_close(r.sum(1), torch.ones(3, dtype=torch.float64))
    else:
        assert (r.sum(1) < 1).all()


def test_rwr_two_nodes_by_hand():
    a = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    c = 0.3
    r = random_walk_with_restart(a, [0], restart=c)
    # r0 = c + (1 - c) r1, r1 = (1 - c) r0  ->  r0 = 1 / (2 - c)
    torch.testing.assert_close(r[0], torch.tensor([1 / (2 - c), (1 - c) / (2 - c)],
                                                  dtype=torch.float64))
    # restart 1: the walk never leaves the seed
    torch.testing.assert_close(random_walk_with_restart(a, [1], restart=1.0)[0],
                               torch.tensor([0.0, 1.0], dtype=torch.float64))


def test_rwr_input_forms_agree(device):
    a = _graph(seed=1).to(device)
    ref = random_walk_with_restart(a, [1, 2])
    ei = a.nonzero().t()
    w = a[ei[0], ei[1]]
    via_edges = random_walk_with_restart(ei, [1, 2], edge_weight=w, num_nodes=9)
    via_coo = random_walk_with_restart(a.to_sparse(), [1, 2])
    via_csr = random_walk_with_restart(a.cpu().to_sparse_csr(), [1, 2])
    via_tensor_seeds = random_walk_with_restart(a, torch.tensor([1, 2], device=device))
    for other in (via_edges, via_coo, via_csr, via_tensor_seeds):
        torch.testing.assert_close(other.cpu(), ref.cpu())
    # float32 dense input, unit weights from an edge_index without weights
    torch.testing.assert_close(random_walk_with_restart(a.float(), [1, 2]).cpu(), ref.cpu(),
                               atol=1e-6, rtol=1e-5)
    unit = random_walk_with_restart(ei, [1], num_nodes=9)
    torch.testing.assert_close(unit.cpu(), random_walk_with_restart((a > 0).double(), [1]).cpu())


def test_rwr_restart_distribution_is_linear_without_dangling():
    a = _graph(seed=2, dangling=False)
    q = torch.zeros(1, 9, dtype=torch.float64)
    q[0, 1], q[0, 4] = 1.0, 3.0  # normalised to 0.25 / 0.75
    r = random_walk_with_restart(a, q)
    both = random_walk_with_restart(a, [1, 4])
    torch.testing.assert_close(r[0], 0.25 * both[0] + 0.75 * both[1])


def test_rwr_bad_input():
    a = _graph()
    with pytest.raises(ValueError):
        random_walk_with_restart(a, [0], restart=0.0)
    with pytest.raises(ValueError):
        random_walk_with_restart(a, [0], restart=1.5)
    with pytest.raises(ValueError):
        random_walk_with_restart(-a, [0])
    with pytest.raises(ValueError):
        random_walk_with_restart(a[:, :5], [0])
    with pytest.raises(ValueError):
        random_walk_with_restart(a, [9])
    with pytest.raises(ValueError):
        random_walk_with_restart(a, torch.tensor([[0, 1]]))
    with pytest.raises(ValueError):
        random_walk_with_restart(a, torch.zeros(1, 9))  # zero restart distribution
    with pytest.raises(ValueError):
        random_walk_with_restart(a, [0], dangling="teleport")
    with pytest.raises(ValueError):
        random_walk_with_restart(a, [0], tol=0.0)
    with pytest.raises(TypeError):
        random_walk_with_restart(a.numpy(), [0])
    nan = a.clone()
    nan[0, 1] = float("nan")
    with pytest.raises(ValueError):
        random_walk_with_restart(nan, [0])
    with pytest.raises(ValueError):  # edge weight count mismatch
        random_walk_with_restart(torch.tensor([[0, 1], [1, 0]]), [0], edge_weight=torch.ones(3))
    with pytest.raises(ValueError):  # node index outside num_nodes
        random_walk_with_restart(torch.tensor([[0, 5], [5, 0]]), [0], num_nodes=3)


def test_class_relation_graph():
    a = _graph(seed=3, dangling=False)
    e, s = class_relation_graph(a, return_scores=True)
    torch.testing.assert_close(e, e.t())
    assert (e >= 0).all()
    torch.testing.assert_close(e, torch.sqrt(s * s.t()))
    torch.testing.assert_close(s, random_walk_with_restart(a, list(range(9))))
    assert (e.diagonal() >= 0.15 - 1e-12).all()  # s_ii >= c
    sub = class_relation_graph(a, class_nodes=[2, 5, 7])
    torch.testing.assert_close(sub, e[[2, 5, 7]][:, [2, 5, 7]])
    with pytest.raises(ValueError):
        class_relation_graph(a, class_nodes=[0, 9])
    with pytest.raises(ValueError):
        class_relation_graph(a, class_nodes=torch.tensor([0.5]))


def test_cooccurrence_matrix_brute_force():
    g = torch.Generator().manual_seed(0)
    tags = (torch.rand(40, 6, generator=g) < 0.3).float()
    co, n = cooccurrence_matrix(tags)
    t = tags.bool().tolist()
    for i in range(6):
        assert n[i] == sum(r[i] for r in t)
        for j in range(6):
            expect = 0 if i == j else sum(r[i] and r[j] for r in t)
            assert co[i, j] == expect
    with pytest.raises(ValueError):
        cooccurrence_matrix(torch.ones(3))
    with pytest.raises(ValueError):
        cooccurrence_matrix(-torch.ones(2, 2))


def _gen_a_code(adj, nums, t, p):
    """numpy transcription of ML-GCN's gen_A as described in NOTES.md 5.3."""
    adj = adj / nums[:, None]
    adj = (adj >= t).astype(float)  # _adj[_adj < t] = 0; _adj[_adj >= t] = 1
    adj = adj * p / (adj.sum(0, keepdims=True) + 1e-6)
    return adj + np.identity(len(nums))


def test_mlgcn_reweight_variants():
    g = torch.Generator().manual_seed(1)
    tags = (torch.rand(60, 7, generator=g) < 0.4).float()
    co, n = cooccurrence_matrix(tags)
    code = mlgcn_reweight(co, n, t=0.4, p=0.25, variant="code")
    np.testing.assert_allclose(code.numpy(), _gen_a_code(co.numpy(), n.numpy(), 0.4, 0.25))
    assert torch.allclose(code.diagonal(), torch.ones(7, dtype=torch.float64))  # diag 1
    paper = mlgcn_reweight(co, n, t=0.4, p=0.25)
    assert torch.allclose(paper.diagonal(), torch.full((7,), 0.75, dtype=torch.float64))
    a = (co / n[:, None] >= 0.4).double()
    has = a.sum(1) > 0
    torch.testing.assert_close(paper.sum(1)[has], torch.ones(int(has.sum()), dtype=torch.float64))
    torch.testing.assert_close((paper > 0).double() - torch.eye(7, dtype=torch.float64), a)
    # hand example: class 2 never co-occurs; class with zero count gives no NaN
    co2 = torch.tensor([[0.0, 3, 0, 0], [3, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    n2 = torch.tensor([4.0, 10, 5, 0])
    pap = mlgcn_reweight(co2, n2, t=0.5, p=0.2)
    # P(1|0) = 0.75 >= 0.5, P(0|1) = 0.3 < 0.5
    expected = torch.tensor([[0.8, 0.2, 0, 0], [0, 0.8, 0, 0], [0, 0, 0.8, 0], [0, 0, 0, 0.8]],
                            dtype=torch.float64)
    torch.testing.assert_close(pap, expected)
    cod = mlgcn_reweight(co2, n2, t=0.5, p=0.2, variant="code")
    assert torch.isfinite(cod).all()
    torch.testing.assert_close(cod[0, 1], torch.tensor(0.2 / (1 + 1e-6), dtype=torch.float64))
    for bad in [dict(t=1.5), dict(p=-0.1), dict(variant="x")]:
        with pytest.raises(ValueError):
            mlgcn_reweight(co, n, **bad)
    with pytest.raises(ValueError):
        mlgcn_reweight(co[:3], n)
    with pytest.raises(ValueError):
        mlgcn_reweight(co, n[:3])
    with pytest.raises(ValueError):
        mlgcn_reweight(-co, n)


def test_normalize_relation_equals_definition_and_pyg():
    from torch_geometric.nn import DenseGCNConv, GCNConv
    from torch_geometric.utils import dense_to_sparse

    g = torch.Generator().manual_seed(0)
    e = torch.rand(6, 6, generator=g, dtype=torch.float64)
    e = (e + e.t()) / 2
    e.fill_diagonal_(0.3)  # a large diagonal, like the ConceptNet / WordNet matrices
    a = normalize_relation(e)
    ei = e + torch.eye(6, dtype=torch.float64)
    d = ei.sum(1).rsqrt()
    torch.testing.assert_close(a, d[:, None] * ei * d[None, :])
    torch.testing.assert_close(a, a.t())
    # NOTES.md 7 check 3: equals DenseGCNConv(add_loop=False) on E + I ...
    x = torch.rand(6, 4, generator=g, dtype=torch.float64)
    conv = DenseGCNConv(4, 3, bias=False).double()
    ours = a @ x @ conv.lin.weight.t()
    torch.testing.assert_close(conv(x, ei, add_loop=False)[0], ours)
    # ... and GCNConv(add_self_loops=False) on the edges of E + I ...
    gcn = GCNConv(4, 3, bias=False, add_self_loops=False).double()
    gcn.lin.weight.data.copy_(conv.lin.weight.data)
    edge_index, w = dense_to_sparse(ei)
    torch.testing.assert_close(gcn(x, edge_index, w), ours)
    # ... but NOT DenseGCNConv(add_loop=True) on E (it sets the diagonal to 1)
    assert not torch.allclose(conv(x, e, add_loop=True)[0], ours)
    # add_identity=False normalises E itself; zero rows stay zero (no NaN)
    z = e.clone()
    z[2] = 0
    z[:, 2] = 0
    b = normalize_relation(z, add_identity=False)
    assert torch.isfinite(b).all() and (b[2] == 0).all()
    # batched
    torch.testing.assert_close(normalize_relation(torch.stack([e, e]))[1], a)


def test_normalize_relation_bad_input():
    with pytest.raises(ValueError):
        normalize_relation(torch.rand(3, 4))
    with pytest.raises(ValueError):
        normalize_relation(-torch.ones(3, 3))
    with pytest.raises(TypeError):
        normalize_relation(torch.ones(3, 3, dtype=torch.long))
    with pytest.raises(ValueError):
        normalize_relation(torch.full((2, 2), float("nan")))
    with pytest.raises(ValueError):
        normalize_relation(torch.rand(3))


@pytest.mark.parametrize("name,c", [("voc", 20), ("coco", 80)])
def test_shipped_class_knowledge(name, c):
    relation, emb, names = load_class_knowledge(name)
    assert relation.shape == (c, c) and emb.shape == (c, 50) and len(names) == c
    assert relation.dtype == torch.float32 and emb.dtype == torch.float32
    assert torch.isfinite(relation).all() and torch.isfinite(emb).all()
    torch.testing.assert_close(relation, relation.t())
    assert (relation >= 0).all()
    off = relation - torch.diag(relation.diagonal())
    assert (relation.diagonal() >= 0.15 - 1e-6).all()  # s_ii >= restart probability
    assert (relation.diagonal()[:, None] > off).all()
    assert (emb.norm(dim=1) > 0).all()
    cat, dog, train = names.index("cat"), names.index("dog"), names.index("train")
    assert relation[cat, dog] > 100 * relation[cat, train]
    cos = torch.nn.functional.cosine_similarity
    assert cos(emb[cat], emb[dog], dim=0) > cos(emb[cat], emb[train], dim=0)
    car = names.index("car")
    vehicles = {"bus", "truck", "airplane", "aeroplane", "motorbike", "motorcycle"}
    assert names[int(off[car].argmax())] in vehicles
    a = normalize_relation(relation.double())
    assert torch.isfinite(a).all()
    k64 = load_class_knowledge(name, dtype=torch.float64)
    torch.testing.assert_close(k64.relation.float(), relation)


def test_shipped_class_knowledge_consistent():
    voc = load_class_knowledge("voc")
    coco = load_class_knowledge("coco")
    assert voc.class_names == VOC
    try:
        from pyg_wsss.data import VOC_CLASSES
    except (ImportError, AttributeError):
        VOC_CLASSES = None
    if VOC_CLASSES is not None:
        assert voc.class_names == list(VOC_CLASSES)[1:]
    # same synsets -> same RWR scores in both files (each seed's walk is independent)
    for a, b in [("cat", "dog"), ("car", "bus"), ("bottle", "chair")]:
        ia, ib = voc.class_names.index(a), voc.class_names.index(b)
        ja, jb = coco.class_names.index(a), coco.class_names.index(b)
        torch.testing.assert_close(voc.relation[ia, ib], coco.relation[ja, jb])
    with pytest.raises(ValueError):
        load_class_knowledge("ade20k")
