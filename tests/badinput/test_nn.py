"""Bad-input matrix of pyg_wsss.nn: losses (functional), layers (conv) and models (issue 17)."""
import pytest
import torch
from badinput_matrix import (
    Spec,
    check_bad,
    check_ok,
    check_runs,
    edge_index_cases,
    feature_cases,
    index_cases,
    label_cases,
    merge,
    parametrize,
    put,
    weight_cases,
)

import pyg_wsss.nn as nn_pkg
import pyg_wsss.nn.conv as conv_pkg
import pyg_wsss.nn.functional as F
import pyg_wsss.nn.models as models_pkg
from pyg_wsss.graphs import pixel_graph

N, K, H, W = 12, 4, 3, 4  # a 3 x 4 grid, 4 classes


def _graph():
    return pixel_graph(H, W, 1, shape="square").edge_index  # 8-neighbourhood, 58 edges


def _x(d=K, seed=0):
    return torch.randn(N, d, generator=torch.Generator().manual_seed(seed))


def _labels():
    y = torch.tensor([0, 1, 255, 2, 0, 255, 3, 1, 255, 0, 2, 255])
    return y


def _batch():
    return torch.tensor([0] * 6 + [1] * 6)


def _two_graph_edges():
    e = _graph()
    keep = (e < 6).all(0) | (e >= 6).all(0)  # no edge across the two halves
    return e[:, keep]


def _empty_edges(kw):
    return torch.empty(2, 0, dtype=torch.long)


EMPTY = put("edge_index", lambda e, kw: _empty_edges(kw))


def NAN_CASE(name):  # noqa: N802 - a case factory
    return (f"{name}-nan", put(name, lambda x, kw: x.float().index_fill(
        0, torch.tensor([0]), float("nan"))), name)


