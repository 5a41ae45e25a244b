"""Bad-input matrix of pyg_wsss.pseudo.{seeds, grabcut, walk} and pyg_wsss.data.{annotations,
transforms, samples} (issue 17)."""
import numpy as np
import pytest
import torch
from badinput_matrix import (
    Spec,
    check_bad,
    check_ok,
    check_runs,
    edge_index_cases,
    noncontig,
    parametrize,
    put,
    weight_cases,
)

import pyg_wsss
from pyg_wsss.data import annotations as A
from pyg_wsss.data import samples as S
from pyg_wsss.data import transforms as T
from pyg_wsss.graphs import pixel_graph
from pyg_wsss.pseudo import grabcut as G
from pyg_wsss.pseudo import seeds as SD
from pyg_wsss.pseudo import walk as WK

pytest.importorskip("cv2")
CRF = pytest.importorskip("pydensecrf.densecrf")

H = W = 16
C = 2
NAN, INF = float("nan"), float("inf")


def _image():
    img = np.random.default_rng(0).integers(0, 60, (H, W, 3), dtype=np.uint8)
    img[3:10, 3:10] = (200, 40, 40)
    img[8:14, 9:15] = (40, 200, 40)
    return img


def _cams():
    c = torch.zeros(C, H, W)
    c[0, 3:10, 3:10] = 1.0
    c[1, 8:14, 9:15] = 0.8
    c[0, 2:11, 2:11] += 0.1
    return c


def _tags():
    return np.array([1.0, 1.0], np.float32)


def _boxes():
    return np.array([[2, 2, 10, 10], [8, 7, 15, 14]])


def _box_labels():
    return np.array([1, 2])


def _masks():
    m = np.zeros((2, H, W), bool)
    m[0, 3:10, 3:10] = True
    m[1, 8:14, 9:15] = True
    return m


def _cam_label_map():
    m = np.zeros((H, W), np.uint8)
    m[3:10, 3:10] = 1
    m[9:13, 10:14] = 2
    m[0, :] = 255
    return m


def _mask():
    m = np.zeros((H, W), np.uint8)
    m[3:10, 3:10] = 1
    m[8:14, 9:15] = 2
    return m


def _instances():
    m = np.zeros((H, W), np.int64)
    m[3:10, 3:10] = 1
    m[8:14, 9:15] = 2
    return m


def _set(a, v, idx=(0, 0)):
    a = a.clone() if isinstance(a, torch.Tensor) else np.array(a, copy=True)
    a[idx] = v
    return a


def _noncontig_np(a):
    a = np.asarray(a)
    out = np.stack([a, a], -1)[..., 0]
    return out


# --------------------------------------------------------------------------- case helpers
def _image_cases(name="image", shape=True):
    bad = [
        (f"{name}-grey", put(name, lambda im, kw: im[..., 0]), name),
        (f"{name}-rgba", put(name, lambda im, kw: np.concatenate([im, im[..., :1]], -1)), name),
        (f"{name}-float", put(name, lambda im, kw: im.astype(np.float32)), name),
        (f"{name}-empty", put(name, np.zeros((0, W, 3), np.uint8)), name),
        (f"{name}-type", put(name, "image.png"), name),
    ]
    if shape:
        bad.append((f"{name}-size", put(name, lambda im, kw: im[2:]), "image|cams"))
    return bad


def _cams_cases(name="cams", nonneg=False, spatial=True):
    bad = [
        (f"{name}-rank", put(name, lambda c, kw: c[0]), name),
        (f"{name}-nan", put(name, lambda c, kw: _set(c, NAN, (0, 0, 0))), name),
        (f"{name}-inf", put(name, lambda c, kw: _set(c, INF, (0, 0, 0))), name),
        (f"{name}-list", put(name, lambda c, kw: np.asarray(c).tolist()), name),
        (f"{name}-empty", put(name, lambda c, kw: c[:, :0]), name),
        (f"{name}-bool", put(name, lambda c, kw: c > 0.5), name),
    ]
    if spatial:
        bad.append((f"{name}-size", put(name, lambda c, kw: c[:, 2:]), "cams|image"))
    ok = [(f"{name}-noncontig", put(name, lambda c, kw: noncontig(torch.as_tensor(c)))),
          (f"{name}-numpy", put(name, lambda c, kw: np.asarray(c)))]
    return bad, ok


