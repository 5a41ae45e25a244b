"""Bad-input matrix of pyg_wsss.metrics and pyg_wsss.pseudo.{expand, crf, cam} (issue 17)."""
import numpy as np
import pytest
import torch
from badinput_matrix import REGISTRY, Spec, check_bad, check_ok, check_runs, parametrize, put

from pyg_wsss import metrics
from pyg_wsss.pseudo import cam, crf, expand

H, W, K = 4, 5, 3
NAN = float("nan")


def _pred():
    return np.array([[0, 1, 1, 2, 2], [0, 0, 1, 2, 255], [1, 1, 1, 0, 0], [2, 2, 0, 0, 1]])


def _target():
    return np.array([[0, 1, 1, 2, 2], [0, 1, 1, 2, 2], [255, 1, 1, 0, 0], [2, 2, 0, 0, 0]])


def _image():
    return np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)


def _seeds():
    s = np.full((H, W), 255, np.int64)
    s[0, 0], s[3, 4], s[1, 2] = 0, 1, 2
    return s


def _segments():
    s = np.zeros((H, W), np.int64)
    s[:, 2:] = 1
    s[2:] += 2
    return s


def _label_cases(name, k=K, float_ok=False):
    bad = [(f"{name}-range", put(name, lambda y, kw: np.where(y == 0, k + 1, y)), name),
           (f"{name}-negative", put(name, lambda y, kw: np.where(y == 0, -1, y)), name),
           (f"{name}-shape", put(name, lambda y, kw: y[1:]), name),
           (f"{name}-list", put(name, lambda y, kw: y.tolist()), name)]
    if not float_ok:
        bad.append((f"{name}-float", put(name, lambda y, kw: y.astype(np.float32)), name))
    ok = [(f"{name}-tensor", put(name, lambda y, kw: torch.from_numpy(y))),
          (f"{name}-int32", put(name, lambda y, kw: y.astype(np.int32))),
          (f"{name}-noncontig", put(name, lambda y, kw: np.asfortranarray(y)))]
    return bad, ok


def _image_cases(name="image"):
    return [
        (f"{name}-grey", put(name, lambda im, kw: im[..., 0]), name),
        (f"{name}-rgba", put(name, lambda im, kw: np.concatenate([im, im[..., :1]], -1)), name),
        (f"{name}-type", put(name, "image.png"), name),
        (f"{name}-empty", put(name, np.zeros((0, W, 3), np.uint8)), name),
    ]


def _image_shape_case(name="image"):
    return [(f"{name}-shape", put(name, lambda im, kw: im[1:]), name)]


def _probs():
    g = np.random.default_rng(1).random((K, H, W))
    return g / g.sum(0, keepdims=True)


