"""Bad-input matrix of pyg_wsss.graphs: graph builders and edge weights (issue 17)."""
import numpy as np
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

import pyg_wsss.graphs as G

H, W = 4, 5
N = H * W
NAN = float("nan")


def _image():
    return np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)


def _segments():
    s = torch.zeros(H, W, dtype=torch.long)
    s[:, 2:] = 1
    s[2:, :] += 2
    return s  # 4 regions


def _graph():
    return G.pixel_graph(H, W, 2, shape="square")


def _image_cases(name="image"):
    return [
        (f"{name}-grey", put(name, lambda im, kw: im[..., 0]), name),
        (f"{name}-rgba", put(name, lambda im, kw: np.concatenate([im, im[..., :1]], -1)), name),
        (f"{name}-float-range", put(name, lambda im, kw: im.astype(np.float32)), name),
        (f"{name}-nan", put(name, lambda im, kw: np.full(im.shape, np.nan, np.float32)), name),
        (f"{name}-empty", put(name, np.zeros((0, W, 3), np.uint8)), name),
        (f"{name}-type", put(name, "image.png"), name),
    ]


def _tags():
    return torch.tensor([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])


def _specs():
    specs = []
    bad = [("height", put("height", 0), "height"), ("width", put("width", -1), "width"),
           ("height-float", put("height", 2.5), "height"), ("radius", put("radius", 0), "radius"),
           ("radius-float", put("radius", 1.5), "radius"), ("shape", put("shape", "hex"), "shape")]
    ok = [("height-numpy", put("height", np.int64(H)))]
    specs.append(Spec("pixel_graph", G.pixel_graph,
                      lambda: dict(height=H, width=W, radius=2, shape="disc"), bad, ok))
    bad = [("graphs-empty", lambda kw: dict(graphs=[]), "graphs"),
           ("graphs-type", lambda kw: dict(graphs=[kw["graphs"], "grid"]), "graphs"),
           ("batch_size", put("batch_size", 0), "batch_size"),
           ("batch_size-list", lambda kw: dict(kw, graphs=[kw["graphs"]]), "batch_size")]
    specs.append(Spec("batch_pixel_graphs", G.batch_pixel_graphs,
                      lambda: dict(graphs=G.pixel_graph(2, 3, 1, shape="square"), batch_size=2),
                      bad))
    for name in ("half_plane_offsets", "stencil_offsets"):
        bad = [("radius", put("radius", -1), "radius"),
               ("radius-str", put("radius", "3"), "radius"),
               ("shape", put("shape", "hex"), "shape")]
        specs.append(Spec(name, getattr(G, name), lambda: dict(radius=3, shape="disc"), bad))
    # gaussian_edge_weight ---------------------------------------------------------------
    g = _graph()
    bad, ok = merge(feature_cases("colour"), edge_index_cases("edge_index", lambda kw: N))
    bad += [("pos-rows", put("pos", lambda p, kw: p[1:]), "pos"),
            ("pos-nan", put("pos", lambda p, kw: p.index_fill(0, torch.tensor([0]), NAN)), "pos"),
            ("colour-rows", put("colour", lambda c, kw: c[1:]), "colour"),
            ("preset", put("preset", "crf"), "preset"),
            ("sigma_rgb", lambda kw: dict(kw, preset=None, sigma_rgb=-1.0, sigma_xy=1.0),
             "sigma_rgb")]
    ok += [("pos-int", put("pos", lambda p, kw: p.long()))]
    specs.append(Spec(
        "gaussian_edge_weight", G.gaussian_edge_weight,
        lambda: dict(colour=torch.rand(N, 3), pos=g.pos.clone(), edge_index=g.edge_index.clone(),
                     preset="wsgcn_code"),
        bad, ok, runs=[("empty", put("edge_index", torch.empty(2, 0, dtype=torch.long)))],
    ))
    bad, ok = merge(feature_cases("x"), edge_index_cases("edge_index", lambda kw: N))
    bad += [("threshold", put("threshold", 1.5), "threshold"),
            ("chunk_size", put("chunk_size", 0), "chunk_size")]
    specs.append(Spec(
        "feature_affinity", G.feature_affinity,
        lambda: dict(x=torch.rand(N, 6), edge_index=g.edge_index.clone()), bad, ok,
        runs=[("empty", put("edge_index", torch.empty(2, 0, dtype=torch.long)))],
    ))
    # superpixels ------------------------------------------------------------------------
    bad = _image_cases() + [
        ("segments-shape", put("segments", lambda s, kw: s[1:]), "segments"),
        ("segments-negative", put("segments", lambda s, kw: s - 1), "segments"),
        ("segments-float", put("segments", lambda s, kw: s.float()), "segments"),
        ("features-rank", put("features", torch.rand(H, W)), "features"),
        ("features-empty", put("features", torch.rand(0, H, W)), "features"),
        ("features-int", put("features", lambda f, kw: f.long()), "features"),
        ("features-nan", put("features", torch.full((6, H, W), NAN)), "features"),
        ("connectivity", put("connectivity", 6), "connectivity"),
    ]
    ok = [("segments-int32", put("segments", lambda s, kw: s.int())),
          ("segments-numpy", put("segments", lambda s, kw: s.numpy())),
          ("features-noncontig", put("features", lambda f, kw: f.transpose(1, 2).contiguous()
                                     .transpose(1, 2)))]
    specs.append(Spec(
        "superpixel_graph", G.superpixel_graph,
        lambda: dict(image=_image(), segments=_segments(), features=torch.rand(6, H, W)), bad, ok,
    ))
    bad = _image_cases() + [("n_segments", put("n_segments", 0), "n_segments"),
                            ("compactness", put("compactness", -1.0), "compactness")]
    specs.append(Spec("graphs.slic_segments", G.slic_segments,
                      lambda: dict(image=_image(), n_segments=4), bad))
    bad = [("segments-1d", put("segments", lambda s, kw: s.view(-1)), "segments"),
           ("segments-float", put("segments", lambda s, kw: s.float()), "segments"),
           ("segments-negative", put("segments", lambda s, kw: s - 1), "segments"),
           ("segments-too-many", put("num_regions", 3), "segments"),
           ("num_regions", put("num_regions", -1), "num_regions"),
           ("connectivity", put("connectivity", 6), "connectivity")]
    ok = [("segments-int32", put("segments", lambda s, kw: s.int())),
          ("segments-noncontig", put("segments", lambda s, kw: s.t().contiguous().t()))]
    specs.append(Spec(
        "region_adjacency", G.region_adjacency,
        lambda: dict(segments=_segments(), num_regions=4), bad, ok,
        runs=[("one-region", put("segments", torch.zeros(H, W, dtype=torch.long))),
              ("isolated-region", put("num_regions", 6))],
    ))
    # image groups -----------------------------------------------------------------------
    bad = [("tags-1d", put("tags", lambda t, kw: t[0]), "tags"),
           ("tags-nan", put("tags", lambda t, kw: t.float().index_fill(0, torch.tensor([0]), NAN)),
            "tags"),
           ("tags-list-of-str", put("tags", [["a"]]), "tags")]
    ok = [("tags-bool", put("tags", lambda t, kw: t.bool())),
          ("tags-float", put("tags", lambda t, kw: t.float())),
          ("tags-int32", put("tags", lambda t, kw: t.int()))]
    specs.append(Spec("image_group_graph", G.image_group_graph, lambda: dict(tags=_tags()),
                      bad, ok, runs=[("no-image", put("tags", torch.zeros(0, 3)))]))

    def sampler(**kw):
        return list(G.GreedyGroupSampler(**kw))

    bad = [("tags-1d", put("tags", lambda t, kw: t[0]), "tags"),
           ("group_size", put("group_size", 0), "group_size"),
           ("strategy", put("strategy", "best"), "strategy"),
           ("pad", put("pad", "zeros"), "pad")]
    ok = [("tags-bool", put("tags", lambda t, kw: t.bool()))]
    specs.append(Spec("GreedyGroupSampler", sampler,
                      lambda: dict(tags=_tags(), group_size=2, shuffle=False), bad, ok))
    # class knowledge --------------------------------------------------------------------
    adj = torch.tensor([[0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 1, 0.0]])
    bad = [("adjacency-shape", put("adjacency", lambda a, kw: a[1:]), "adjacency"),
           ("adjacency-negative", put("adjacency", lambda a, kw: -a), "adjacency"),
           ("adjacency-nan", put("adjacency", lambda a, kw: a.index_fill(0, torch.tensor([0]),
                                                                         NAN)), "adjacency"),
           ("seeds-range", put("seeds", [0, 4]), "seeds"),
           ("seeds-negative", put("seeds", [-1]), "seeds"),
           ("restart", put("restart", 0.0), "restart"),
           ("dangling", put("dangling", "keep"), "dangling")]
    ok = [("adjacency-noncontig", put("adjacency", lambda a, kw: a.t().contiguous().t())),
          ("seeds-tensor-int32", put("seeds", torch.tensor([0, 2], dtype=torch.int32)))]
    specs.append(Spec(
        "random_walk_with_restart", G.random_walk_with_restart,
        lambda: dict(adjacency=adj.clone(), seeds=[0, 2]), bad, ok,
    ))
    ei = torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]])
    bad, ok = merge(edge_index_cases("adjacency", lambda kw: 4), weight_cases("edge_weight"))
    bad += [("class_nodes-range", put("class_nodes", [0, 5]), "class_nodes"),
            ("num_nodes", put("num_nodes", 3), "adjacency|num_nodes")]
    specs.append(Spec(
        "class_relation_graph", G.class_relation_graph,
        lambda: dict(adjacency=ei.clone(), edge_weight=torch.rand(6), num_nodes=4,
                     class_nodes=[0, 1, 3]), bad, ok,
    ))
    co, cnt = G.cooccurrence_matrix(_tags())
    bad = [("cooccurrence-shape", put("cooccurrence", lambda c, kw: c[1:]), "cooccurrence"),
           ("cooccurrence-negative", put("cooccurrence", lambda c, kw: -c - 1), "cooccurrence"),
           ("counts-length", put("counts", lambda c, kw: c[1:]), "counts"),
           ("counts-nan", put("counts", lambda c, kw: c.float().index_fill(0, torch.tensor([0]),
                                                                          NAN)), "counts"),
           ("t", put("t", 1.5), "'t'"), ("variant", put("variant", "gcn"), "variant")]
    ok = [("cooccurrence-noncontig", put("cooccurrence", lambda c, kw: c.t().contiguous().t()))]
    specs.append(Spec("mlgcn_reweight", G.mlgcn_reweight,
                      lambda: dict(cooccurrence=co.clone(), counts=cnt.clone()), bad, ok))
    bad = [("relation-shape", put("relation", lambda r, kw: r[1:]), "relation"),
           ("relation-nan", put("relation", lambda r, kw: r.index_fill(0, torch.tensor([0]), NAN)),
            "relation"),
           ("relation-int", put("relation", lambda r, kw: r.long()), "relation")]
    ok = [("relation-noncontig", put("relation", lambda r, kw: r.t().contiguous().t()))]
    specs.append(Spec("normalize_relation", G.normalize_relation,
                      lambda: dict(relation=adj.clone()), bad, ok))
    bad = [("tags-1d", put("tags", lambda t, kw: t[0]), "tags"),
           ("tags-nan", put("tags", lambda t, kw: t.float().index_fill(0, torch.tensor([0]), NAN)),
            "tags"),
           ("tags-negative", put("tags", lambda t, kw: -t), "tags")]
    ok = [("tags-bool", put("tags", lambda t, kw: t.bool()))]
    specs.append(Spec("cooccurrence_matrix", G.cooccurrence_matrix, lambda: dict(tags=_tags()),
                      bad, ok))
    bad = [("dataset", put("dataset", "imagenet"), "dataset"),
           ("dtype", put("dtype", torch.long), "dtype")]
    specs.append(Spec("load_class_knowledge", G.load_class_knowledge, lambda: dict(dataset="voc"),
                      bad))
    return specs


SPECS = _specs()
BAD, OK, RUNS = parametrize("graphs", SPECS)


@pytest.mark.parametrize("spec,mutate,match", BAD)
def test_bad_input_is_named(spec, mutate, match):
    check_bad(spec, mutate, match)


@pytest.mark.parametrize("spec,mutate", OK)
def test_accepted_variant_gives_the_canonical_result(spec, mutate):
    check_ok(spec, mutate)


@pytest.mark.parametrize("spec,mutate", RUNS)
def test_edge_case_runs_finite(spec, mutate):
    check_runs(spec, mutate)


def test_disc_radius_one_warns_naming_radius():
    with pytest.warns(UserWarning, match="radius"):
        g = G.pixel_graph(H, W, 1)  # default shape "disc": no neighbour at radius 1
    assert g.edge_index.size(1) == 0