def _loss_specs():
    specs = []
    # partial_cross_entropy ----------------------------------------------------------------
    bad, ok = merge(
        feature_cases("input", nan=False),
        label_cases("labels", K),
        index_cases("batch", lambda kw: kw["num_graphs"]),
    )
    bad += [NAN_CASE("input"),
            ("background", put("background", K), "background"),
            ("reduction", put("reduction", "avg"), "reduction"),
            ("num_graphs", put("num_graphs", -1), "num_graphs")]
    specs.append(Spec(
        "partial_cross_entropy", F.partial_cross_entropy,
        lambda: dict(input=_x(), labels=_labels(), batch=_batch(), num_graphs=2), bad, ok,
        runs=[("empty", lambda kw: dict(input=torch.zeros(0, K), labels=torch.zeros(0).long()))],
    ))
    # entropy_loss -----------------------------------------------------------------------
    bad, ok = merge(
        feature_cases("input", nan=False),
        index_cases("batch", lambda kw: kw["num_graphs"]),
    )
    bad += [NAN_CASE("input"),
            ("labels_or_mask-float", put("labels_or_mask", lambda y, kw: y.float()),
             "labels_or_mask"),
            ("labels_or_mask-length", put("labels_or_mask", lambda y, kw: y[1:]),
             "labels_or_mask"),
            ("variant", put("variant", "both"), "variant")]
    ok += [("labels_or_mask-int32", put("labels_or_mask", lambda y, kw: y.int()))]
    specs.append(Spec(
        "entropy_loss", F.entropy_loss,
        lambda: dict(input=_x(), labels_or_mask=_labels(), batch=_batch(), num_graphs=2),
        bad, ok, runs=[("all-labelled", put("labels_or_mask", lambda y, kw: y.clamp(max=3)))],
    ))
    # laplacian_loss (both methods) ------------------------------------------------------
    for method in ("edges", "spmm"):
        bad, ok = merge(
            feature_cases("y", nan=False),
            edge_index_cases("edge_index", lambda kw: N),
            weight_cases("edge_weight"),
            index_cases("batch", lambda kw: kw["num_graphs"]),
        )
        bad += [NAN_CASE("y"), ("num_nodes", put("num_nodes", N + 1), "num_nodes"),
                ("method", put("method", "dense"), "method")]
        specs.append(Spec(
            f"laplacian_loss[{method}]", F.laplacian_loss,
            lambda method=method: dict(
                y=_x(), edge_index=_two_graph_edges(),
                edge_weight=torch.rand(_two_graph_edges().size(1)), batch=_batch(),
                num_graphs=2, method=method),
            bad, ok, runs=[("empty", lambda kw: dict(kw, edge_index=_empty_edges(kw),
                                                     edge_weight=torch.zeros(0)))],
        ))
    # laplacian_matrix -------------------------------------------------------------------
    bad, ok = merge(edge_index_cases("edge_index", lambda kw: N), weight_cases("edge_weight"))
    bad += [("num_nodes", put("num_nodes", -1), "num_nodes"),
            ("num_nodes-float", put("num_nodes", 3.5), "num_nodes"),
            ("dtype", put("dtype", torch.long), "dtype")]
    specs.append(Spec(
        "laplacian_matrix", F.laplacian_matrix,
        lambda: dict(edge_index=_graph(), edge_weight=torch.rand(_graph().size(1)), num_nodes=N),
        bad, ok, runs=[("empty", lambda kw: dict(kw, edge_index=_empty_edges(kw),
                                                 edge_weight=torch.zeros(0)))],
    ))
    # laplacian_quadratic_form -----------------------------------------------------------
    lap = F.laplacian_matrix(_two_graph_edges(), None, N)
    bad, ok = merge(feature_cases("y", nan=False),
                    index_cases("batch", lambda kw: kw["num_graphs"]))
    bad += [NAN_CASE("y"), ("lap-dense", put("lap", lap.to_dense()), "lap"),
            ("lap-size", put("lap", F.laplacian_matrix(_graph(), None, N + 1)), "lap")]
    specs.append(Spec(
        "laplacian_quadratic_form", F.laplacian_quadratic_form,
        lambda: dict(lap=lap, y=_x(), batch=_batch(), num_graphs=2), bad, ok,
    ))
    # gated_crf_loss (both methods) ------------------------------------------------------
    for method in ("spmm", "edges"):
        bad, ok = merge(
            feature_cases("input"),
            edge_index_cases("edge_index", lambda kw: N),
            weight_cases("kernel"),
            index_cases("batch", lambda kw: kw["num_graphs"]),
        )
        specs.append(Spec(
            f"gated_crf_loss[{method}]", F.gated_crf_loss,
            lambda method=method: dict(
                input=_x(), edge_index=_two_graph_edges(),
                kernel=torch.rand(_two_graph_edges().size(1)), batch=_batch(), num_graphs=2,
                method=method),
            bad, ok, runs=[("empty", lambda kw: dict(kw, edge_index=_empty_edges(kw),
                                                     kernel=torch.zeros(0)))],
        ))
    # gated_crf_kernel -------------------------------------------------------------------
    g = pixel_graph(H, W, 1, shape="square")
    bad, ok = merge(feature_cases("colour"), edge_index_cases("edge_index", lambda kw: N))
    bad += [("pos-rank", put("pos", lambda p, kw: p.reshape(-1)), "pos"),
            ("pos-nan", put("pos", lambda p, kw: p.index_fill(0, torch.tensor([0]), float("nan"))),
             "pos"),
            ("pos-rows", put("pos", lambda p, kw: p[1:]), "pos")]
    ok += [("pos-int", put("pos", lambda p, kw: p.long()))]
    bad += [("sigma_rgb", put("sigma_rgb", -1.0), "sigma_rgb")]
    specs.append(Spec(
        "gated_crf_kernel", F.gated_crf_kernel,
        lambda: dict(colour=torch.rand(N, 3), pos=g.pos.clone(), edge_index=g.edge_index.clone()),
        bad, ok, runs=[("empty", EMPTY)],
    ))
    # multi point: select_box_points, multi_point_loss, consistency_check --------------------
    boxes = torch.tensor([[0, 0, 2, 1], [1, 1, 3, 2]])
    box_labels = torch.tensor([1, 2])

    def box_cases():
        bad = [
            ("boxes-shape", put("boxes", lambda b, kw: b[:, :3]), "boxes"),
            ("boxes-float", put("boxes", lambda b, kw: b.float()), "boxes"),
            ("boxes-outside", put("boxes", torch.tensor([[0, 0, W, 1], [1, 1, 3, 2]])), "boxes"),
            ("boxes-negative", put("boxes", torch.tensor([[-1, 0, 2, 1], [1, 1, 3, 2]])),
             "boxes"),
            ("boxes-empty-box", put("boxes", torch.tensor([[2, 0, 1, 1], [1, 1, 3, 2]])),
             "boxes"),
            ("box_labels-length", put("box_labels", torch.tensor([1])), "box_labels"),
            ("box_labels-float", put("box_labels", lambda b, kw: b.float()), "box_labels"),
            ("box_labels-negative", put("box_labels", torch.tensor([1, -1])), "box_labels"),
            ("box_batch-range", put("box_batch", torch.tensor([0, 1])), "box_batch"),
            ("box_batch-negative", put("box_batch", torch.tensor([0, -1])), "box_batch"),
            ("grid_size", put("grid_size", (H, W + 1)), "grid_size"),
        ]
        ok = [("boxes-int32", put("boxes", lambda b, kw: b.int())),
              ("boxes-noncontig", put("boxes", lambda b, kw: b.t().contiguous().t())),
              ("grid_size-tensor", put("grid_size", torch.tensor([H, W])))]
        return bad, ok

    bad, ok = merge(box_cases(), feature_cases("input"))
    bad += [("box_labels-range", put("box_labels", torch.tensor([1, K])), "box_labels")]
    specs.append(Spec(
        "select_box_points", F.select_box_points,
        lambda: dict(input=_x(), boxes=boxes, box_labels=box_labels, grid_size=(H, W)),
        bad, ok,
        runs=[("no-box", lambda kw: dict(kw, boxes=torch.zeros(0, 4).long(),
                                         box_labels=torch.zeros(0).long()))],
    ))
    bad, ok = merge(box_cases(), feature_cases("input"), feature_cases("features"))
    bad += [("box_labels-range", put("box_labels", torch.tensor([1, K])), "box_labels"),
            ("features-rows", put("features", lambda f, kw: f[1:]), "features")]
    specs.append(Spec(
        "multi_point_loss", F.multi_point_loss,
        lambda: dict(input=_x(), features=_x(6, seed=1).abs(), boxes=boxes,
                     box_labels=box_labels, grid_size=(H, W)),
        bad, ok,
        runs=[("no-box", lambda kw: dict(kw, boxes=torch.zeros(0, 4).long(),
                                         box_labels=torch.zeros(0).long()))],
    ))
    points, point_box = F.select_box_points(_x(), boxes, box_labels, (H, W))
    bad, ok = merge(box_cases(), feature_cases("features"),
                    index_cases("points", lambda kw: N, length=False),
                    index_cases("point_box", lambda kw: 2, length=False))
    bad += [("points-length", put("points", lambda p, kw: p[1:]), "points"),
            ("labels-length", put("labels", lambda y, kw: y[1:]), "labels"),
            ("labels-float", put("labels", lambda y, kw: y.float()), "labels"),
            ("threshold", put("threshold", 2.0), "threshold")]
    specs.append(Spec(
        "consistency_check", F.consistency_check,
        lambda: dict(features=_x(6, seed=1), labels=torch.tensor([1, 1, 2, 2] * 3),
                     boxes=boxes, box_labels=box_labels, points=points.clone(),
                     point_box=point_box.clone(), grid_size=(H, W), threshold=0.5),
        bad, ok,
    ))
    # affinity losses --------------------------------------------------------------------
    e = _graph()
    bad, ok = merge(weight_cases("affinity"), edge_index_cases("edge_index", lambda kw: N))
    # labels: any class id is valid (no K here); negative ones are not, and N = len(labels)
    bad += [("labels-float", put("labels", lambda y, kw: y.float()), "labels"),
            ("labels-negative", put("labels", lambda y, kw: y.index_fill(0, torch.tensor([0]), -2)),
             "labels"),
            ("labels-length", put("labels", lambda y, kw: y[1:]), "edge_index")]
    ok += [("labels-int32", put("labels", lambda y, kw: y.int()))]
    bad += [("affinity-range", put("affinity", lambda a, kw: a + 1.5), "affinity")]
    specs.append(Spec(
        "affinity_loss", F.affinity_loss,
        lambda: dict(affinity=torch.rand(e.size(1)), edge_index=e.clone(), labels=_labels()),
        bad, ok,
    ))
    bad, ok = merge(feature_cases("features"), edge_index_cases("edge_index", lambda kw: N),
                    weight_cases("kernel"))
    bad += [("normalization", put("normalization", "all"), "normalization")]
    specs.append(Spec(
        "affinity_regularized_loss", F.affinity_regularized_loss,
        lambda: dict(features=_x(6), edge_index=e.clone(), kernel=torch.rand(e.size(1))),
        bad, ok, runs=[("empty", lambda kw: dict(kw, edge_index=_empty_edges(kw),
                                                 kernel=torch.zeros(0)))],
    ))
    # focal -------------------------------------------------------------------------------
    bad, ok = merge(feature_cases("logits"))
    bad += [("targets-shape", put("targets", lambda t, kw: t[:, 1:]), "targets"),
            ("targets-range", put("targets", lambda t, kw: t * 2), "targets"),
            ("gamma", put("gamma", -1.0), "gamma")]
    ok += [("targets-int", put("targets", lambda t, kw: t.long()))]
    specs.append(Spec(
        "multilabel_focal_loss", F.multilabel_focal_loss,
        lambda: dict(logits=torch.randn(3, 5, generator=torch.Generator().manual_seed(3)),
                     targets=torch.tensor([[1.0, 0, 0, 1, 0], [0, 1, 0, 0, 0], [0, 0, 0, 0, 1]])),
        bad, ok,
    ))
    return specs