def _tags_cases(name="tags"):
    bad = [
        (f"{name}-length", put(name, lambda t, kw: np.asarray(t)[1:]), name),
        (f"{name}-2d", put(name, lambda t, kw: np.asarray(t)[None]), name),
        (f"{name}-nan", put(name, lambda t, kw: _set(np.asarray(t, np.float32), NAN, 0)), name),
        (f"{name}-str", put(name, np.array(["a", "b"])), name),
    ]
    ok = [(f"{name}-tensor", put(name, lambda t, kw: torch.as_tensor(t))),
          (f"{name}-int32", put(name, lambda t, kw: np.asarray(t).astype(np.int32))),
          (f"{name}-list", put(name, lambda t, kw: np.asarray(t).tolist()))]
    return bad, ok


def _labelmap_cases(name, k=None, float_bad=True, shape=None, list_bad=True):
    """Integer ``[H, W]`` label map: float, wrong rank/size, negative, beyond the classes."""
    bad = [
        (f"{name}-rank", put(name, lambda y, kw: np.asarray(y)[None]), name),
        (f"{name}-negative", put(name, lambda y, kw: _set(np.asarray(y, np.int64), -1)), name),
    ]
    if list_bad:
        bad.append((f"{name}-list", put(name, lambda y, kw: np.asarray(y).tolist()), name))
    if float_bad:
        bad.append((f"{name}-float", put(name, lambda y, kw: np.asarray(y).astype(np.float32)),
                    name))
    if k is not None:
        bad.append((f"{name}-range", put(name, lambda y, kw: _set(np.asarray(y, np.int64), k + 1)),
                    name))
    if shape is not None:
        bad.append((f"{name}-size", put(name, lambda y, kw: np.asarray(y)[1:]), shape))
    ok = [(f"{name}-tensor", put(name, lambda y, kw: torch.as_tensor(np.asarray(y)))),
          (f"{name}-int32", put(name, lambda y, kw: np.asarray(y).astype(np.int32))),
          (f"{name}-noncontig", put(name, lambda y, kw: _noncontig_np(y)))]
    return bad, ok


def _boxes_cases(name="boxes"):
    bad = [
        (f"{name}-shape", put(name, lambda b, kw: b[:, :3]), name),
        (f"{name}-fraction", put(name, lambda b, kw: b + 0.5), name),
        (f"{name}-nan", put(name, lambda b, kw: _set(b.astype(float), NAN)), name),
        (f"{name}-outside", put(name, lambda b, kw: _set(b, W, (0, 2))), name),
        (f"{name}-negative", put(name, lambda b, kw: _set(b, -1)), name),
        (f"{name}-empty-box", put(name, lambda b, kw: _set(b, 12, (0, 0))), name),
        (f"{name}-type", put(name, "boxes.xml"), name),
    ]
    ok = [(f"{name}-tensor", put(name, lambda b, kw: torch.as_tensor(b))),
          (f"{name}-int32", put(name, lambda b, kw: b.astype(np.int32))),
          (f"{name}-list", put(name, lambda b, kw: b.tolist())),
          (f"{name}-noncontig", put(name, lambda b, kw: _noncontig_np(b)))]
    return bad, ok


def _box_label_cases(name="box_labels", k=254):
    bad = [
        (f"{name}-length", put(name, lambda y, kw: y[1:]), name),
        (f"{name}-range", put(name, lambda y, kw: _set(y, k + 1, 0)), name),
        (f"{name}-zero", put(name, lambda y, kw: _set(y, 0, 0)), name),
        (f"{name}-negative", put(name, lambda y, kw: _set(y, -1, 0)), name),
        (f"{name}-float", put(name, lambda y, kw: y + 0.5), name),
        (f"{name}-2d", put(name, lambda y, kw: y[:, None]), name),
    ]
    ok = [(f"{name}-tensor", put(name, lambda y, kw: torch.as_tensor(y))),
          (f"{name}-int32", put(name, lambda y, kw: y.astype(np.int32)))]
    return bad, ok


def _masks_cases(name="masks"):
    bad = [
        (f"{name}-size", put(name, lambda m, kw: m[:, 2:, 2:]), name),
        (f"{name}-2d", put(name, lambda m, kw: m[0]), name),
        (f"{name}-count", put(name, lambda m, kw: m[:1]), name),
        (f"{name}-values", put(name, lambda m, kw: m * 3.0), name),
        (f"{name}-nan", put(name, lambda m, kw: _set(m.astype(float), NAN, (0, 0, 0))), name),
    ]
    ok = [(f"{name}-uint8", put(name, lambda m, kw: m.astype(np.uint8))),
          (f"{name}-tensor", put(name, lambda m, kw: torch.as_tensor(m))),
          (f"{name}-noncontig", put(name, lambda m, kw: _noncontig_np(m)))]
    return bad, ok


def _posint(name, value=0, float_value=1.5):
    return [(f"{name}-{value}", put(name, value), name),
            (f"{name}-float", put(name, float_value), name),
            (f"{name}-str", put(name, "3"), name)]


