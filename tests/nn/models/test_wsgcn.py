import io
import math

import pytest
import torch
from torch_geometric.nn import GCNConv
from torch_geometric.utils import to_dense_adj

from pyg_wsss.nn.models import WSGCN
from pyg_wsss.nn.models.wsgcn import (
    BatchedWSGCN,
    fit_wsgcn,
    random_walk_transition,
    wsgcn_adjacency,
    wsgcn_graph,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _rand_graph(n=6, e=14, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, n, (e,), generator=g)
    dst = torch.randint(0, n, (e,), generator=g)
    keep = src != dst
    ei = torch.unique(torch.stack([src[keep], dst[keep]]), dim=1)
    return ei, torch.rand(ei.size(1), generator=g, dtype=dtype)


def _dense(ei, w, n):
    # M[i, j] = weight of edge j -> i
    return to_dense_adj(ei.flip(0), edge_attr=w, max_num_nodes=n)[0]


def test_adjacency_paper_and_code_against_dense():
    n = 6
    ei, w = _rand_graph(n)
    a = _dense(ei, w, n)
    pei, pw = wsgcn_adjacency(ei, w, n, variant="paper")
    assert torch.allclose(_dense(pei, pw, n), a + torch.eye(n, dtype=a.dtype))
    cei, cw = wsgcn_adjacency(ei, w, n, variant="code")
    sym = torch.maximum(a, a.t()) + torch.eye(n, dtype=a.dtype)
    want = sym / sym.sum(1, keepdim=True)
    assert torch.allclose(_dense(cei, cw, n), want)
    assert torch.allclose(_dense(cei, cw, n).sum(1), torch.ones(n, dtype=a.dtype))


def test_notes_check_2_gcnconv_and_edge_direction():
    """GCN layer with D^-1(max(A, A^T) + I) == GCNConv(normalize=False, add_self_loops=False)
    with the weights on edges j -> i; the flipped edge list gives a different result."""
    n = 6
    ei, w = _rand_graph(n, seed=3)
    # make A clearly asymmetric so that the row normalisation is not symmetric
    w = w * torch.linspace(0.1, 3.0, w.numel(), dtype=w.dtype)
    cei, cw = wsgcn_adjacency(ei, w, n, variant="code")
    a_hat = _dense(cei, cw, n)
    x = torch.randn(n, 4, dtype=torch.float64)
    conv = GCNConv(4, 3, normalize=False, add_self_loops=False).double()
    torch.nn.init.normal_(conv.bias)
    want = a_hat @ x @ conv.lin.weight.t() + conv.bias
    assert torch.allclose(conv(x, cei, cw), want)
    assert not torch.allclose(conv(x, cei.flip(0), cw), want)


def test_wsgcn_forward_matches_dense_equation(device):
    n, d = 7, 5
    ei, w = _rand_graph(n, seed=1, dtype=torch.float)
    ei, w = wsgcn_adjacency(ei, w, n, variant="code")
    model = WSGCN(d, hidden_channels=16, num_classes=4).to(device).eval()
    x = torch.randn(n, d, device=device)
    out = model(x, ei.to(device), w.to(device))
    a = _dense(ei, w, n).to(device)
    w1, b1 = model.conv1.lin.weight, model.conv1.bias
    w2, b2 = model.conv2.lin.weight, model.conv2.bias
    h = torch.relu(a @ x @ w1.t() + b1)
    want = torch.log_softmax(a @ h @ w2.t() + b2, -1)
    assert out.shape == (n, 4)
    assert torch.allclose(out, want, atol=1e-5)
    assert torch.allclose(out.exp().sum(-1), torch.ones(n, device=device), atol=1e-5)
    assert torch.allclose(model(x, ei.int().to(device), w.to(device)), out, atol=1e-6)


def test_wsgcn_repr_init_save_load_and_dropout():
    model = WSGCN(8, num_classes=21)
    assert str(model) == "WSGCN(8, 21, hidden_channels=16, dropout=0.3)"
    bound = 1 / 16**0.5
    assert model.conv1.lin.weight.abs().max() <= bound and model.conv1.bias.abs().max() <= bound
    glorot = WSGCN(8, init="glorot")
    assert (glorot.conv1.bias == 0).all()
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    other = WSGCN(8)
    other.load_state_dict(torch.load(buf))
    x = torch.randn(5, 8)
    ei = torch.tensor([[0, 1, 2], [1, 2, 3]])
    model.eval(), other.eval()
    assert torch.equal(model(x, ei), other(x, ei))
    # empty graph (no edges): only the biases propagate, no error
    out = model(x, torch.empty(2, 0, dtype=torch.long))
    assert out.shape == (5, 21) and torch.isfinite(out).all()
    model.train()
    assert not torch.equal(model(x, ei), model(x, ei))


def test_random_walk_transition_matches_dense_power():
    n = 9
    ei, w = _rand_graph(n, e=30, seed=4)
    ei = torch.cat([ei, ei.flip(0)], 1)
    w = torch.cat([w, w])
    ei, inv = torch.unique(ei, dim=1, return_inverse=True)
    w = torch.zeros(ei.size(1), dtype=w.dtype).scatter_reduce(
        0, inv, torch.cat([w[: w.numel() // 2]] * 2), "amax"
    )
    tei, tw = random_walk_transition(ei, w, n, beta=2.0, exp_times=2, top_k=None)
    a = _dense(ei, w.pow(2.0), n)
    a.fill_diagonal_(1.0)
    t = a / a.sum(1, keepdim=True)
    want = torch.linalg.matrix_power(t, 4)
    assert torch.allclose(_dense(tei, tw, n), want, atol=1e-10)
    # pruned: at most top_k entries per row, rows still sum to one
    pei, pw = random_walk_transition(ei, w, n, beta=2.0, exp_times=2, top_k=3)
    assert torch.bincount(pei[1], minlength=n).max() <= 3
    assert torch.allclose(_dense(pei, pw, n).sum(1), torch.ones(n, dtype=w.dtype))


def test_wsgcn_graph_builders():
    h, w = 6, 7
    x = torch.rand(h * w, 4)
    for method in ("affinity", "random_walk"):
        ei, ew = wsgcn_graph(
            x, (h, w), radius=2, method=method, exp_times=2, top_k=8, variant="code"
        )
        assert ei.size(0) == 2 and ew.numel() == ei.size(1)
        assert torch.allclose(_dense(ei, ew, h * w).sum(1), torch.ones(h * w), atol=1e-5)
    ei, ew = wsgcn_graph(x, (h, w), radius=2, variant="paper")
    assert torch.allclose(_dense(ei, ew, h * w).diagonal(), torch.ones(h * w))


def test_batched_model_with_one_image_equals_wsgcn():
    n, d = 10, 6
    ei, w = _rand_graph(n, seed=2, dtype=torch.float)
    ei, w = wsgcn_adjacency(ei, w, n, variant="code")
    x = torch.randn(n, d)
    batched = BatchedWSGCN(
        x, ei, w, torch.zeros(n, dtype=torch.long), seeds=[7], num_classes=5
    ).eval()
    ref = WSGCN(d, num_classes=5).eval()
    with torch.no_grad():
        ref.conv1.lin.weight.copy_(batched.w1[0].t())
        ref.conv1.bias.copy_(batched.b1[0])
        ref.conv2.lin.weight.copy_(batched.w2[0].t())
        ref.conv2.bias.copy_(batched.b2[0])
    assert torch.allclose(batched(), ref(x, ei, w), atol=1e-5)
    assert "num_graphs=1" in str(batched)


def _image_problem(h, w, seed, d=5, k=4):
    g = torch.Generator().manual_seed(seed)
    n = h * w
    x = torch.rand(n, d, generator=g)
    from pyg_wsss.graphs import gaussian_edge_weight, pixel_graph

    ei, ew = wsgcn_graph(x, (h, w), radius=2, variant="code")
    lap = pixel_graph(h, w, 2, shape="square")
    lw = gaussian_edge_weight(
        torch.rand(n, 3, generator=g), lap.pos, lap.edge_index, preset="wsgcn_code"
    )
    y = torch.randint(0, k, (n,), generator=g)
    y[torch.rand(n, generator=g) < 0.5] = 255
    return dict(x=x, ei=ei, ew=ew, y=y, lei=lap.edge_index, lw=lw, n=n)


def _fit(problems, seeds, steps=12, **kw):
    offs = [0]
    for p in problems[:-1]:
        offs.append(offs[-1] + p["n"])
    cat = lambda key: torch.cat([p[key] for p in problems])  # noqa: E731
    ei = torch.cat([p["ei"] + o for p, o in zip(problems, offs)], 1)
    lei = torch.cat([p["lei"] + o for p, o in zip(problems, offs)], 1)
    batch = torch.cat([torch.full((p["n"],), i) for i, p in enumerate(problems)])
    return fit_wsgcn(
        cat("x"),
        ei,
        cat("ew"),
        cat("y"),
        batch,
        seeds=seeds,
        lap_edge_index=lei,
        lap_edge_weight=cat("lw"),
        steps=steps,
        num_classes=4,
        **kw,
    )


@pytest.mark.parametrize("variable_sizes", [False, True])
def test_batch_of_four_equals_four_single_runs(variable_sizes):
    sizes = [(6, 7), (5, 5), (7, 4), (6, 6)] if variable_sizes else [(6, 6)] * 4
    problems = [_image_problem(h, w, seed=i) for i, (h, w) in enumerate(sizes)]
    seeds = [11, 12, 13, 14]
    batched = _fit(problems, seeds)
    singles = torch.cat([_fit([p], [s]) for p, s in zip(problems, seeds)])
    assert torch.allclose(batched, singles, atol=1e-5)
    # the code's loss variants too
    batched = _fit(problems[:2], seeds[:2], entropy_variant="code", laplacian_on="log_probs")
    singles = torch.cat(
        [
            _fit([p], [s], entropy_variant="code", laplacian_on="log_probs")
            for p, s in zip(problems[:2], seeds[:2])
        ]
    )
    assert torch.allclose(batched, singles, atol=1e-5)


def test_fit_is_reproducible_and_learns_labels():
    p = _image_problem(8, 8, seed=5)
    # two regions (left: class 1, right: class 2); noisy one-hot features; 30 % labelled
    y = torch.arange(8).repeat(8).ge(4).long() + 1
    p["x"] = torch.nn.functional.one_hot(y, 5).float() + 0.3 * torch.rand(64, 5)
    p["ei"], p["ew"] = wsgcn_graph(p["x"], (8, 8), radius=2, variant="code")
    p["y"] = torch.where(torch.rand(p["n"]) < 0.3, y, torch.full_like(y, 255))
    a = _fit([p], [3], steps=60)
    b = _fit([p], [3], steps=60)
    assert torch.equal(a, b)
    acc = (a.argmax(1) == y).float().mean()
    assert acc > 0.9
    c = _fit([p], [4], steps=60)
    assert not torch.equal(a, c)


def test_bad_input():
    with pytest.raises(ValueError):
        WSGCN(0)
    with pytest.raises(ValueError):
        WSGCN(4, dropout=1.5)
    with pytest.raises(ValueError):
        WSGCN(4, init="kaiming")
    ei = torch.tensor([[0, 1], [1, 0]])
    with pytest.raises(ValueError):
        wsgcn_adjacency(ei, None, 2, variant="sym")
    with pytest.raises(ValueError):
        wsgcn_adjacency(torch.tensor([[0, 3], [1, 0]]), None, 2)
    with pytest.raises(ValueError):
        wsgcn_adjacency(ei, torch.ones(3), 2)
    with pytest.raises(ValueError):
        random_walk_transition(ei, torch.tensor([1.0, -1.0]), 2)
    with pytest.raises(ValueError):
        wsgcn_graph(torch.rand(5, 3), (2, 3))
    with pytest.raises(ValueError):
        wsgcn_graph(torch.rand(6, 3), (2, 3), method="dense")
    x = torch.rand(4, 3)
    with pytest.raises(ValueError):
        fit_wsgcn(x, ei, torch.ones(2), torch.zeros(3, dtype=torch.long), steps=1)
    with pytest.raises(ValueError):
        fit_wsgcn(x, ei, torch.ones(2), torch.zeros(4, dtype=torch.long), seeds=[1, 2], steps=1)
    with pytest.raises(ValueError):
        BatchedWSGCN(x, ei, torch.ones(2), torch.tensor([0, 0, 1, 1]), seeds=[0])


def test_no_graph_breaks():
    model = WSGCN(4, num_classes=3).eval()
    x = torch.randn(5, 4)
    ei = torch.tensor([[0, 1, 2], [1, 2, 3]])
    explain = torch._dynamo.explain(model)(x, ei, torch.rand(3))
    assert explain.graph_break_count == 0


def test_wsgcn_graph_colour_kernel():
    h, w = 4, 4
    x = torch.zeros(h * w, 2)  # identical features: the affinity is 1 everywhere
    colour = torch.zeros(h * w, 3)
    colour[: h * w // 2] = 1.0  # top half white, bottom half black
    ei, ew = wsgcn_graph(x, (h, w), radius=2, variant="paper")
    ci, cw = wsgcn_graph(x, (h, w), radius=2, variant="paper", colour=colour, sigma_rgb=0.1)
    assert torch.equal(ei, ci)
    across = colour[ci[0], 0] != colour[ci[1], 0]
    assert (cw[across] < 1e-6).all() and torch.allclose(cw[~across], ew[~across])
    with pytest.raises(ValueError):
        wsgcn_graph(x, (h, w), colour=colour[:3])


@pytest.mark.parametrize(
    "config",
    [
        dict(),
        dict(balanced=False, entropy_variant="paper", laplacian_on="log_probs"),
        dict(beta_entropy=0.0),
        dict(beta_laplacian=0.0),
    ],
)
def test_precomputed_objective_equals_functional_objective(config):
    from pyg_wsss.nn.functional.laplacian import laplacian_matrix
    from pyg_wsss.nn.models.wsgcn import WSGCNLossConfig, WSGCNObjective, wsgcn_objective

    problems = [_image_problem(5, 6, seed=i) for i in range(3)]
    problems[1]["y"][problems[1]["y"] == 0] = 255  # an image without background seeds
    problems[2]["y"][:] = 2  # ... and one without unlabelled nodes or background
    offs = [0, 30, 60]
    y = torch.cat([p["y"] for p in problems])
    batch = torch.arange(3).repeat_interleave(30)
    lei = torch.cat([p["lei"] + o for p, o in zip(problems, offs)], 1)
    lap = laplacian_matrix(lei, torch.cat([p["lw"] for p in problems]), 90, torch.float64)
    cfg = WSGCNLossConfig(**config)
    logits = torch.randn(90, 4, dtype=torch.float64, requires_grad=True)
    lp = torch.log_softmax(logits, -1)
    want = wsgcn_objective(lp, y, batch, 3, lap, cfg)
    obj = WSGCNObjective(y, batch, 3, 4, lap, cfg).to("cpu", torch.float64)
    got = obj(lp)
    assert torch.allclose(got, want)
    (g1,) = torch.autograd.grad(got, logits)
    lp = torch.log_softmax(logits, -1)
    (g2,) = torch.autograd.grad(wsgcn_objective(lp, y, batch, 3, lap, cfg), logits)
    assert torch.allclose(g1, g2)
    with pytest.raises(ValueError, match="labels"):
        WSGCNObjective(torch.full((90,), 7), batch, 3, 4, lap, cfg)


def test_precomputed_objective_edge_cases():
    from pyg_wsss.nn.models.wsgcn import WSGCNLossConfig, WSGCNObjective

    cfg = WSGCNLossConfig(beta_laplacian=0.0)
    # image 1 has no label at all, image 2 exists in num_graphs but has no node
    y = torch.tensor([3, 1, 1, 9, 9, 9, 9, 1])
    batch = torch.tensor([0, 0, 0, 1, 1, 1, 0, 0])
    logits = torch.randn(8, 4, dtype=torch.float64, requires_grad=True)
    lp = torch.log_softmax(logits, -1)
    obj = WSGCNObjective(y, batch, 3, 4, None, cfg, ignore_index=9, background=1)
    obj.to("cpu", torch.float64)
    # reference with the functional losses and the same ignore_index / background
    from pyg_wsss.nn.functional import entropy_loss, partial_cross_entropy

    ref = partial_cross_entropy(lp, y, ignore_index=9, background=1, batch=batch, num_graphs=3,
                                reduction="sum", log_input=True)
    ref = ref + 10.0 * entropy_loss(lp, y, variant="code", ignore_index=9, batch=batch,
                                    num_graphs=3, reduction="sum", log_input=True)
    assert torch.allclose(obj(lp), ref, rtol=1e-12)
    # a -inf log-probability on an unlabelled node's class-0 entry stays finite
    lp2 = lp.detach().clone()
    lp2[3, 0] = -math.inf
    assert torch.isfinite(obj(lp2))
    with pytest.raises(ValueError, match="log_probs"):
        obj(lp[:, :3])
    with pytest.raises(ValueError, match="batch"):
        WSGCNObjective(y, batch, 1, 4, None, cfg, ignore_index=9)
    with pytest.raises(ValueError, match="background"):
        WSGCNObjective(y, batch, 3, 4, None, cfg, ignore_index=9, background=4)
    with pytest.raises(TypeError, match="labels"):
        WSGCNObjective(y.float(), batch, 3, 4, None, cfg)


def test_batched_dropout_one_gives_zero_hidden_not_nan():
    n, d = 10, 6
    ei, w = _rand_graph(n, seed=2, dtype=torch.float)
    ei, w = wsgcn_adjacency(ei, w, n, variant="code")
    model = BatchedWSGCN(
        torch.randn(n, d), ei, w, torch.zeros(n, dtype=torch.long), seeds=[1], dropout=1.0
    ).train()
    out = model()
    assert torch.isfinite(out).all()
    # with the hidden layer dropped, every node gets the bias-only distribution
    assert torch.allclose(out, torch.log_softmax(model.b2, -1).expand_as(out))
