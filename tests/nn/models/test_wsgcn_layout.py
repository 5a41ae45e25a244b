"""WSGCN after the split of ``nn/models/wsgcn.py`` (issue 18): the old import paths, the
adjacency on PyG's utilities against the former sparse-COO construction, and ``fit_wsgcn``
with a whole :class:`WSGCNConfig` against the former keyword form."""
import math

import pytest
import torch

from pyg_wsss.graphs import pixel_graph

pytestmark = pytest.mark.usefixtures("one_thread")


def test_old_import_paths_still_work():
    import pyg_wsss.graphs.wsgcn as graphs
    import pyg_wsss.nn.functional.wsgcn_objective as objective
    import pyg_wsss.nn.models.wsgcn as old
    import pyg_wsss.pipelines.wsgcn as training
    from pyg_wsss.nn.models import fit_wsgcn, random_walk_transition, wsgcn_adjacency

    assert old.wsgcn_adjacency is graphs.wsgcn_adjacency is wsgcn_adjacency
    assert old.wsgcn_graph is graphs.wsgcn_graph
    assert old.random_walk_transition is graphs.random_walk_transition is random_walk_transition
    assert old.WSGCNObjective is objective.WSGCNObjective
    assert old.WSGCNLossConfig is objective.WSGCNLossConfig
    assert old.wsgcn_objective is objective.wsgcn_objective
    assert old.fit_wsgcn is training.fit_wsgcn is fit_wsgcn
    assert old.wsgcn_train_step is training.wsgcn_train_step
    with pytest.raises(AttributeError):
        old.no_such_name  # noqa: B018


def _former_adjacency(edge_index, edge_weight, n, variant):
    """The construction before issue 18 (torch.sparse COO), kept as the reference."""
    src, dst = edge_index[0].long(), edge_index[1].long()
    a = torch.sparse_coo_tensor(torch.stack([dst, src]), edge_weight, (n, n),
                                check_invariants=False).coalesce()
    if variant == "code":
        at = a.t().coalesce()
        idx = torch.cat([a.indices(), at.indices()], 1)
        val = torch.cat([a.values(), at.values()])
        key = idx[0] * n + idx[1]
        uniq, inv = torch.unique(key, return_inverse=True)
        sym = val.new_full((uniq.numel(),), -math.inf).scatter_reduce(0, inv, val, "amax")
        a = torch.sparse_coo_tensor(torch.stack([uniq // n, uniq % n]), sym, (n, n)).coalesce()
    nodes = torch.arange(n)
    eye = torch.sparse_coo_tensor(torch.stack([nodes, nodes]), torch.ones(n, dtype=a.dtype),
                                  (n, n))
    a = (a + eye).coalesce()
    (rows, cols), val = a.indices(), a.values()
    if variant == "code":
        deg = val.new_zeros(n).index_add(0, rows, val)
        inv_deg = deg.reciprocal()
        inv_deg = torch.where(torch.isfinite(inv_deg), inv_deg, torch.zeros_like(inv_deg))
        val = val * inv_deg[rows]
    return torch.stack([cols, rows]), val


@pytest.mark.parametrize("variant", ["paper", "code"])
@pytest.mark.parametrize("case", ["window", "directed-dups-loops", "isolated", "empty"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adjacency_on_pyg_utilities_equals_the_former_construction(variant, case, dtype):
    from pyg_wsss.graphs.wsgcn import wsgcn_adjacency

    g = torch.Generator().manual_seed(7)
    n = 20
    ei = pixel_graph(4, 5, 1, shape="square").edge_index
    if case == "directed-dups-loops":
        keep = torch.rand(ei.size(1), generator=g) < 0.6  # asymmetric pattern
        ei = torch.cat([ei[:, keep], ei[:, :9], torch.arange(5).repeat(2, 1)], 1)
        ei = ei[:, torch.randperm(ei.size(1), generator=g)]
    elif case == "isolated":
        ei = ei[:, (ei < 15).all(0)]
    elif case == "empty":
        ei = ei[:, :0]
    w = torch.rand(ei.size(1), generator=g, dtype=dtype)
    out_ei, out_w = wsgcn_adjacency(ei, w, n, variant=variant)
    ref_ei, ref_w = _former_adjacency(ei, w, n, variant)
    assert torch.equal(out_ei, ref_ei)
    assert out_w.dtype == ref_w.dtype and torch.equal(out_w, ref_w)


def _problem():
    from pyg_wsss.graphs import gaussian_edge_weight
    from pyg_wsss.graphs.wsgcn import wsgcn_graph

    g = torch.Generator().manual_seed(0)
    h, w = 5, 6
    x = torch.rand(h * w, 4, generator=g)
    ei, ew = wsgcn_graph(x, (h, w), radius=2, variant="code")
    lap = pixel_graph(h, w, 2, shape="square")
    lw = gaussian_edge_weight(torch.rand(h * w, 3, generator=g), lap.pos, lap.edge_index,
                              preset="wsgcn_code")
    y = torch.full((h * w,), 255)
    y[:w], y[-4:] = 0, 2
    return dict(x=x, edge_index=ei, edge_weight=ew.float(), labels=y,
                lap_edge_index=lap.edge_index, lap_edge_weight=lw)


def test_fit_wsgcn_takes_the_config_whole():
    from pyg_wsss.nn.models.wsgcn import fit_wsgcn
    from pyg_wsss.pipelines.wsgcn import WSGCNConfig

    p = _problem()
    cfg = WSGCNConfig(steps=6, lr=0.02, beta_entropy=5.0, hidden_channels=8, dropout=0.2,
                      laplacian_on="log_probs", balanced=False)
    whole = fit_wsgcn(**p, config=cfg, num_classes=3)
    keywords = fit_wsgcn(**p, steps=6, lr=0.02, beta_entropy=5.0, hidden_channels=8,
                         dropout=0.2, laplacian_on="log_probs", balanced=False, num_classes=3)
    assert torch.equal(whole, keywords)
    # keywords override the config
    assert torch.equal(fit_wsgcn(**p, config=WSGCNConfig(steps=99), steps=6, lr=0.02,
                                 beta_entropy=5.0, hidden_channels=8, dropout=0.2,
                                 laplacian_on="log_probs", balanced=False, num_classes=3),
                       whole)
    with pytest.raises(TypeError, match="stride"):
        fit_wsgcn(**p, stride=2, num_classes=3)
    with pytest.raises(ValueError, match="laplacian_on"):
        fit_wsgcn(**p, laplacian_on="nope", num_classes=3)
    with pytest.raises(TypeError, match="config argument is a WSGCNConfig, got dict"):
        fit_wsgcn(**p, config={"steps": 6}, num_classes=3)  # a dict is not the config