def _sample():
    return {"image": _image(), "mask": _mask(), "instances": _instances(),
            "scribbles": np.full((H, W), 255, np.uint8), "tags": np.array([1.0, 1.0], np.float32),
            "boxes": _boxes(), "box_labels": _box_labels(),
            "points": np.array([[5, 5, 1], [10, 12, 2]])}


def _in_sample(key, fn):
    def mutate(kw):
        kw = dict(kw)
        s = dict(kw["sample"])
        s[key] = fn(s[key])
        kw["sample"] = s
        return kw

    return mutate


def _sample_cases():
    return [
        ("sample-type", put("sample", [1, 2]), "sample"),
        ("sample-no-image", put("sample", lambda s, kw: {"mask": s["mask"]}), "sample"),
        ("image-grey", _in_sample("image", lambda im: im[..., 0]), "image"),
        ("image-float", _in_sample("image", lambda im: im.astype(np.float32)), "image"),
        ("image-empty", _in_sample("image", lambda im: im[:0]), "image"),
        ("mask-size", _in_sample("mask", lambda m: m[1:]), "mask"),
        ("mask-float", _in_sample("mask", lambda m: m.astype(np.float32)), "mask"),
        ("instances-size", _in_sample("instances", lambda m: m[:, 1:]), "instances"),
        ("scribbles-size", _in_sample("scribbles", lambda m: m[1:]), "scribbles"),
        ("boxes-shape", _in_sample("boxes", lambda b: b[:, :3]), "boxes"),
        ("boxes-fraction", _in_sample("boxes", lambda b: b + 0.5), "boxes"),
        ("box_labels-length", _in_sample("box_labels", lambda y: y[1:]), "box_labels"),
        ("points-shape", _in_sample("points", lambda p: p[:, :2]), "points"),
        ("points-float", _in_sample("points", lambda p: p + 0.5), "points"),
        ("tags-2d", _in_sample("tags", lambda t: t[None]), "tags"),
    ]


def _sample_ok():
    return [("boxes-int32", _in_sample("boxes", lambda b: b.astype(np.int32))),
            ("mask-noncontig", _in_sample("mask", _noncontig_np)),
            ("image-noncontig", _in_sample("image", lambda im: np.stack([im, im], -1)[..., 0]))]