# --------------------------------------------------------------------------------------------
# layers
# --------------------------------------------------------------------------------------------
def _aac(fused, dropout=0.0, num_graphs=1, **kw):
    torch.manual_seed(0)
    conv = conv_pkg.AffinityAttentionConv(w_init=0.7, fused=fused, dropout=dropout,
                                          num_graphs=num_graphs)
    return conv(**kw)


def _layer_specs():
    specs = []
    for fused in (True, False):
        bad, ok = merge(feature_cases("x"), edge_index_cases("edge_index", lambda kw: N),
                        weight_cases("edge_weight"),
                        index_cases("batch", lambda kw: 2))
        specs.append(Spec(
            f"AffinityAttentionConv[fused={fused}]",
            lambda fused=fused, **kw: _aac(fused, num_graphs=2, **kw),
            lambda: dict(x=_x(6), edge_index=_graph(), edge_weight=torch.rand(_graph().size(1)),
                         batch=_batch()),
            bad, ok,
            runs=[("empty", lambda kw: dict(kw, edge_index=_empty_edges(kw),
                                            edge_weight=torch.zeros(0))),
                  ("zero-features", put("x", torch.zeros(N, 6)))],
        ))
    bad = [("num_graphs", lambda kw: dict(kw, num_graphs=0), "num_graphs"),
           ("dropout", lambda kw: dict(kw, dropout=1.5), "dropout"),
           ("beta", lambda kw: dict(kw, beta=-1.0), "beta"),
           ("negative_cosine", lambda kw: dict(kw, negative_cosine="abs"), "negative_cosine")]
    specs.append(Spec("AffinityAttentionConv()", conv_pkg.AffinityAttentionConv, dict, bad))

    # co_attention / CoAttentionConv -----------------------------------------------------
    def qkv():
        g = torch.Generator().manual_seed(5)
        return dict(q=torch.randn(2, 6, 3, generator=g), k=torch.randn(2, 5, 3, generator=g),
                    v=torch.randn(2, 5, 4, generator=g))

    bad, ok = merge(feature_cases("q", ndim=3), feature_cases("k", ndim=3),
                    feature_cases("v", ndim=3))
    bad += [("attention", put("attention", "flash"), "attention"),
            ("v-rows", put("v", lambda v, kw: v[:, 1:]), "v")]
    specs.append(Spec("co_attention", conv_pkg.co_attention, qkv, bad, ok))

    def co_conv(**kw):
        torch.manual_seed(0)
        return conv_pkg.CoAttentionConv(4)(**kw)

    bad, ok = merge(feature_cases("x", ndim=4),
                    edge_index_cases("edge_index", lambda kw: kw["x"].size(0)))
    bad += [("x-channels", put("x", torch.randn(3, 5, 2, 2)), "x")]
    specs.append(Spec(
        "CoAttentionConv", co_conv,
        lambda: dict(x=torch.randn(3, 4, 2, 2, generator=torch.Generator().manual_seed(6)),
                     edge_index=torch.tensor([[0, 1, 2, 1], [1, 0, 1, 2]])),
        bad, ok, runs=[("empty", EMPTY)],
    ))

    def grm(**kw):
        torch.manual_seed(0)
        m = conv_pkg.GraphReasoningMapping(4, 3, hidden_channels=5, mlp_channels=4, dropout=0.0)
        return m.eval()(**kw)

    bad, ok = merge(feature_cases("x", ndim=4), feature_cases("node_features"),
                    edge_index_cases("edge_index", lambda kw: kw["node_features"].size(0)),
                    weight_cases("edge_weight"))
    specs.append(Spec(
        "GraphReasoningMapping", grm,
        lambda: dict(x=torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(7)),
                     node_features=torch.randn(5, 3, generator=torch.Generator().manual_seed(8)),
                     edge_index=torch.tensor([[0, 1, 2, 3, 4], [1, 2, 3, 4, 0]]),
                     edge_weight=torch.rand(5, generator=torch.Generator().manual_seed(9))),
        bad, ok,
    ))

    # ConvGRUCell / GraphDropout ---------------------------------------------------------
    def gru(**kw):
        torch.manual_seed(0)
        return nn_pkg.ConvGRUCell(3, 4)(**kw)

    bad, ok = merge(feature_cases("x", ndim=4), feature_cases("h", ndim=4))
    bad += [("x-channels", put("x", torch.randn(2, 5, 3, 3)), "x"),
            ("h-shape", put("h", torch.randn(2, 4, 2, 3)), "h")]
    specs.append(Spec(
        "ConvGRUCell", gru,
        lambda: dict(x=torch.randn(2, 3, 3, 3, generator=torch.Generator().manual_seed(1)),
                     h=torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(2))),
        bad, ok,
    ))

    def gdrop(**kw):
        m = nn_pkg.GraphDropout()
        return m(kw["h"], generator=torch.Generator().manual_seed(0))

    bad, ok = feature_cases("h", ndim=4)
    specs.append(Spec(
        "GraphDropout", gdrop,
        lambda: dict(h=torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(1))),
        bad, ok,
    ))
    bad, ok = feature_cases("h", ndim=4)
    bad += [("drop_threshold", put("drop_threshold", 1.5), "drop_threshold"),
            ("mask", put("mask", "hard"), "mask")]
    specs.append(Spec(
        "graph_dropout_masks", nn_pkg.graph_dropout_masks,
        lambda: dict(h=torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(1))),
        bad, ok,
    ))
    return specs


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------
def _model_specs():
    M = models_pkg
    specs = []
    ei = _two_graph_edges()

    def wsgcn(**kw):
        torch.manual_seed(0)
        return M.WSGCN(6, num_classes=K).eval()(**kw)

    bad, ok = merge(feature_cases("x"), edge_index_cases("edge_index", lambda kw: N),
                    weight_cases("edge_weight"))
    specs.append(Spec(
        "WSGCN", wsgcn,
        lambda: dict(x=_x(6), edge_index=ei.clone(), edge_weight=torch.rand(ei.size(1))),
        bad, ok, runs=[("empty", lambda kw: dict(kw, edge_index=_empty_edges(kw),
                                                 edge_weight=torch.zeros(0)))],
    ))

    def batched(**kw):
        return M.BatchedWSGCN(**kw, num_classes=K)()

    bad, ok = merge(feature_cases("x"), edge_index_cases("edge_index", lambda kw: N),
                    weight_cases("edge_weight"), index_cases("batch", lambda kw: 2))
    specs.append(Spec(
        "BatchedWSGCN", batched,
        lambda: dict(x=_x(6), edge_index=ei.clone(), edge_weight=torch.rand(ei.size(1)),
                     batch=_batch(), seeds=[0, 1]),
        bad, ok,
    ))

    def fit(**kw):
        return M.fit_wsgcn(**kw, steps=1, num_classes=K)

    bad, ok = merge(feature_cases("x"), edge_index_cases("edge_index", lambda kw: N),
                    weight_cases("edge_weight"), index_cases("batch", None),
                    label_cases("labels", K),
                    edge_index_cases("lap_edge_index", lambda kw: N),
                    weight_cases("lap_edge_weight"))
    bad += [("seeds", put("seeds", [0]), "seeds"), ("steps", put("steps", -1), "steps")]
    specs.append(Spec(
        "fit_wsgcn", fit,
        lambda: dict(x=_x(6), edge_index=ei.clone(), edge_weight=torch.rand(ei.size(1)),
                     labels=_labels(), batch=_batch(), lap_edge_index=_graph(),
                     lap_edge_weight=torch.rand(_graph().size(1))),
        bad, ok,
    ))
    bad, ok = merge(edge_index_cases("edge_index", lambda kw: N), weight_cases("edge_weight"))
    bad += [("num_nodes", put("num_nodes", -1), "num_nodes"),
            ("variant", put("variant", "kipf"), "variant")]
    specs.append(Spec(
        "wsgcn_adjacency", M.wsgcn_adjacency,
        lambda: dict(edge_index=_graph(), edge_weight=torch.rand(_graph().size(1)), num_nodes=N,
                     variant="code"),
        bad, ok, runs=[("empty", lambda kw: dict(kw, edge_index=_empty_edges(kw),
                                                 edge_weight=torch.zeros(0)))],
    ))
    bad, ok = merge(edge_index_cases("edge_index", lambda kw: N), weight_cases("edge_weight"))
    bad += [("edge_weight-negative", put("edge_weight", lambda w, kw: w - 2), "edge_weight"),
            ("top_k", put("top_k", 0), "top_k")]
    specs.append(Spec(
        "random_walk_transition", M.random_walk_transition,
        lambda: dict(edge_index=_graph(), edge_weight=torch.rand(_graph().size(1)), num_nodes=N,
                     exp_times=2, top_k=4),
        bad, ok,
    ))
    bad, ok = merge(feature_cases("x"), feature_cases("colour"))
    bad += [("grid_size", put("grid_size", (H, W + 1)), "grid_size"),
            ("radius", put("radius", 0), "radius"),
            ("method", put("method", "knn"), "method")]
    specs.append(Spec(
        "wsgcn_graph", M.wsgcn_graph,
        lambda: dict(x=_x(6), grid_size=(H, W), radius=2, colour=torch.rand(N, 3)),
        bad, ok,
    ))

    def a2gnn(**kw):
        torch.manual_seed(0)
        return M.A2GNN(6, K, hidden_channels=8, num_layers=2, num_graphs=2).eval()(**kw)

    bad, ok = merge(feature_cases("x"), edge_index_cases("edge_index", lambda kw: N),
                    weight_cases("edge_weight"), index_cases("batch", lambda kw: 2))
    specs.append(Spec(
        "A2GNN", a2gnn,
        lambda: dict(x=_x(6).abs(), edge_index=_graph(), edge_weight=torch.rand(_graph().size(1)),
                     batch=_batch()),
        bad, ok,
    ))
    bad, ok = merge(feature_cases("logits"), feature_cases("logits_mid"))
    bad += [("tags-shape", put("tags", lambda t, kw: t[:, 1:]), "tags"), NAN_CASE("tags"),
            ("lambda_mid", put("lambda_mid", -1.0), "lambda_mid")]
    specs.append(Spec(
        "group_wsss_loss", M.group_wsss_loss,
        lambda: dict(logits=torch.randn(3, 4, generator=torch.Generator().manual_seed(1)),
                     logits_mid=torch.randn(3, 4, generator=torch.Generator().manual_seed(2)),
                     tags=torch.tensor([[1.0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])),
        bad, ok,
    ))
    bad, ok = feature_cases("cams", ndim=4)
    bad += [("tags-shape", put("tags", lambda t, kw: t[:, 1:]), "tags"), NAN_CASE("tags")]
    specs.append(Spec(
        "normalize_cam_maps", M.normalize_cam_maps,
        lambda: dict(cams=torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(1)),
                     tags=torch.tensor([[1.0, 0, 1], [0, 1, 0]])),
        bad, ok,
    ))

    # backbones, classifiers and CAM accumulation -----------------------------------------
    def img4(c=3):
        return torch.rand(2, c, 16, 16, generator=torch.Generator().manual_seed(3))

    def small_cnn(**kw):
        torch.manual_seed(0)
        return M.SmallCNN(widths=(4, 8), output_stride=4).eval()(**kw)

    bad, ok = feature_cases("x", ndim=4)
    bad += [("x-channels", put("x", lambda x, kw: x[:, :2]), "x")]
    specs.append(Spec("SmallCNN", small_cnn, lambda: dict(x=img4()), bad, ok))
    bad = [("widths", lambda kw: dict(widths=(4, 0)), "widths"),
           ("output_stride", lambda kw: dict(output_stride=0), "output_stride")]
    specs.append(Spec("SmallCNN()", M.SmallCNN, dict, bad))
    bad = [("name", put("name", "resnet7"), "name"), ("name-type", put("name", 3), "name"),
           ("pretrained", put("pretrained", True), "small_cnn")]
    specs.append(Spec("build_backbone", M.build_backbone, lambda: dict(name="small_cnn"), bad))

    def cam_classifier(**kw):
        torch.manual_seed(0)
        model = M.CAMClassifier(M.SmallCNN(widths=(4, 8), output_stride=4), 3).eval()
        return model(**kw), model.cam(**kw)

    bad, ok = feature_cases("x", ndim=4)
    specs.append(Spec("CAMClassifier", cam_classifier, lambda: dict(x=img4()), bad, ok))
    specs.append(Spec("CAMClassifier()", M.CAMClassifier,
                      lambda: dict(backbone=M.SmallCNN(widths=(4, 8)), num_classes=3),
                      [("num_classes", put("num_classes", 0), "num_classes")]))

    def accumulate(**kw):
        acc = M.OnlineCAMAccumulator()
        acc.update(**kw)
        return [acc[k] for k in kw["keys"]]

    bad, ok = feature_cases("cams", ndim=4)
    bad += [("keys-length", put("keys", ["a"]), "keys"),
            ("keys-type", put("keys", 3), "keys"),
            ("tags-shape", put("tags", lambda t, kw: t[:, 1:]), "tags"), NAN_CASE("tags"),
            ("probs-shape", put("probs", lambda p, kw: p[1:]), "probs"),
            ("probs-nan", put("probs", lambda p, kw: p.index_fill(0, torch.tensor([0]),
                                                                  float("nan"))), "probs")]
    ok += [("tags-bool", put("tags", lambda t, kw: t.bool()))]
    specs.append(Spec(
        "OnlineCAMAccumulator", accumulate,
        lambda: dict(keys=["a", "b"], cams=torch.rand(2, 3, 4, 4),
                     tags=torch.tensor([[1.0, 0, 1], [0, 1, 0]]), probs=torch.rand(2, 3)),
        bad, ok,
    ))
    specs.append(Spec("OnlineCAMAccumulator()", M.OnlineCAMAccumulator, dict,
                      [("prob_threshold", put("prob_threshold", 1.5), "prob_threshold")]))

    # full models around a backbone / the class knowledge ------------------------------------
    def know():
        g = torch.Generator().manual_seed(11)
        e = torch.rand(3, 3, generator=g)
        return torch.randn(3, 5, generator=g), (e + e.t()) / 2

    def knowledge_clf(**kw):
        torch.manual_seed(0)
        v, e = know()
        model = M.KnowledgeClassifier(M.SmallCNN(widths=(4, 8), output_stride=4), v, e,
                                      hidden_channels=6).eval()
        return model(**kw)

    bad, ok = feature_cases("x", ndim=4)
    bad += [("x-channels", put("x", lambda x, kw: x[:, :2]), "x")]
    specs.append(Spec("KnowledgeClassifier", knowledge_clf, lambda: dict(x=img4()), bad, ok))
    bad = [("node_features-rank", put("node_features", lambda v, kw: v[0]), "node_features"),
           ("node_features-nan", put("node_features", lambda v, kw: v.index_fill(
               0, torch.tensor([0]), float("nan"))), "node_features"),
           ("relation-shape", put("relation", lambda e, kw: e[1:]), "relation"),
           ("relation-int", put("relation", lambda e, kw: e.long()), "relation")]
    specs.append(Spec(
        "KnowledgeClassifier()", M.KnowledgeClassifier,
        lambda: dict(backbone=M.SmallCNN(widths=(4,), output_stride=2),
                     node_features=know()[0], relation=know()[1]), bad,
    ))

    def grm_head(**kw):
        torch.manual_seed(0)
        v, e = know()
        return M.GRMHead(4, 4, v, e, mlp_channels=4, dropout=0.0).eval()(**kw)

    bad, ok = feature_cases("x", ndim=4)
    bad += [("x-channels", put("x", lambda x, kw: x[:, :3]), "x")]
    specs.append(Spec("GRMHead", grm_head, lambda: dict(x=img4(4)[:, :, :4, :4]), bad, ok))

    def group_gnn(**kw):
        torch.manual_seed(0)
        model = M.GroupGNN(M.SmallCNN(widths=(4, 8), output_stride=4), num_classes=3,
                           hidden_channels=6).eval()
        return model(**kw)

    bad, ok = merge(feature_cases("images", ndim=4),
                    edge_index_cases("edge_index", lambda kw: kw["images"].size(0)))
    specs.append(Spec(
        "GroupGNN", group_gnn,
        lambda: dict(images=img4(), edge_index=torch.tensor([[0, 1], [1, 0]])), bad, ok,
        runs=[("no-edge", put("edge_index", torch.empty(2, 0, dtype=torch.long)))],
    ))

    def affinity_net(**kw):
        torch.manual_seed(0)
        return M.AffinityNet(in_channels=(4, 8, 8), reduce_channels=(4, 4, 4))(**kw)

    def pyramid():
        g = torch.Generator().manual_seed(12)
        return [torch.rand(1, 4, 8, 8, generator=g), torch.rand(1, 8, 4, 4, generator=g),
                torch.rand(1, 8, 4, 4, generator=g)]

    bad = [("inputs-level-nan", put("inputs", lambda p, kw: [p[0].index_fill(
               1, torch.tensor([0]), float("nan"))] + p[1:]), "inputs"),
           ("inputs-channels", put("inputs", lambda p, kw: [p[0][:, :3]] + p[1:]), "inputs"),
           ("inputs-count", put("inputs", lambda p, kw: p[:2]), "inputs"),
           ("inputs-int", put("inputs", lambda p, kw: [q.long() for q in p]), "inputs"),
           ("inputs-type", put("inputs", "features"), "inputs")]
    ok = [("inputs-noncontig", put("inputs", lambda p, kw: [q.transpose(2, 3).contiguous()
                                                            .transpose(2, 3) for q in p]))]
    specs.append(Spec("AffinityNet", affinity_net, lambda: dict(inputs=pyramid()), bad, ok))

    def train(**kw):
        torch.manual_seed(0)
        model = M.CAMClassifier(M.SmallCNN(widths=(4,), output_stride=2), 2)
        return M.train_classifier(model, **kw, epochs=1, progress=False)

    def samples():
        rng = torch.Generator().manual_seed(13)
        return [dict(image=torch.randint(0, 256, (8, 8, 3), generator=rng, dtype=torch.uint8)
                     .numpy(), tags=[1, 0]) for _ in range(2)]

    bad = [("samples-empty", put("samples", []), "samples"),
           ("samples-type", put("samples", "voc/"), "samples"),
           ("samples-image",
            put("samples", lambda s, kw: [dict(s[0], image=s[0]["image"][..., 0])]), "samples"),
           ("samples-tags-size", put("samples", lambda s, kw: [dict(s[0], tags=[1, 0, 1])]),
            "samples"),
           ("samples-tags-value", put("samples", lambda s, kw: [dict(s[0], tags=[2, 0])]),
            "samples"),
           ("lr", put("lr", 0.0), "lr"), ("batch_size", put("batch_size", 0), "batch_size"),
           ("optimizer", put("optimizer", "lbfgs"), "optimizer"),
           ("scale_jitter", put("scale_jitter", (1.2, 0.8)), "scale_jitter"),
           ("config-type", put("config", {"lr": 0.1}), "config argument is a "
            "ClassifierTrainConfig")]
    specs.append(Spec("train_classifier", train, lambda: dict(samples=samples(), batch_size=2),
                      bad))
    return specs


