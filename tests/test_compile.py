"""The training path under ``torch.compile`` (issue 18): every loss of ``nn.functional`` and
one whole A2GNN and WSGCN training step trace without graph breaks
(``torch._dynamo.explain``), and a step reads nothing back to the host.

Full ``torch.compile`` runs (inductor) are slow on 2 cores: they are behind the opt-in
``compile`` marker (``pytest -m compile``)."""
from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch_geometric.data import Batch, Data

import pyg_wsss
import pyg_wsss.nn.functional as L
from pyg_wsss.graphs import gaussian_edge_weight, pixel_graph
from pyg_wsss.nn.functional.laplacian import laplacian_matrix
from pyg_wsss.nn.functional.multi_point import prepare_boxes
from pyg_wsss.nn.models.a2gnn import A2GNN, dropout_masks
from pyg_wsss.nn.models.wsgcn import (
    BatchedWSGCN,
    WSGCNLossConfig,
    WSGCNObjective,
    wsgcn_graph,
    wsgcn_train_step,
)
from pyg_wsss.pipelines import a2gnn as pipe

pytestmark = pytest.mark.usefixtures("one_thread")

H, W, K = 4, 5, 3
N = H * W


def _explain(fn, *args):
    torch._dynamo.reset()
    return torch._dynamo.explain(fn)(*args)


def _breaks(explanation) -> str:
    return "; ".join(
        f"{str(r.reason).splitlines()[0]} at "
        + " <- ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}" for f in r.user_stack[-2:])
        for r in explanation.break_reasons
    )