# --------------------------------------------------------------------------------- specs
def _seeds_specs():
    specs = []
    bc, oc = _cams_cases(spatial=False)
    bt, ot = _tags_cases()
    base = lambda: dict(cams=_cams(), tags=_tags())  # noqa: E731
    specs.append(Spec("normalize_cams", SD.normalize_cams, base,
                      bc + bt + [("mode", put("mode", "l2"), "mode"),
                                 ("eps", put("eps", 0.0), "eps")],
                      oc + ot, runs=[("no-tag", put("tags", np.zeros(C)))]))
    specs.append(Spec("cam_scores", SD.cam_scores, lambda: dict(cams=_cams(), tags=_tags(),
                                                                bg_power=4.0),
                      bc + bt + [("bg_power", put("bg_power", -1.0), "bg_power"),
                                 ("bg_power-nan", put("bg_power", NAN), "bg_power"),
                                 ("bg-both", put("bg_threshold", 0.2), "bg_power"),
                                 ("normalize", put("normalize", "l2"), "mode|normalize")],
                      [o for o in oc if "numpy" not in o[0]] + ot))
    specs.append(Spec("scores_to_labels", SD.scores_to_labels, lambda: dict(scores=_cams()),
                      _cams_cases("scores", spatial=False)[0],
                      _cams_cases("scores", spatial=False)[1]))
    specs.append(Spec("cam_labels", SD.cam_labels, base,
                      bc + bt + [("bg_threshold", put("bg_threshold", -0.1), "bg_threshold"),
                                 ("bg_threshold-nan", put("bg_threshold", NAN), "bg_threshold")],
                      oc + ot))
    bi = _image_cases()

    def norm_cams():
        return torch.as_tensor(SD.normalize_cams(_cams(), _tags()))

    specs.append(Spec("crf_with_alpha", SD.crf_with_alpha,
                      lambda: dict(image=_image(), cams=norm_cams(), tags=_tags(), alpha=4.0,
                                   n_iter=1),
                      bi + bc + bt + [("alpha", put("alpha", -1.0), "alpha"),
                                      ("cams-unnormalised", put("cams", lambda c, kw: c * 3),
                                       "cams"),
                                      ("n_iter", put("n_iter", -1), "n_iter"),
                                      ("preset", put("preset", "fast"), "preset")],
                      oc + ot))
    la = torch.softmax(torch.randn(C + 1, H, W, generator=torch.Generator().manual_seed(0)), 0)
    ha = torch.softmax(torch.randn(C + 1, H, W, generator=torch.Generator().manual_seed(1)), 0)
    two = lambda: dict(crf_la=la.clone(), crf_ha=ha.clone())  # noqa: E731
    bla = _cams_cases("crf_la", spatial=False)[0] + _cams_cases("crf_ha", spatial=False)[0] + [
        ("crf_ha-shape", put("crf_ha", lambda c, kw: c[:, 1:]), "crf_ha")]
    ola = _cams_cases("crf_la", spatial=False)[1]
    specs.append(Spec("la_ha_labels", SD.la_ha_labels, two, bla, ola))
    specs.append(Spec("crf_score_stack", SD.crf_score_stack, two, bla, ola))
    specs.append(Spec("crf_unsure", SD.crf_unsure, two,
                      bla + [("threshold", put("threshold", -1.0), "threshold"),
                             ("threshold-nan", put("threshold", NAN), "threshold")], ola))
    bs, os_ = _cams_cases("scores", spatial=False)
    specs.append(Spec("confident_regions", SD.confident_regions,
                      lambda: dict(scores=la.clone(), classes=[0, 1, 2]),
                      bs + [("classes-range", put("classes", [0, C + 1]), "classes"),
                            ("classes-negative", put("classes", [-1]), "classes"),
                            ("classes-float", put("classes", [0.5]), "classes"),
                            ("ratio", put("ratio", 1.5), "ratio"),
                            ("min_score", put("min_score", -1.0), "min_score"),
                            ("bg_threshold", put("bg_threshold", NAN), "bg_threshold")],
                      os_ + [("classes-numpy", put("classes", np.array([0, 1, 2], np.int32)))],
                      runs=[("classes-empty", put("classes", []))]))
    bl, ol = _labelmap_cases("labels", k=C + 1, shape="labels")
    specs.append(Spec("vote_filter", SD.vote_filter,
                      lambda: dict(labels=_cam_label_map(), scores=la.clone()),
                      bl + bs, ol + os_))
    crf_kw = lambda: dict(image=_image(), cams=_cams(), tags=_tags(), n_iter=1)  # noqa: E731
    common = bi + bc + bt + [("alpha_low", put("alpha_low", -1.0), "alpha"),
                             ("ratio", put("ratio", 2.0), "ratio"),
                             ("min_score", put("min_score", -1.0), "min_score"),
                             ("bg_confidence", put("bg_confidence", -1.0), "bg_confidence"),
                             ("crf_threshold", put("crf_threshold", -1.0), "threshold"),
                             ("bg_fallback", put("bg_fallback", 1.5), "bg_fallback"),
                             ("normalize", put("normalize", "l2"), "mode|normalize"),
                             ("n_iter", put("n_iter", -1), "n_iter")]
    specs.append(Spec("wsgcn_partial_labels", SD.wsgcn_partial_labels, crf_kw, common, oc + ot))
    specs.append(Spec("a2gnn_tag_seeds", SD.a2gnn_tag_seeds, crf_kw, common, oc + ot))
    seed_kw = lambda: dict(image=_image(), cams=_cams(), tags=_tags(),  # noqa: E731
                           config=SD.CRFSeedConfig.wsgcn(n_iter=1))
    specs.append(Spec("crf_seeds", SD.crf_seeds, seed_kw,
                      bi + bc + bt + [("config-number", put("config", 0.5), "config"),
                                      ("config-bad-field", put(
                                          "config", SD.CRFSeedConfig.wsgcn(n_iter=-1)),
                                       "n_iter")], oc + ot))
    specs.append(Spec("cam_label_map", SD.cam_label_map, crf_kw,
                      bi + bc + bt + [("alpha_low", put("alpha_low", -1.0), "alpha"),
                                      ("n_iter", put("n_iter", -1), "n_iter")], oc + ot))
    return specs