SPECS = _loss_specs() + _layer_specs() + _model_specs()
BAD, OK, RUNS = parametrize("nn", SPECS)


@pytest.mark.parametrize("spec,mutate,match", BAD)
def test_bad_input_is_named(spec, mutate, match):
    check_bad(spec, mutate, match)


@pytest.mark.parametrize("spec,mutate", OK)
def test_accepted_variant_gives_the_canonical_result(spec, mutate):
    check_ok(spec, mutate)


@pytest.mark.parametrize("spec,mutate", RUNS)
def test_edge_case_runs_finite(spec, mutate):
    check_runs(spec, mutate)


# --------------------------------------------------------------------------------------------
# half / bfloat16 on every path (issue 17, item 4): input dtype returned, finite wherever
# float32 is, close to the float32 result of the same (rounded) input; gradients too
# --------------------------------------------------------------------------------------------
def _aac_call(fused, x, scale=1.0):
    torch.manual_seed(0)
    conv = conv_pkg.AffinityAttentionConv(w_init=0.7, fused=fused, num_graphs=2)
    return conv(x * scale, _graph(), torch.rand(_graph().size(1),
                generator=torch.Generator().manual_seed(4)), batch=_batch())


LOW_PRECISION = {
    "partial_cross_entropy": lambda x: F.partial_cross_entropy(x, _labels(), batch=_batch()),
    "entropy_loss": lambda x: F.entropy_loss(x, _labels(), batch=_batch()),
    "laplacian_loss[edges]": lambda x: F.laplacian_loss(x, _graph(), method="edges"),
    "laplacian_loss[spmm]": lambda x: F.laplacian_loss(x, _graph(), method="spmm"),
    "laplacian_quadratic_form": lambda x: F.laplacian_quadratic_form(
        F.laplacian_matrix(_two_graph_edges(), None, N), x, _batch()),
    "gated_crf_loss[spmm]": lambda x: F.gated_crf_loss(
        x, _graph(), torch.ones(_graph().size(1)), method="spmm"),
    "gated_crf_loss[edges]": lambda x: F.gated_crf_loss(
        x, _graph(), torch.ones(_graph().size(1)), method="edges"),
    "AffinityAttentionConv[fused=True]": lambda x: _aac_call(True, x),
    "AffinityAttentionConv[fused=False]": lambda x: _aac_call(False, x),
    "AffinityAttentionConv[fused=True,x1e4]": lambda x: _aac_call(True, x, 1e4),
    "AffinityAttentionConv[fused=False,x1e4]": lambda x: _aac_call(False, x, 1e4),
    "AffinityAttentionConv[fused=True,zero]": lambda x: _aac_call(True, x, 0.0),
    "AffinityAttentionConv[fused=False,zero]": lambda x: _aac_call(False, x, 0.0),
    "AffinityAttentionConv[fused=False,tiny]": lambda x: _aac_call(False, x, 1e-6),
    "fit_wsgcn": lambda x: models_pkg.fit_wsgcn(
        x, _two_graph_edges(), None, _labels(), _batch(), steps=2, num_classes=K,
        lap_edge_index=_graph()),
}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("name", sorted(LOW_PRECISION))
def test_low_precision_matches_float32(name, dtype):
    fn = LOW_PRECISION[name]
    d = 6 if name.startswith(("AffinityAttentionConv", "fit_wsgcn")) else K
    x32 = _x(d).to(dtype).float().requires_grad_()  # the same values in both precisions
    xlo = x32.detach().to(dtype).requires_grad_()
    ref, out = fn(x32), fn(xlo)
    assert out.dtype == dtype, f"{name}: returned {out.dtype} for {dtype} input"
    assert torch.isfinite(ref).all() and torch.isfinite(out).all()
    scale = ref.detach().abs().max().clamp(min=1.0)
    tol = 2e-2 if dtype == torch.float16 else 6e-2
    assert (out.float() - ref).abs().max() <= tol * scale, name
    if name != "fit_wsgcn":  # fit_wsgcn returns a detached eval-mode prediction
        ref.float().sum().backward()
        out.float().sum().backward()
        assert xlo.grad.dtype == dtype and torch.isfinite(xlo.grad).all()
        gscale = x32.grad.abs().max().clamp(min=1.0)
        assert (xlo.grad.float() - x32.grad).abs().max() <= 4 * tol * gscale, name
