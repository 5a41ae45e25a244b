"""fit_wsgcn / BatchedWSGCN: unsorted batch, NaN and missing edge weights, half precision
(issue 17)."""
import pytest
import torch

from pyg_wsss.graphs import gaussian_edge_weight, pixel_graph
from pyg_wsss.nn.models import BatchedWSGCN, fit_wsgcn, wsgcn_graph


def _problem(sizes=((4, 5), (5, 4)), k=4, d=5):
    xs, eis, ews, ys, leis, lws, batch = [], [], [], [], [], [], []
    off = 0
    for i, (h, w) in enumerate(sizes):
        g = torch.Generator().manual_seed(i)
        n = h * w
        x = torch.rand(n, d, generator=g)
        ei, ew = wsgcn_graph(x, (h, w), radius=2, variant="code")
        lap = pixel_graph(h, w, 2, shape="square")
        lw = gaussian_edge_weight(
            torch.rand(n, 3, generator=g), lap.pos, lap.edge_index, preset="wsgcn_code"
        )
        y = torch.randint(0, k, (n,), generator=g)
        y[torch.rand(n, generator=g) < 0.5] = 255
        xs.append(x), eis.append(ei + off), ews.append(ew), ys.append(y)
        leis.append(lap.edge_index + off), lws.append(lw)
        batch.append(torch.full((n,), i))
        off += n
    return dict(
        x=torch.cat(xs), edge_index=torch.cat(eis, 1), edge_weight=torch.cat(ews),
        labels=torch.cat(ys), batch=torch.cat(batch), lap_edge_index=torch.cat(leis, 1),
        lap_edge_weight=torch.cat(lws),
    )


def _interleave(batch):
    """A permutation interleaving the images that keeps each image's node order."""
    n = batch.numel()
    key = torch.empty(n)
    for b in batch.unique():
        idx = (batch == b).nonzero().view(-1)
        key[idx] = torch.arange(idx.numel(), dtype=torch.float) + 0.5 * float(b)
    return torch.argsort(key, stable=True)


def _permuted(p, perm):
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(perm.numel())
    q = dict(p)
    for key in ("x", "labels", "batch"):
        q[key] = p[key][perm]
    q["edge_index"], q["lap_edge_index"] = inv[p["edge_index"]], inv[p["lap_edge_index"]]
    return q


def test_fit_wsgcn_unsorted_batch_gives_the_permuted_sorted_result():
    p = _problem()
    ref = fit_wsgcn(**p, steps=15, num_classes=4, seeds=[3, 4])
    perm = _interleave(p["batch"])
    q = _permuted(p, perm)
    assert not bool((q["batch"][1:] >= q["batch"][:-1]).all())  # really unsorted
    out = fit_wsgcn(**q, steps=15, num_classes=4, seeds=[3, 4])
    assert torch.allclose(out, ref[perm], atol=1e-5)
    assert torch.equal(out.argmax(1), ref[perm].argmax(1))


def test_batched_wsgcn_unsorted_batch_eval_and_train():
    p = _problem()
    args = (p["x"], p["edge_index"], p["edge_weight"], p["batch"], [1, 2])
    perm = _interleave(p["batch"])
    q = _permuted(p, perm)
    ref = BatchedWSGCN(*args, num_classes=4)
    out = BatchedWSGCN(q["x"], q["edge_index"], q["edge_weight"], q["batch"], [1, 2], num_classes=4)
    for train in (False, True):
        ref.train(train), out.train(train)
        assert torch.allclose(out(), ref()[perm], atol=1e-6)


def test_batched_wsgcn_refuses_edges_across_images():
    p = _problem()
    ei = torch.cat([p["edge_index"], torch.tensor([[0], [p["x"].size(0) - 1]])], 1)
    ew = torch.cat([p["edge_weight"], torch.ones(1)])
    with pytest.raises(ValueError, match="edge_index"):
        BatchedWSGCN(p["x"], ei, ew, p["batch"], [0, 1])


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_fit_wsgcn_non_finite_edge_weight_is_named(bad):
    p = _problem()
    p["edge_weight"] = p["edge_weight"].clone()
    p["edge_weight"][3] = bad
    with pytest.raises(ValueError, match="edge_weight"):
        fit_wsgcn(**p, steps=2, num_classes=4)


def test_fit_wsgcn_edge_weight_none_means_ones():
    p = _problem(sizes=((3, 4),))
    ones = dict(p, edge_weight=torch.ones_like(p["edge_weight"]))
    none = dict(p, edge_weight=None)
    assert torch.equal(fit_wsgcn(**none, steps=3, num_classes=4),
                       fit_wsgcn(**ones, steps=3, num_classes=4))


def test_fit_wsgcn_negative_batch_and_seed_count_are_named():
    p = _problem()
    with pytest.raises(ValueError, match="batch"):
        fit_wsgcn(**dict(p, batch=p["batch"] - 1), steps=1, num_classes=4)
    with pytest.raises(ValueError, match="seeds"):
        fit_wsgcn(**p, seeds=[0], steps=1, num_classes=4)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_fit_wsgcn_half_precision_matches_float32(dtype):
    p = _problem(sizes=((3, 4),))
    ref = fit_wsgcn(**dict(p, x=p["x"].to(dtype).float()), steps=5, num_classes=4)
    out = fit_wsgcn(**dict(p, x=p["x"].to(dtype)), steps=5, num_classes=4)
    assert out.dtype == dtype and torch.isfinite(out).all()
    assert torch.allclose(out.float(), ref, atol=2e-2)
    model = BatchedWSGCN(p["x"].to(dtype), p["edge_index"], p["edge_weight"], p["batch"], [0])
    assert model().dtype == dtype and model.w1.dtype == torch.float32