def _grabcut_specs():
    specs = []
    bb, ob = _boxes_cases()
    bl, ol = _box_label_cases()
    specs.append(Spec("check_boxes", G.check_boxes,
                      lambda: dict(boxes=_boxes(), shape=(H, W), box_labels=_box_labels()),
                      bb + bl + [("shape-neg", put("shape", (H, -1)), "shape"),
                                 ("shape-len", put("shape", (H,)), "shape"),
                                 ("num_classes", put("num_classes", 0), "num_classes")],
                      ob + ol, runs=[("no-box", lambda kw: dict(kw, boxes=np.zeros((0, 4)),
                                                                 box_labels=[]))]))
    gk = dict(n_iter=1, min_size=4)
    bi = _image_cases(shape=False)
    specs.append(Spec("grabcut_box_masks", G.grabcut_box_masks,
                      lambda: dict(image=_image(), boxes=_boxes(), **gk),
                      bi + bb + _posint("n_iter") + _posint("min_size")
                      + [("margin", put("margin", -1), "margin"),
                         ("seed", put("seed", "0"), "seed")],
                      [o for o in ob if "noncontig" not in o[0]]
                      + [("image-tensor", put("image", lambda im, kw: torch.from_numpy(im))),
                         ("image-noncontig", put("image", lambda im, kw: _noncontig_np(im)))],
                      runs=[("no-box", put("boxes", np.zeros((0, 4), np.int64)))]))
    bm, om = _masks_cases()
    specs.append(Spec("box_seed_labels", G.box_seed_labels,
                      lambda: dict(boxes=_boxes(), box_labels=_box_labels(), masks=_masks()),
                      bb + bl + bm + [("shape", put("shape", (H, 0)), "shape"),
                                      ("masks-size-with-shape",
                                       lambda kw: dict(kw, shape=(H, W),
                                                       masks=kw["masks"][:, 1:]), "masks")],
                      ob + ol + om))
    specs.append(Spec("grabcut_seeds", G.grabcut_seeds,
                      lambda: dict(image=_image(), boxes=_boxes(), box_labels=_box_labels(),
                                   **gk),
                      bi + bb + bl + _posint("n_iter"),
                      [o for o in ob + ol if "noncontig" not in o[0]]))
    bcl, ocl = _labelmap_cases("cam_labels", k=255, list_bad=False)
    specs.append(Spec("fuse_box_seeds", G.fuse_box_seeds,
                      lambda: dict(cam_labels=_cam_label_map(), boxes=_boxes(),
                                   box_labels=_box_labels(), masks=_masks(),
                                   confident=_cam_label_map()),
                      bcl + bb + bl + bm + [
                          ("cam_labels-empty", put("cam_labels", np.zeros((0, W), np.uint8)),
                           "cam_labels"),
                          ("confident-size", put("confident", lambda c, kw: c[1:]), "confident"),
                          ("confident-float", put("confident", lambda c, kw: c.astype(float)),
                           "confident"),
                          ("confident-negative", put("confident", lambda c, kw: _set(
                              c.astype(np.int64), -1)), "confident")],
                      ocl + ob + ol + om + [
                          ("confident-tensor", put("confident", lambda c, kw:
                                                   torch.as_tensor(c)))]))
    bc, oc = _cams_cases()
    bt, ot = _tags_cases()
    bl2, ol2 = _box_label_cases(k=C)
    specs.append(Spec("a2gnn_box_seeds", G.a2gnn_box_seeds,
                      lambda: dict(image=_image(), cams=_cams(), tags=_tags(), boxes=_boxes(),
                                   box_labels=_box_labels(), grabcut_kwargs=dict(gk),
                                   seed_kwargs=dict(n_iter=1)),
                      _image_cases() + bc + bt + bb + bl2
                      + [("grabcut_kwargs", put("grabcut_kwargs", dict(n_iter=0)), "n_iter")],
                      [o for o in oc + ob + ol2 if "noncontig" not in o[0]]))
    return specs