# ------------------------------------------------------------------------------- losses
def _loss_cases():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, K, generator=g)
    labels = torch.tensor([0, 1, 2, 255] * (N // 4))
    batch = torch.tensor([0] * 12 + [1] * 8)
    pg = pixel_graph(H, W, 1, shape="square")
    ei = pg.edge_index
    w = torch.rand(ei.size(1), generator=g)
    feats = torch.rand(N, 6, generator=g)
    boxes = prepare_boxes(N, torch.tensor([[0, 0, 2, 2], [1, 1, 4, 3]]), torch.tensor([1, 2]),
                          (H, W))
    points, owner = L.select_box_points(x, boxes)
    return {
        "partial_cross_entropy": (L.partial_cross_entropy, (x, labels), {}),
        "partial_cross_entropy-batch": (
            L.partial_cross_entropy, (x, labels),
            dict(batch=batch, num_graphs=2, reduction="sum", balanced=False)),
        "entropy_loss": (L.entropy_loss, (x, labels), dict(batch=batch, num_graphs=2)),
        "laplacian_loss": (L.laplacian_loss, (x, ei, w), dict(variant="paper")),
        "laplacian_loss-spmm": (L.laplacian_loss, (x, ei, w), dict(method="spmm")),
        "gated_crf_loss": (L.gated_crf_loss, (x, ei, w), dict(batch=batch, num_graphs=2)),
        "gated_crf_loss-edges": (L.gated_crf_loss, (x, ei, w), dict(method="edges")),
        "multi_point_loss": (L.multi_point_loss, (x, feats, boxes), dict(variant="paper")),
        "multi_point_loss-code": (L.multi_point_loss, (x, feats, boxes), dict(variant="code")),
        "select_box_points": (L.select_box_points, (x, boxes), {}),
        "consistency_check": (
            L.consistency_check, (feats, labels, boxes, None, points, owner, None),
            dict(threshold=0.5)),
        "affinity_loss": (L.affinity_loss, (torch.rand(ei.size(1), generator=g), ei, labels),
                          {}),
        "affinity_regularized_loss": (L.affinity_regularized_loss, (feats, ei, w), {}),
        "multilabel_focal_loss": (
            L.multilabel_focal_loss,
            (torch.randn(2, K, generator=g), torch.rand(2, K, generator=g)), {}),
    }


LOSSES = _loss_cases()


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_losses_trace_without_graph_breaks(name):
    fn, args, kwargs = LOSSES[name]
    explanation = _explain(lambda *a: fn(*a, **kwargs), *args)
    assert explanation.graph_break_count == 0, _breaks(explanation)
    assert explanation.graph_count == 1


def test_value_checks_still_run_eagerly_on_the_cpu():
    # moved behind the validation level, not removed
    with pytest.raises(ValueError, match="targets"):
        L.multilabel_focal_loss(torch.zeros(2, 2), torch.full((2, 2), 2.0))
    ei = pixel_graph(2, 2, 1, shape="square").edge_index
    with pytest.raises(ValueError, match="affinity"):
        L.affinity_loss(torch.full((ei.size(1),), 2.0), ei, torch.zeros(4, dtype=torch.long))
    with pyg_wsss.checks("cheap"):
        L.multilabel_focal_loss(torch.zeros(2, 2), torch.full((2, 2), 2.0))


# ------------------------------------------------------------------------- A2GNN step
def _a2gnn_problem(class_balanced=False, device="cpu"):
    g = torch.Generator().manual_seed(0)
    graphs, seeds, boxes, box_labels = [], [], [], []
    for k, (h, w) in enumerate([(6, 7), (5, 5)]):
        pg = pixel_graph(h, w, 2, shape="square")
        pg.x = F.normalize(torch.rand(h * w, 12, generator=g), p=1.0, dim=1)
        pg.edge_weight = torch.rand(pg.edge_index.size(1), generator=g)
        pg.colour = torch.randn(h * w, 3, generator=g)
        lab = torch.full((h * w,), 255)
        lab[:w] = 0
        lab[w * (h // 2): w * (h // 2) + 3] = 1 + k
        graphs.append(pg)
        seeds.append(lab)
        boxes.append(torch.tensor([[0, h // 2 - 1, 3, h - 1]]))
        box_labels.append(torch.tensor([1 + k]))
    cfg = pipe.A2GNNConfig(hidden_channels=8, stage1_epochs=1, stage2_epochs=1, crf_radius=2,
                           cc_threshold=0.5, class_balanced=class_balanced)
    inputs = pipe.prepare_a2gnn_inputs(graphs, cfg, boxes, box_labels, device)
    model = A2GNN(12, K, hidden_channels=8, num_graphs=2, seeds=[0, 1], dropout=cfg.dropout)
    model = model.to(device).train()
    gens = [torch.Generator(device=device).manual_seed(s) for s in (0, 1)]
    mask = dropout_masks([42, 25], 8, cfg.dropout, gens)
    return model, inputs, torch.cat(seeds).to(device), mask, cfg, gens


@contextlib.contextmanager
def _plain_edge_dot(monkeypatch):
    """AffinityAttentionConv's ``_EdgeDot`` as plain gathers (what the conv needs to trace;
    see test_a2gnn_step_traces_without_graph_breaks)."""
    import pyg_wsss.nn.conv.affinity_attention as aa

    class Plain:
        @staticmethod
        def apply(xn_src, xn_dst, src, dst):
            return (xn_dst.index_select(0, dst) * xn_src.index_select(0, src)).sum(-1)

    monkeypatch.setattr(aa, "_EdgeDot", Plain)
    yield


@pytest.mark.parametrize("stage2", [False, True])
def test_a2gnn_step_traces_without_graph_breaks(stage2):
    model, inputs, labels, mask, cfg, _ = _a2gnn_problem()
    explanation = _explain(
        lambda y, m: pipe.a2gnn_train_step(model, inputs, y, m, cfg, stage2), labels, mask
    )
    assert explanation.graph_break_count == 0, _breaks(explanation)


@pytest.mark.parametrize("class_balanced", [False, True])
@pytest.mark.parametrize("stage2", [False, True])
def test_a2gnn_step_outside_the_conv_has_no_graph_break(monkeypatch, stage2, class_balanced):
    model, inputs, labels, mask, cfg, _ = _a2gnn_problem(class_balanced)
    with _plain_edge_dot(monkeypatch):
        explanation = _explain(
            lambda y, m: pipe.a2gnn_train_step(model, inputs, y, m, cfg, stage2), labels, mask
        )
    assert explanation.graph_break_count == 0, _breaks(explanation)
    assert explanation.graph_count == 1


def test_a2gnn_adam_step_traces():
    model, inputs, labels, mask, cfg, _ = _a2gnn_problem()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    pipe.a2gnn_train_step(model, inputs, labels, mask, cfg, True)[0].backward()
    assert _explain(opt.step).graph_break_count == 0


# ------------------------------------------------------------------------- WSGCN step
def _wsgcn_problem(dtype=torch.float32, device="cpu"):
    g = torch.Generator().manual_seed(0)
    datas = []
    for k, (h, w) in enumerate([(6, 7), (5, 5)]):
        x = torch.rand(h * w, 6, generator=g)
        ei, ew = wsgcn_graph(x, (h, w), radius=2, variant="code")
        lap = pixel_graph(h, w, 2, shape="square")
        lw = gaussian_edge_weight(torch.rand(h * w, 3, generator=g), lap.pos, lap.edge_index,
                                  preset="wsgcn_code")
        y = torch.full((h * w,), 255)
        y[:w] = 0
        y[-3:] = 1 + k
        datas.append(Data(x=x, edge_index=ei, edge_weight=ew.float(), y=y,
                          lap_edge_index=lap.edge_index, lap_edge_weight=lw, num_nodes=h * w))
    b = Batch.from_data_list(datas).to(device)
    model = BatchedWSGCN(b.x.to(dtype), b.edge_index, b.edge_weight.to(dtype), b.batch, [3, 4],
                         16, 4, 0.3)
    lap = laplacian_matrix(b.lap_edge_index, b.lap_edge_weight, b.num_nodes, dtype=dtype)
    objective = WSGCNObjective(b.y, b.batch, 2, 4, lap, WSGCNLossConfig()).to(device, dtype)
    model.train()
    return model, objective


def test_wsgcn_step_traces_without_graph_breaks():
    model, objective = _wsgcn_problem()
    mask = model.dropout_mask()
    explanation = _explain(lambda m: wsgcn_train_step(model, objective, m), mask)
    assert explanation.graph_break_count == 0, _breaks(explanation)
    assert explanation.graph_count == 1


def test_wsgcn_traced_step_equals_the_eager_one():
    # the gather/scatter paths traced under compile against the sparse eager ones, float64
    model, objective = _wsgcn_problem(torch.float64)
    mask = model.dropout_mask()
    eager = wsgcn_train_step(model, objective, mask)
    grads = torch.autograd.grad(eager, list(model.parameters()))
    torch._dynamo.reset()
    traced = torch.compile(lambda m: wsgcn_train_step(model, objective, m), backend="eager",
                           fullgraph=True)(mask)
    assert torch.allclose(traced, eager, rtol=1e-12)
    for a, b in zip(torch.autograd.grad(traced, list(model.parameters())), grads):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------- host round trips
_HOST = {
    torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.cpu, torch.Tensor.numpy,
    torch.Tensor.__bool__, torch.Tensor.__int__, torch.Tensor.__float__,
    torch.Tensor.__index__,
}


class _HostReads(TorchFunctionMode):
    """Counts the calls that read a tensor back to the host (or copy it to the CPU)."""

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _HOST:
            self.calls.append(getattr(func, "__name__", str(func)))
        elif func is torch.Tensor.to:
            target = [a for a in (*args[1:], kwargs.get("device")) if a is not None]
            if any(isinstance(a, (str, torch.device)) and torch.device(a).type == "cpu"
                   and args[0].device.type != "cpu" for a in target):
                self.calls.append("to(cpu)")
        return func(*args, **kwargs)


def _a2gnn_steps(model, inputs, labels, cfg, gens, n, device=None):
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    for epoch in range(n):
        mask = dropout_masks([42, 25], 8, cfg.dropout, gens, device=device)
        loss, labels, _ = pipe.a2gnn_train_step(model, inputs, labels, mask, cfg, epoch > 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return labels


def test_a2gnn_step_reads_nothing_back_to_the_host():
    # "cheap" = what the default "auto" level does for GPU tensors; the optimiser step is
    # left out (Adam keeps its step counter on the host unless capturable=True)
    model, inputs, labels, mask, cfg, gens = _a2gnn_problem()
    _a2gnn_steps(model, inputs, labels, cfg, gens, 2)  # warm-up (caches)
    spy = _HostReads()
    with pyg_wsss.checks("cheap"), spy:
        for stage2 in (False, True):
            mask = dropout_masks([42, 25], 8, cfg.dropout, gens)
            loss, labels, removed = pipe.a2gnn_train_step(model, inputs, labels, mask, cfg,
                                                          stage2)
            loss.backward()
    assert spy.calls == [], spy.calls
    assert removed is not None and removed.dim() == 0


def test_wsgcn_step_reads_nothing_back_to_the_host():
    model, objective = _wsgcn_problem()
    wsgcn_train_step(model, objective, model.dropout_mask()).backward()  # warm-up
    spy = _HostReads()
    with pyg_wsss.checks("cheap"), spy:
        for _ in range(2):
            mask = model.dropout_mask()
            wsgcn_train_step(model, objective, mask).backward()
    assert spy.calls == [], spy.calls


def test_the_spy_sees_host_reads():
    spy = _HostReads()
    with spy:
        t = torch.ones(2)
        t.item() if t.numel() == 1 else t.sum().item()
        bool(t.any())
    assert spy.calls == ["item", "__bool__"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_training_steps_do_not_synchronise_on_cuda():
    dev = torch.device("cuda")
    model, inputs, labels, _, cfg, gens = _a2gnn_problem(device=dev)
    _a2gnn_steps(model, inputs, labels, cfg, gens, 2, dev)  # warm-up
    torch.cuda.set_sync_debug_mode("error")
    try:
        _a2gnn_steps(model, inputs, labels, cfg, gens, 2, dev)
        wmodel, objective = _wsgcn_problem(device=dev)
        for _ in range(2):
            wsgcn_train_step(wmodel, objective, wmodel.dropout_mask()).backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")


# ------------------------------------------------------------- full compile (opt-in)
@pytest.mark.compile
def test_compiled_wsgcn_step_matches_eager():
    model, objective = _wsgcn_problem()
    mask = model.dropout_mask()
    eager = wsgcn_train_step(model, objective, mask)
    torch._dynamo.reset()
    step = torch.compile(lambda m: wsgcn_train_step(model, objective, m), fullgraph=True)
    compiled = step(mask)
    compiled.backward()
    assert torch.allclose(compiled, eager, rtol=1e-5)


@pytest.mark.compile
def test_compiled_a2gnn_step_matches_eager(monkeypatch):
    model, inputs, labels, mask, cfg, _ = _a2gnn_problem()
    eager = pipe.a2gnn_train_step(model, inputs, labels, mask, cfg, True)[0]
    torch._dynamo.reset()
    with _plain_edge_dot(monkeypatch):
        step = torch.compile(
            lambda y, m: pipe.a2gnn_train_step(model, inputs, y, m, cfg, True), fullgraph=True
        )
        compiled = step(labels, mask)[0]
    compiled.backward()
    assert torch.allclose(compiled, eager, rtol=1e-4)
