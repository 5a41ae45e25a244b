"""Bad-input matrix of pyg_wsss.ops: CSR layout, SpMM / SDDMM and fused edge attention."""
import pytest
import torch
from badinput_matrix import (
    Spec,
    check_bad,
    check_ok,
    check_runs,
    edge_index_cases,
    feature_cases,
    merge,
    parametrize,
    put,
    weight_cases,
)

from pyg_wsss import ops
from pyg_wsss.graphs import pixel_graph

N = 12
NAN = float("nan")


def _graph():
    return pixel_graph(3, 4, 1, shape="square").edge_index


def _x(d=5, seed=0):
    return torch.randn(N, d, generator=torch.Generator().manual_seed(seed))


def _csr():
    return ops.to_csr(_graph(), N, cache=False)


EMPTY_W = lambda kw: dict(kw, edge_index=torch.empty(2, 0, dtype=torch.long),  # noqa: E731
                          edge_weight=torch.zeros(0))


def _specs():
    specs = []
    bad, ok = edge_index_cases("edge_index", lambda kw: N)
    bad += [("num_nodes", put("num_nodes", -2), "num_nodes")]
    specs.append(Spec(
        "to_csr", lambda **kw: ops.to_csr(**kw, cache=False).matrix(
            torch.arange(kw["edge_index"].size(1), dtype=torch.float)),
        lambda: dict(edge_index=_graph(), num_nodes=N), bad, ok,
        runs=[("empty", put("edge_index", torch.empty(2, 0, dtype=torch.long)))],
    ))
    bad, ok = merge(edge_index_cases("edge_index", lambda kw: N), weight_cases("edge_weight"),
                    feature_cases("x", nan=False))
    bad += [("x-rows", put("x", lambda x, kw: x[1:]), "x")]
    specs.append(Spec(
        "spmm", ops.spmm,
        lambda: dict(edge_index=_graph(), edge_weight=torch.rand(_graph().size(1)), x=_x()),
        bad, ok, runs=[("empty", EMPTY_W)],
    ))
    bad, ok = merge(feature_cases("a", nan=False), feature_cases("b", nan=False))
    bad += [("csr", put("csr", _graph()), "csr"), ("a-rows", put("a", lambda a, kw: a[1:]), "a")]
    specs.append(Spec("sddmm", ops.sddmm, lambda: dict(csr=_csr(), a=_x(), b=_x(seed=1)),
                      bad, ok))
    e = _graph()
    bad = [("row-float", put("row", lambda r, kw: r.float()), "row"),
           ("row-range", put("row", lambda r, kw: r.index_fill(0, torch.tensor([0]), N)), "row"),
           ("col-negative", put("col", lambda c, kw: c.index_fill(0, torch.tensor([0]), -1)),
            "col"),
           ("value-length", put("value", lambda v, kw: v[1:]), "value"),
           ("value-int", put("value", lambda v, kw: v.long()), "value"),
           ("value-nan", put("value", lambda v, kw: v.index_fill(0, torch.tensor([0]), NAN)),
            "value")]
    ok = [("row-int32", put("row", lambda r, kw: r.int())),
          ("value-noncontig", put("value", lambda v, kw: torch.stack([v, v], 1)[:, 0]))]
    specs.append(Spec(
        "csr_matrix", ops.csr_matrix,
        lambda: dict(row=e[1].clone(), col=e[0].clone(), value=torch.rand(e.size(1)),
                     size=(N, N)), bad, ok,
    ))
    a = ops.csr_matrix(e[1], e[0], torch.rand(e.size(1)), (N, N))
    bad, ok = feature_cases("x", nan=False)
    bad += [("a-dense", put("a", a.to_dense()), "a"),
            ("a_t-shape", put("a_t", ops.csr_matrix(e[1], e[0], torch.rand(e.size(1)),
                                                   (N, N + 1))), "a_t"),
            ("x-dtype", put("x", lambda x, kw: x.double()), "x")]
    a_t = ops.csr_matrix(e[0], e[1], a.to_sparse_coo().coalesce().values(), (N, N))
    specs.append(Spec("fixed_spmm", ops.fixed_spmm, lambda: dict(a=a, a_t=a_t, x=_x()), bad, ok))
    bad, ok = merge(edge_index_cases("edge_index", lambda kw: N), weight_cases("edge_weight"),
                    feature_cases("x"))
    bad += [("temperature-length", put("temperature", torch.ones(N - 1)), "temperature"),
            ("edge_mask-float", put("edge_mask", lambda m, kw: m.float()), "edge_mask"),
            ("edge_mask-length", put("edge_mask", lambda m, kw: m[1:]), "edge_mask"),
            ("query-rows", put("query", torch.randn(N - 1, 5)), "query"),
            ("score", put("score", "l2"), "score"),
            ("negative", put("negative", "abs"), "negative")]
    ok += [("temperature-tensor", put("temperature", torch.tensor(0.5)))]
    specs.append(Spec(
        "edge_attention", ops.edge_attention,
        lambda: dict(x=_x(), edge_index=_graph(), temperature=0.5,
                     edge_weight=torch.rand(_graph().size(1)), edge_scale=2.0,
                     edge_mask=torch.ones(_graph().size(1), dtype=torch.bool)),
        bad, ok, runs=[("empty", lambda kw: dict(kw, edge_index=torch.empty(2, 0).long(),
                                                 edge_weight=torch.zeros(0), edge_mask=None))],
    ))
    csr = _csr()
    bad = [("csr", put("csr", _graph()), "csr"),
           ("logits-length", put("logits", lambda v, kw: v[1:]), "logits"),
           ("logits-int", put("logits", lambda v, kw: v.long()), "logits"),
           ("logits-2d", put("logits", lambda v, kw: v.view(1, -1)), "logits")]
    ok = [("logits-noncontig", put("logits", lambda v, kw: torch.stack([v, v], 1)[:, 0]))]
    specs.append(Spec("edge_softmax", ops.edge_softmax,
                      lambda: dict(csr=csr, logits=torch.randn(csr.num_edges)), bad, ok))
    return specs


SPECS = _specs()
BAD, OK, RUNS = parametrize("ops", SPECS)


@pytest.mark.parametrize("spec,mutate,match", BAD)
def test_bad_input_is_named(spec, mutate, match):
    check_bad(spec, mutate, match)


@pytest.mark.parametrize("spec,mutate", OK)
def test_accepted_variant_gives_the_canonical_result(spec, mutate):
    check_ok(spec, mutate)


@pytest.mark.parametrize("spec,mutate", RUNS)
def test_edge_case_runs_finite(spec, mutate):
    check_runs(spec, mutate)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("name", ["spmm", "edge_attention"])
def test_low_precision_matches_float32(name, dtype):
    e, w = _graph(), torch.rand(_graph().size(1), generator=torch.Generator().manual_seed(2))
    x32 = _x().to(dtype).float()
    fn = {"spmm": lambda x: ops.spmm(e, w, x),
          "edge_attention": lambda x: ops.edge_attention(x, e, temperature=0.5, edge_weight=w,
                                                         edge_scale=2.0)}[name]
    ref, out = fn(x32), fn(x32.to(dtype))
    assert out.dtype == dtype and torch.isfinite(out).all()
    tol = 2e-2 if dtype == torch.float16 else 6e-2
    assert (out.float() - ref).abs().max() <= tol * ref.abs().max().clamp(min=1)