def _walk_specs():
    specs = []
    g = pixel_graph(4, 4, 1, shape="square", symmetric=True)
    n = 16

    def ew():
        return torch.rand(g.edge_index.size(1), generator=torch.Generator().manual_seed(3))

    be, oe = edge_index_cases("edge_index", lambda kw: kw.get("num_nodes", n))
    bw, ow = weight_cases("edge_weight")
    bw = bw + [("edge_weight-negative", put("edge_weight", lambda w, kw: _set(w, -0.5, 0)),
                "edge_weight"),
               ("edge_weight-2d", put("edge_weight", lambda w, kw: w[None]), "edge_weight")]
    gbase = lambda: dict(edge_index=g.edge_index.clone(), edge_weight=ew(),  # noqa: E731
                         num_nodes=n, beta=2.0)
    specs.append(Spec("transition_matrix", WK.transition_matrix, gbase,
                      be + bw + _posint("num_nodes", -1) + [("beta", put("beta", 0.0), "beta"),
                                                             ("beta-nan", put("beta", NAN),
                                                              "beta")],
                      oe + ow,
                      runs=[("zero-weights", put("edge_weight", lambda w, kw: w * 0)),
                            ("no-edge", lambda kw: dict(kw, edge_index=torch.zeros(
                                2, 0, dtype=torch.long), edge_weight=torch.zeros(0)))]))
    t = WK.transition_matrix(g.edge_index, ew(), n, beta=2.0)

    def x():
        return torch.rand(3, n, generator=torch.Generator().manual_seed(4))

    bx = [("scores-rank", put("scores", lambda s, kw: s[0]), "scores"),
          ("scores-int", put("scores", lambda s, kw: (s * 10).long()), "scores"),
          ("scores-nan", put("scores", lambda s, kw: _set(s, NAN)), "scores"),
          ("scores-inf", put("scores", lambda s, kw: _set(s, INF)), "scores"),
          ("scores-nodes", put("scores", lambda s, kw: s[:, 1:]), "scores"),
          ("scores-list", put("scores", lambda s, kw: s.tolist()), "scores")]
    ox = [("scores-noncontig", put("scores", lambda s, kw: noncontig(s)))]
    specs.append(Spec("random_walk", WK.random_walk,
                      lambda: dict(scores=x(), transition=t.clone(), num_steps=4),
                      bx + _posint("num_steps", -1) + [
                          ("transition-shape", put("transition", torch.zeros(n, n + 1)),
                           "transition"),
                          ("transition-type", put("transition", np.eye(n)), "transition"),
                          ("transition-int", put("transition", torch.eye(n, dtype=torch.long)),
                           "transition"),
                          ("node_dim", put("node_dim", 2), "node_dim")],
                      ox + [("transition-dense", put("transition", lambda tt, kw:
                                                     tt.to_dense()))]))
    specs.append(Spec("random_walk_dense", WK.random_walk_dense,
                      lambda: dict(scores=x(), log_t=2, **gbase()),
                      bx + be + bw + _posint("log_t", -1) + [
                          ("max_nodes", put("max_nodes", 4), "max_nodes")],
                      ox + oe + ow))

    def cs():
        return torch.rand(3, 4, 4, generator=torch.Generator().manual_seed(5))

    bcs = [("cam_scores-rank", put("cam_scores", lambda s, kw: s[0]), "cam_scores"),
           ("cam_scores-int", put("cam_scores", lambda s, kw: (s * 9).long()), "cam_scores"),
           ("cam_scores-nan", put("cam_scores", lambda s, kw: _set(s, NAN, (0, 0, 0))),
            "cam_scores"),
           ("cam_scores-size", put("cam_scores", lambda s, kw: s[:, 1:]), "cam_scores|edge_index")]
    be16, oe16 = edge_index_cases("edge_index", lambda kw: n)
    specs.append(Spec("random_walk_propagate", WK.random_walk_propagate,
                      lambda: dict(cam_scores=cs(), edge_index=g.edge_index.clone(),
                                   edge_weight=ew(), beta=2.0, log_t=2),
                      bcs + be16 + bw + _posint("log_t", -1),
                      [("cam_scores-noncontig", put("cam_scores", lambda s, kw: noncontig(s)))]
                      + oe16 + ow))
    bc, oc = _cams_cases()
    bt, ot = _tags_cases()
    specs.append(Spec("random_walk_from_image", WK.random_walk_from_image,
                      lambda: dict(image=_image(), cams=_cams(), tags=_tags(), stride=4,
                                   radius=2, log_t=2),
                      _image_cases() + bc + bt + _posint("stride") + _posint("radius") + [
                          ("log_t", put("log_t", -1), "log_t"),
                          ("beta", put("beta", 0.0), "beta"),
                          ("sigma_rgb", put("sigma_rgb", 0.0), "sigma_rgb"),
                          ("sigma_xy", put("sigma_xy", -1.0), "sigma_xy"),
                          ("bg_power", put("bg_power", -1.0), "bg_power"),
                          ("features-rank", put("features", torch.rand(4, 4)), "features"),
                          ("features-nan", put("features", torch.full((2, 4, 4), NAN)),
                           "features")],
                      oc + ot))
    return specs