def _specs():
    specs = []
    # metrics ----------------------------------------------------------------------------
    bp, op = _label_cases("pred")
    bt, ot = _label_cases("target")
    bad = [b for b in bp + bt if not b[0].endswith("shape")] + [
        ("pred-shape", put("pred", lambda y, kw: y[1:]), "pred"),
        ("num_classes", put("num_classes", 0), "num_classes"),
        ("ignore_index-class", put("ignore_index", 1), "ignore_index")]
    specs.append(Spec("confusion_matrix", metrics.confusion_matrix,
                      lambda: dict(pred=_pred(), target=_target(), num_classes=K), bad, op + ot))
    def _rename(cases, old, new):
        out = []
        for label, mutate, *match in cases:
            def m(kw, mutate=mutate):
                kw = dict(kw)
                kw[old] = kw.pop(new)
                kw = mutate(kw)
                kw[new] = kw.pop(old)
                return kw
            out.append((label.replace(old, new), m, *match))
        return out

    bad = _rename(bp, "pred", "preds") + _rename(bt, "target", "targets") + [
        ("targets-all-void", put("targets", lambda t, kw: np.full_like(t, 255)), "target"),
        ("preds-empty-list", lambda kw: dict(kw, preds=[], targets=[]), "preds"),
        ("average", put("average", "macro"), "average"),
        ("unlabelled", put("unlabelled", "drop"), "unlabelled")]
    ok = _rename(op, "pred", "preds") + _rename(ot, "target", "targets") + [
        ("preds-list", lambda kw: dict(kw, preds=[kw["preds"]], targets=[kw["targets"]]))]
    specs.append(Spec("mean_iou", metrics.mean_iou,
                      lambda: dict(preds=_pred(), targets=_target(), num_classes=K), bad, ok))

    def cm(**kw):
        m = metrics.ConfusionMatrix(K).update(kw["pred"], kw["target"])
        return m.matrix, m.miou(), m.unlabelled

    bad = [b for b in bp + bt if not b[0].endswith("shape")] + [
        ("pred-shape", put("pred", lambda y, kw: y[1:]), "pred"),
        ("target-all-void", put("target", lambda t, kw: np.full_like(t, 255)), "target")]
    specs.append(Spec("ConfusionMatrix", cm, lambda: dict(pred=_pred(), target=_target()),
                      bad, op + ot))
    bad = [("num_classes", lambda kw: dict(num_classes=0), "num_classes"),
           ("unlabelled", put("unlabelled", "drop"), "unlabelled"),
           ("ignore_index", put("ignore_index", 1), "ignore_index"),
           ("class_names", put("class_names", ["a"]), "class_names")]
    specs.append(Spec("ConfusionMatrix()", metrics.ConfusionMatrix,
                      lambda: dict(num_classes=K), bad))
    # pseudo.expand ----------------------------------------------------------------------
    bad = _image_cases() + [("n_segments", put("n_segments", 0), "n_segments"),
                            ("sigma", put("sigma", -1.0), "sigma")]
    specs.append(Spec("pseudo.slic_segments", expand.slic_segments,
                      lambda: dict(image=_image(), n_segments=4), bad,
                      ok=[("image-tensor", put("image", lambda im, kw: torch.from_numpy(im)))]))
    bs, os_ = _label_cases("seeds", k=300, float_ok=False)
    bs = [b for b in bs if b[0] not in ("seeds-range", "seeds-list")] + [
        ("seeds-range", put("seeds", lambda s, kw: np.where(s == 0, 300, s)), "seeds")]
    bad = bs + _image_cases() + _image_shape_case() + [
        ("segments-shape", put("segments", lambda s, kw: s[1:]), "segments"),
        ("segments-negative", put("segments", lambda s, kw: s - 1), "segments"),
        ("segments-float", put("segments", lambda s, kw: s.astype(np.float32)), "segments"),
        ("image-and-segments-missing", lambda kw: dict(kw, image=None, segments=None), "image")]
    ok = os_ + [("segments-tensor", put("segments", lambda s, kw: torch.from_numpy(s))),
                ("image-none", put("image", None))]
    specs.append(Spec("expand_seeds_by_superpixels", expand.expand_seeds_by_superpixels,
                      lambda: dict(image=_image(), seeds=_seeds(), segments=_segments()),
                      bad, ok))
    bad = [b for b in bs if b[0].startswith("seeds")]
    specs.append(Spec(
        "expand_scribbles",
        lambda **kw: expand.expand_scribbles(kw["image"], kw["scribbles"], segments=_segments()),
        lambda: dict(image=_image(), scribbles=_seeds()),
        [(lab.replace("seeds", "scribbles"),
          put("scribbles", lambda s, kw, m=m: m({"seeds": s})["seeds"]), "scribbles")
         for lab, m, _ in bad] + _image_cases(),
    ))
    pts = np.array([[0, 0, 1], [3, 4, 2]])
    bad = [("points-shape", put("points", lambda p, kw: p[:, :2]), "points"),
           ("points-float", put("points", lambda p, kw: p.astype(np.float32)), "points"),
           ("points-outside", put("points", np.array([[0, W, 1]])), "points"),
           ("points-negative", put("points", np.array([[-1, 0, 1]])), "points"),
           ("points-class", put("points", np.array([[0, 0, 255]])), "points"),
           ("shape", put("shape", (H, -1)), "shape"),
           ("shape-len", put("shape", (H,)), "shape")]
    ok = [("points-tensor", put("points", lambda p, kw: torch.from_numpy(p))),
          ("points-list", put("points", lambda p, kw: p.tolist())),
          ("points-int32", put("points", lambda p, kw: p.astype(np.int32)))]
    specs.append(Spec("points_to_seeds", expand.points_to_seeds,
                      lambda: dict(points=pts.copy(), shape=(H, W)), bad, ok,
                      runs=[("no-point", put("points", np.zeros((0, 3), np.int64)))]))
    specs.append(Spec(
        "expand_points",
        lambda **kw: expand.expand_points(kw["image"], kw["points"], segments=_segments()),
        lambda: dict(image=_image(), points=pts.copy()),
        [b for b in bad if b[0].startswith("points")] + _image_cases(),
        [o for o in ok if o[0].startswith("points")],
    ))
    bad = (_label_cases("primary", k=300)[0][1:] + _label_cases("fallback", k=300)[0][1:])
    bad = [b for b in bad if not b[0].endswith("-list")]
    bad = [(lab, m, "primary|fallback" if lab.endswith("shape") else match)
           for lab, m, match in bad] + [
        ("primary-range", put("primary", lambda y, kw: np.where(y == 0, 300, y)), "primary")]
    ok = [("primary-tensor", put("primary", lambda y, kw: torch.from_numpy(y)))]
    specs.append(Spec("merge_seeds", expand.merge_seeds,
                      lambda: dict(primary=_seeds(), fallback=_pred()), bad, ok))
    # pseudo.crf -------------------------------------------------------------------------
    bad = _image_cases() + _image_shape_case() + [
        ("probs-shape", put("probs", lambda p, kw: p[:, 1:]), "probs"),
        ("probs-rank", put("probs", lambda p, kw: p[0]), "probs"),
        ("probs-nan", put("probs", lambda p, kw: np.where(p > 0.5, np.nan, p)), "probs"),
        ("probs-negative", put("probs", lambda p, kw: p - 1), "probs"),
        ("probs-list", put("probs", lambda p, kw: p.tolist()), "probs"),
        ("labels-range", put("labels", [0, K]), "labels"),
        ("labels-dup", put("labels", [0, 0]), "labels"),
        ("n_iter", put("n_iter", -1), "n_iter"),
        ("preset", put("preset", "fast"), "preset"),
        ("scores", put("scores", "odds"), "scores")]
    ok = [("probs-noncontig", put("probs", lambda p, kw: np.asfortranarray(p))),
          ("image-tensor", put("image", lambda im, kw: torch.from_numpy(im)))]
    specs.append(Spec("dense_crf", crf.dense_crf,
                      lambda: dict(image=_image(), probs=_probs(), n_iter=2), bad, ok))
    # pseudo.cam -------------------------------------------------------------------------

    def cam_fn(x):
        return torch.stack([x.mean(1), x[:, 0]], 1)  # [1, 2, h, w]

    def img():
        return torch.rand(3, H, W, generator=torch.Generator().manual_seed(2))

    bad = [("image-rank", put("image", lambda x, kw: x[0]), "image"),
           ("image-channels", put("image", lambda x, kw: x[:2]), "image"),
           ("image-int", put("image", lambda x, kw: (x * 255).long()), "image"),
           ("image-nan", put("image", lambda x, kw: x.index_fill(0, torch.tensor([0]), NAN)),
            "image"),
           ("scales-empty", put("scales", ()), "scales"),
           ("scales-negative", put("scales", (1.0, -0.5)), "scales"),
           ("cam_fn", put("cam_fn", "cam"), "cam_fn"),
           ("cam_fn-returns", put("cam_fn", lambda old, kw: (lambda x: x.numpy())), "cam_fn")]
    ok = [("image-noncontig", put("image", lambda x, kw: x.transpose(1, 2).contiguous()
                                  .transpose(1, 2)))]
    specs.append(Spec("multiscale_cam", cam.multiscale_cam,
                      lambda: dict(cam_fn=cam_fn, image=img(), scales=(1.0, 0.5)), bad, ok))

    class Model:
        def cam(self, x):
            return cam_fn(x)

    bad = [("images-type", put("images", "a.png"), "images"),
           ("images-grey", put("images", lambda ims, kw: [ims[0][..., 0]]), "image"),
           ("tags-length", put("tags", lambda t, kw: t + t), "tags"),
           ("tags-not-multi-hot", put("tags", [np.array([2, 0])]), "tags"),
           ("tags-size", put("tags", [np.array([1, 0, 1])]), "tags"),
           ("normalize", put("normalize", "l2"), "normalize"),
           ("scales", put("scales", ()), "scales")]
    ok = [("tags-tensor", put("tags", lambda t, kw: [torch.as_tensor(v) for v in t]))]
    specs.append(Spec("classifier_cams", cam.classifier_cams,
                      lambda: dict(model=Model(), images=[_image()], tags=[np.array([1, 0])],
                                   scales=(1.0,), flip=False), bad, ok))
    return specs


SPECS = _specs()
BAD, OK, RUNS = parametrize("metrics+pseudo", SPECS)


@pytest.mark.parametrize("spec,mutate,match", BAD)
def test_bad_input_is_named(spec, mutate, match):
    check_bad(spec, mutate, match)


@pytest.mark.parametrize("spec,mutate", OK)
def test_accepted_variant_gives_the_canonical_result(spec, mutate):
    check_ok(spec, mutate)


@pytest.mark.parametrize("spec,mutate", RUNS)
def test_edge_case_runs_finite(spec, mutate):
    check_runs(spec, mutate)


def test_miou_never_nan():
    m = metrics.ConfusionMatrix(K)
    with pytest.raises(ValueError, match="target"):
        m.miou()
    # classes in neither target nor prediction are excluded, never NaN
    m.update(np.zeros((2, 2), np.int64), np.zeros((2, 2), np.int64))
    assert m.miou() == 1.0 and m.miou("all") == pytest.approx(1 / 3)


def test_registry_is_recorded():
    assert REGISTRY["metrics+pseudo"]