def _data_specs():
    specs = []
    bm, om = _labelmap_cases("mask", k=C, float_bad=True)
    bm = [b for b in bm if "rank" not in b[0]] + [("mask-bool", put("mask", lambda m, kw:
                                                                    m > 0), "mask")]
    nc = [("num_classes-1", put("num_classes", 1), "num_classes"),
          ("num_classes-300", put("num_classes", 300), "num_classes"),
          ("num_classes-float", put("num_classes", 3.0), "num_classes")]
    specs.append(Spec("mask_to_tags", A.mask_to_tags, lambda: dict(mask=_mask(), num_classes=C + 1),
                      bm + nc, om, runs=[("mask-empty", put("mask", np.zeros((0, 0), np.uint8)))]))
    bi, oi = _labelmap_cases("instances")
    specs.append(Spec("instance_boxes", A.instance_boxes, lambda: dict(instances=_instances()),
                      bi + [("num_instances", put("num_instances", -1), "num_instances"),
                            ("num_instances-small", put("num_instances", 1), "num_instances"),
                            ("num_instances-float", put("num_instances", 2.5), "num_instances")],
                      oi + [("num_instances-given", put("num_instances", 2))],
                      runs=[("instances-empty", put("instances", np.zeros((0, 0), np.int64)))]))
    bv, ov = _labelmap_cases("mask", k=255)
    specs.append(Spec("add_void_border", A.add_void_border, lambda: dict(mask=_mask(), width=3),
                      bv + _posint("width", -1) + [("ignore_index", put("ignore_index", 300),
                                                    "ignore_index")], ov))
    bw_ = [b for b in _labelmap_cases("mask", k=255)[0]]
    bwi = _labelmap_cases("instances")[0]
    specs.append(Spec("weak_labels_from_instances", A.weak_labels_from_instances,
                      lambda: dict(mask=_mask(), instances=_instances()),
                      bw_ + bwi + [
                          ("instances-size", put("instances", lambda i, kw: i[1:]),
                           "instances|mask"),
                          ("rng", put("rng", 3), "rng"),
                          ("num_background_points", put("num_background_points", -1),
                           "num_background_points"),
                          ("num_background_scribbles", put("num_background_scribbles", 1.5),
                           "num_background_scribbles"),
                          ("scribble_width", put("scribble_width", 0), "scribble_width"),
                          ("background_margin", put("background_margin", -1),
                           "background_margin")],
                      [("mask-int32", put("mask", lambda m, kw: m.astype(np.int32))),
                       ("instances-int32", put("instances", lambda m, kw: m.astype(np.int32))),
                       ("mask-tensor", put("mask", lambda m, kw: torch.as_tensor(m)))]))
    def region():
        return _instances() == 1

    br = [("region-rank", put("region", lambda r, kw: r[None]), "region"),
          ("region-values", put("region", lambda r, kw: r * 3), "region"),
          ("region-type", put("region", "mask.png"), "region"),
          ("region-nan", put("region", lambda r, kw: _set(r.astype(float), NAN)), "region"),
          ("dist-shape", put("dist", np.zeros((2, 2))), "dist"),
          ("dist-nan", put("dist", np.full((H, W), NAN)), "dist")]
    orr = [("region-uint8", put("region", lambda r, kw: r.astype(np.uint8))),
           ("region-tensor", put("region", lambda r, kw: torch.from_numpy(r))),
           ("region-noncontig", put("region", lambda r, kw: _noncontig_np(r)))]
    specs.append(Spec("object_scribble", A.object_scribble, lambda: dict(region=region()),
                      br + _posint("width") + [("erosion", put("erosion", 1.5), "erosion"),
                                               ("erosion-nan", put("erosion", NAN), "erosion")],
                      orr, runs=[("region-empty", put("region", np.zeros((H, W), bool)))]))
    specs.append(Spec("interior_point", A.interior_point, lambda: dict(region=region()),
                      br + [("region-empty", put("region", np.zeros((H, W), bool)), "region"),
                            ("depth", put("depth", 2.0), "depth"),
                            ("depth-nan", put("depth", NAN), "depth"),
                            ("rng", put("rng", 0), "rng")],
                      orr + [("rng-given", put("rng", None))]))
    bbr, obr = _labelmap_cases("mask")
    specs.append(Spec("background_region", A.background_region,
                      lambda: dict(mask=_mask(), margin=1),
                      [b for b in bbr if "negative" not in b[0]]
                      + [("margin-nan", put("margin", NAN), "margin"),
                         ("margin-str", put("margin", "1"), "margin")],
                      obr))
    bci, oci = _labelmap_cases("mask")
    specs.append(Spec("connected_instances", A.connected_instances, lambda: dict(mask=_mask()),
                      bci + [("ignore_index", put("ignore_index", "void"), "ignore_index")],
                      oci))
    # transforms -----------------------------------------------------------------------
    sc = _sample_cases()
    specs.append(Spec("resize_sample", T.resize_sample, lambda: dict(sample=_sample(), size=8),
                      sc + [("size-zero", put("size", 0), "size"),
                            ("size-float", put("size", (8.5, 8)), "size"),
                            ("size-len", put("size", (8, 8, 8)), "size")],
                      _sample_ok() + [("size-tuple", put("size", (8, 8))),
                                      ("size-numpy", put("size", np.int64(8)))]))
    specs.append(Spec("hflip_sample", T.hflip_sample, lambda: dict(sample=_sample()), sc,
                      _sample_ok()))
    crop = lambda: dict(sample=_sample(), top=2, left=1, height=10, width=12)  # noqa: E731
    specs.append(Spec("crop_sample", T.crop_sample, crop,
                      sc + [("top-negative", put("top", -1), "top|crop"),
                            ("height-zero", put("height", 0), "height|crop"),
                            ("width-outside", put("width", W), "width|crop"),
                            ("left-float", put("left", 1.0), "left"),
                            ("tags-length", _in_sample("tags", lambda t: t[:1]), "tags|mask")],
                      _sample_ok() + [("top-numpy", put("top", np.int64(2)))]))
    specs.append(Spec("sample_to_tensors", T.sample_to_tensors, lambda: dict(sample=_sample()),
                      sc + [("device", put("device", "gpu7"), "device")],
                      _sample_ok()))
    # samples (argument checks only: no image is loaded) --------------------------------
    specs.append(Spec("real_samples", S.real_samples, lambda: dict(names="chelsea"),
                      [("names-unknown", put("names", "dog"), "dog|names"),
                       ("names-type", put("names", 5), "names"),
                       ("names-item", put("names", ["chelsea", 3]), "names"),
                       ("void_border", put("void_border", -1), "void_border"),
                       ("void_border-float", put("void_border", 1.5), "void_border")]))
    specs.append(Spec("labelled_samples", S.labelled_samples, lambda: dict(names="voc"),
                      [("names-unknown", put("names", "dog"), "dog|names"),
                       ("names-type", put("names", 5), "names"),
                       ("names-item", put("names", [None]), "names"),
                       ("seed", put("seed", "0"), "seed"),
                       ("seed-negative", put("seed", -1), "seed"),
                       ("seed-float", put("seed", 0.5), "seed")]))
    return specs


SPECS = _seeds_specs() + _grabcut_specs() + _walk_specs() + _data_specs()
BAD, OK, RUNS = parametrize("pseudo+data", SPECS)


@pytest.mark.parametrize("spec,mutate,match", BAD)
def test_bad_input_is_named(spec, mutate, match):
    check_bad(spec, mutate, match)


@pytest.mark.parametrize("spec,mutate", OK)
def test_accepted_variant_gives_the_canonical_result(spec, mutate):
    check_ok(spec, mutate)


@pytest.mark.parametrize("spec,mutate", RUNS)
def test_edge_case_runs_finite(spec, mutate):
    check_runs(spec, mutate)


# ------------------------------------------------------------- the cases named in issue 17
def test_a2gnn_box_seeds_refuses_a_box_label_beyond_the_cam_classes():
    with pytest.raises(ValueError, match=r"'box_labels'.*1\.\.2"):
        G.a2gnn_box_seeds(_image(), _cams(), _tags(), _boxes(), np.array([1, 3]),
                          grabcut_kwargs=dict(n_iter=1, min_size=4),
                          seed_kwargs=dict(n_iter=1))


@pytest.mark.parametrize("fn", ["box_seed_labels", "fuse_box_seeds"])
def test_wrong_masks_shape_is_named_not_the_boxes(fn):
    small = _masks()[:, :8, :8]
    with pytest.raises(ValueError, match=r"'masks'.*\(2, 16, 16\)|'masks'.*\[M, H, W\]") as err:
        if fn == "box_seed_labels":
            G.box_seed_labels(_boxes(), _box_labels(), small, (H, W))
        else:
            G.fuse_box_seeds(_cam_label_map(), _boxes(), _box_labels(), small)
    assert "'masks'" in str(err.value)
    with pytest.raises(ValueError, match="'masks'"):  # without 'shape': the size is from masks
        G.box_seed_labels(_boxes(), _box_labels(), small)
    with pytest.raises(ValueError, match=r"'masks' must have shape \(2, 16, 16\)"):
        G.fuse_box_seeds(_cam_label_map(), _boxes() + 100, _box_labels(), small)


def test_value_checks_of_the_walk_follow_the_level():
    g = pixel_graph(4, 4, 1, shape="square")
    w = torch.ones(g.edge_index.size(1))
    bad = g.edge_index.clone()
    bad[0, 0] = 99
    with pytest.raises(ValueError, match="edge_index"):
        WK.transition_matrix(bad, None, 16)
    with pyg_wsss.checks("cheap"):
        with pytest.raises(ValueError, match="edge_index"):  # cheap: the shape still is
            WK.transition_matrix(bad[:1], None, 16)
        nan = w.clone()
        nan[0] = NAN
        WK.transition_matrix(g.edge_index, nan, 16)  # the NaN value check is skipped
    with pytest.raises(ValueError, match="'edge_weight' contains NaN"):
        WK.transition_matrix(g.edge_index, nan, 16)
