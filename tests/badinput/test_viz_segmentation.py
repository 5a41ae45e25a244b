"""Bad-input matrix of pyg_wsss.viz, pyg_wsss.segmentation and the public functions of
pyg_wsss.pipelines.baselines (issue 17). Tiny images, a 1x1-conv "model", no backbone
weights."""
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from badinput_matrix import Spec, check_bad, check_ok, check_runs, noncontig, parametrize, put
from torch import nn

from pyg_wsss import viz
from pyg_wsss.nn.models.backbones import SmallCNN
from pyg_wsss.pipelines import baselines as B
from pyg_wsss.segmentation import data as SDATA
from pyg_wsss.segmentation import deeplab as DL
from pyg_wsss.segmentation import evaluate as EV
from pyg_wsss.segmentation import train as TR

pytest.importorskip("cv2")

H, W, K = 8, 10, 3
NAN, INF = float("nan"), float("inf")
TMP = Path(tempfile.mkdtemp(prefix="pyg_wsss_badinput_"))


def _image():
    return np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)


def _labels():
    y = np.zeros((H, W), np.uint8)
    y[2:6, 2:7] = 1
    y[5:8, 6:10] = 2
    y[0, 0] = 255
    return y


def _cam():
    return np.linspace(0, 1, H * W, dtype=np.float32).reshape(H, W)


def _set(a, v, idx=(0, 0)):
    a = a.clone() if isinstance(a, torch.Tensor) else np.array(a, copy=True)
    a[idx] = v
    return a


def _nc(a):
    return np.stack([a, a], -1)[..., 0]


def _image_cases(name="image"):
    return [
        (f"{name}-grey", put(name, lambda im, kw: im[..., 0]), name),
        (f"{name}-rgba", put(name, lambda im, kw: np.concatenate([im, im[..., :1]], -1)), name),
        (f"{name}-float-range", put(name, lambda im, kw: im.astype(np.float32)), name),
        (f"{name}-nan", put(name, lambda im, kw: np.full(im.shape, np.nan, np.float32)), name),
        (f"{name}-empty", put(name, np.zeros((0, W, 3), np.uint8)), name),
        (f"{name}-type", put(name, "image.png"), name),
    ]


def _image_ok(name="image"):
    return [(f"{name}-noncontig", put(name, lambda im, kw: _nc(im))),
            (f"{name}-tensor", put(name, lambda im, kw: torch.from_numpy(im)))]


def _label_cases(name, top=255, shape=None):
    bad = [(f"{name}-float", put(name, lambda y, kw: y.astype(np.float32)), name),
           (f"{name}-rank", put(name, lambda y, kw: y[None]), name),
           (f"{name}-negative", put(name, lambda y, kw: _set(y.astype(np.int64), -1)), name),
           (f"{name}-range", put(name, lambda y, kw: _set(y.astype(np.int64), top + 1)), name),
           (f"{name}-list", put(name, lambda y, kw: y.tolist()), name)]
    if shape:
        bad.append((f"{name}-size", put(name, lambda y, kw: y[1:]), name))
    ok = [(f"{name}-int32", put(name, lambda y, kw: y.astype(np.int32))),
          (f"{name}-tensor", put(name, lambda y, kw: torch.from_numpy(y.astype(np.int64)))),
          (f"{name}-noncontig", put(name, lambda y, kw: _nc(y)))]
    return bad, ok


def _cam_cases(name="cam"):
    bad = [(f"{name}-rank", put(name, lambda c, kw: c[None, None]), name),
           (f"{name}-nan", put(name, lambda c, kw: _set(c, NAN)), name),
           (f"{name}-inf", put(name, lambda c, kw: _set(c, INF)), name),
           (f"{name}-empty", put(name, lambda c, kw: c[:0]), name),
           (f"{name}-range", put(name, lambda c, kw: c * 3), name),
           (f"{name}-list", put(name, lambda c, kw: c.tolist()), name),
           (f"{name}-bool", put(name, lambda c, kw: c > 0.5), name)]
    ok = [(f"{name}-noncontig", put(name, lambda c, kw: _nc(c))),
          (f"{name}-tensor", put(name, lambda c, kw: torch.from_numpy(c)))]
    return bad, ok


def _frac(name):
    return [(f"{name}-range", put(name, 1.5), name), (f"{name}-nan", put(name, NAN), name),
            (f"{name}-str", put(name, "0.5"), name)]


def _posint(name, value=0):
    return [(f"{name}-{value}", put(name, value), name), (f"{name}-float", put(name, 1.5), name),
            (f"{name}-str", put(name, "2"), name)]


def _posnum(name, value=-1.0):
    return [(f"{name}-{value}", put(name, value), name), (f"{name}-nan", put(name, NAN), name),
            (f"{name}-str", put(name, "1"), name)]


class OneByOne(nn.Module):
    """A deterministic per-pixel "segmentation network" ``[B, 3, H, W] -> [B, K, H, W]``."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, K, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.arange(3 * K, dtype=torch.float32).view(K, 3, 1, 1)
                                   .sin())
            self.conv.bias.zero_()

    def forward(self, x):
        return self.conv(x)


def _samples():
    return [{"image": _image(), "mask": _labels(), "tags": np.array([1.0, 1.0], np.float32),
             "name": "a"}]


def _cams():
    c = torch.zeros(K - 1, H, W)
    c[0, 2:6, 2:7] = 1.0
    c[1, 5:8, 6:10] = 0.7
    return [c]


def _in_list(name, fn):
    def mutate(kw):
        kw = dict(kw)
        kw[name] = fn(kw[name])
        return kw

    return mutate


def _in_sample(key, fn):
    return _in_list("samples", lambda ss: [dict(ss[0], **{key: fn(ss[0].get(key))})])


def _samples_cases(mask=False):
    bad = [("samples-type", put("samples", "voc"), "samples"),
           ("samples-not-dict", put("samples", [np.zeros((H, W, 3), np.uint8)]), "samples"),
           ("samples-no-image", _in_list("samples", lambda ss: [{"mask": ss[0]["mask"]}]),
            "samples|image"),
           ("samples-empty", put("samples", []), "samples"),
           ("image-grey", _in_sample("image", lambda im: im[..., 0]), "image")]
    if mask:
        bad += [("samples-no-mask", _in_list("samples", lambda ss: [{"image": ss[0]["image"]}]),
                 "mask"),
                ("mask-size", _in_sample("mask", lambda m: m[1:]), "mask"),
                ("mask-range", _in_sample("mask", lambda m: _set(m, 7)), "mask"),
                ("mask-fraction", _in_sample("mask", lambda m: m + 0.5), "mask")]
    return bad


def _cams_cases():
    return [("cams-length", put("cams", lambda c, kw: c + c), "cams"),
            ("cams-type", put("cams", "cams.npy"), "cams"),
            ("cams-rank", put("cams", lambda c, kw: [c[0][0]]), "cams"),
            ("cams-nan", put("cams", lambda c, kw: [_set(c[0], NAN, (0, 0, 0))]), "cams"),
            ("cams-size", put("cams", lambda c, kw: [c[0][:, 1:]]), "cams|image"),
            ("tags-length", _in_sample("tags", lambda t: t[:1]), "tags")]


def _state(model):
    return [p.detach().clone() for p in model.state_dict().values()]


def _specs():
    specs = []
    # viz ---------------------------------------------------------------------------------
    specs.append(Spec("voc_palette", viz.voc_palette, lambda: dict(num_colors=256),
                      _posint("num_colors") + [
                          ("num_colors-300", put("num_colors", 300), "num_colors"),
                          ("void_color-range", put("void_color", (256, 0, 0)), "void_color"),
                          ("void_color-len", put("void_color", (1, 2)), "void_color"),
                          ("void_color-nan", put("void_color", (NAN, 0, 0)), "void_color")],
                      [("num_colors-numpy", put("num_colors", np.int64(256)))]))
    bl, ol = _label_cases("labels")
    specs.append(Spec("colorize_labels", viz.colorize_labels, lambda: dict(labels=_labels()),
                      bl + [("palette-shape", put("palette", np.zeros((4, 2))), "palette"),
                            ("palette-short", put("palette", np.zeros((2, 3))), "labels"),
                            ("palette-nan", put("palette", np.full((256, 3), NAN)), "palette")],
                      ol))
    bc, oc = _cam_cases()
    specs.append(Spec("cam_to_heatmap", viz.cam_to_heatmap, lambda: dict(cam=_cam()),
                      bc + [("colormap", put("colormap", "gray"), "colormap"),
                            ("normalize", put("normalize", "yes"), "normalize")], oc))
    bi, oi = _image_cases(), _image_ok()
    specs.append(Spec("overlay_cam", viz.overlay_cam, lambda: dict(image=_image(), cam=_cam()),
                      bi + [b for b in bc if "rank" not in b[0]] + _frac("alpha") + [
                          ("cam-rank", put("cam", lambda c, kw: c[None, None]), "cam"),
                          ("colormap", put("colormap", "gray"), "colormap")], oi + oc))
    bl2, ol2 = _label_cases("labels", shape=True)
    specs.append(Spec("overlay_labels", viz.overlay_labels,
                      lambda: dict(image=_image(), labels=_labels()),
                      bi + bl2 + _frac("alpha") + [
                          ("ignore_index", put("ignore_index", "void"), "ignore_index"),
                          ("palette-shape", put("palette", np.zeros((4, 2))), "palette")],
                      oi + ol2))

    def rows():
        return [[_image(), _labels(), _cam()], [None, _labels()]]

    bg = [("rows-type", put("rows", "grid.png"), "rows"),
          ("rows-empty", put("rows", []), "rows"),
          ("rows-row", put("rows", [_image()]), "rows"),
          ("rows-cell", put("rows", [[np.zeros((2, 2, 2, 2))]]), "rows"),
          ("rows-cell-nan", put("rows", [[np.full((H, W), NAN)]]), "rows|cam"),
          ("rows-cell-type", put("rows", [["a.png"]]), "rows"),
          ("row_titles", put("row_titles", ["a"]), "row_titles"),
          ("col_titles", put("col_titles", list("abcd")), "col_titles|column"),
          ("titles-rows", put("titles", [["a"]]), "titles"),
          ("titles-str", lambda kw: dict(kw, col_titles=None, titles="abc"), "titles"),
          ("row_titles-str", put("row_titles", "ab"), "row_titles"),
          ("cell_size", put("cell_size", 0), "cell_size"),
          ("cell_size-len", put("cell_size", (4, 4, 4)), "cell_size"),
          ("cell_size-float", put("cell_size", 4.5), "cell_size"),
          ("pad", put("pad", -1), "pad"),
          ("pad-float", put("pad", 1.5), "pad")]
    og = [("rows-tuple", put("rows", lambda r, kw: tuple(tuple(x) for x in r))),
          ("rows-tensor-cell", put("rows", lambda r, kw: [[torch.from_numpy(r[0][0])] + r[0][1:],
                                                          r[1]]))]
    specs.append(Spec("make_grid", viz.make_grid,
                      lambda: dict(rows=rows(), col_titles=["a", "b", "c"]), bg, og))
    specs.append(Spec("save_grid", viz.save_grid,
                      lambda: dict(rows=rows(), path=TMP / "grid.png"),
                      bg[:6] + [("path-suffix", put("path", TMP / "grid.jpg"), "path"),
                                ("path-type", put("path", 5), "path")],
                      [("path-str", put("path", str(TMP / "grid.png")))]))
    # segmentation.data ------------------------------------------------------------------
    specs.append(Spec("image_to_tensor", SDATA.image_to_tensor, lambda: dict(image=_image()),
                      bi, oi))
    bsl, osl = _label_cases("labels")
    specs.append(Spec(
        "save_label_maps",
        lambda labels, names, out_dir: SDATA.save_label_maps(labels, names, out_dir),
        lambda: dict(labels=[_labels()], names=["a"], out_dir=TMP / "labels"),
        [(lab, put("labels", lambda y, kw, m=m: [m({"labels": y[0]})["labels"]]), match)
         for lab, m, match in bsl]
        + [("names-length", put("names", ["a", "b"]), "names"),
           ("names-type", put("names", [3]), "names"),
           ("names-path", put("names", ["../x"]), "names"),
           ("labels-type", put("labels", "labels/"), "labels"),
           ("out_dir-type", put("out_dir", 5), "out_dir")],
        [(lab, put("labels", lambda y, kw, m=m: [m({"labels": y[0]})["labels"]]))
         for lab, m in osl]))
    png = TMP / "one.png"
    SDATA.save_label_maps([_labels()], ["one"], TMP)
    from PIL import Image

    Image.fromarray(_image()).save(TMP / "rgb.png")
    specs.append(Spec("load_label_map", SDATA.load_label_map, lambda: dict(path=png),
                      [("path-rgb", put("path", TMP / "rgb.png"), "label map|mode"),
                       ("path-type", put("path", 5), "path")],
                      [("path-str", put("path", str(png)))]))

    def ds(**kw):
        d = SDATA.PseudoLabelDataset(**kw)
        return d.sample(0, torch.Generator().manual_seed(0))

    dbase = lambda: dict(images=_samples(), labels=[_labels()], crop_size=6,  # noqa: E731
                         scale_range=(0.8, 1.2), num_classes=K)
    specs.append(Spec("PseudoLabelDataset", ds, dbase, [
        ("images-empty", put("images", []), "images"),
        ("images-type", put("images", [np.zeros((H, W, 3), np.uint8)]), "images"),
        ("labels-length", put("labels", lambda y, kw: y + y), "label"),
        ("labels-type", put("labels", 5), "labels"),
        ("labels-size", put("labels", lambda y, kw: [y[0][1:]]), "label"),
        ("labels-float", put("labels", lambda y, kw: [y[0].astype(np.float32)]), "label"),
        ("labels-range", put("labels", lambda y, kw: [_set(y[0], 7)]), "label"),
        ("labels-negative", put("labels", lambda y, kw: [_set(y[0].astype(int), -1)]), "label"),
        ("crop_size", put("crop_size", 0), "crop_size"),
        ("crop_size-float", put("crop_size", 2.5), "crop_size"),
        ("scale_range-order", put("scale_range", (1.2, 0.8)), "scale_range"),
        ("scale_range-zero", put("scale_range", (0.0, 1.0)), "scale_range"),
        ("scale_range-nan", put("scale_range", (0.5, NAN)), "scale_range"),
        ("scale_range-len", put("scale_range", (0.5, 1.0, 2.0)), "scale_range"),
        ("num_classes", put("num_classes", 0), "num_classes"),
        ("flip", put("flip", "yes"), "flip")],
        [("labels-int32", put("labels", lambda y, kw: [y[0].astype(np.int32)])),
         ("labels-tensor", put("labels", lambda y, kw: [torch.from_numpy(y[0])])),
         ("labels-dict", put("labels", lambda y, kw: {"a": y[0]})),
         ("labels-noncontig", put("labels", lambda y, kw: [_nc(y[0])]))]))
    # segmentation.train -----------------------------------------------------------------
    specs.append(Spec("poly_lr", TR.poly_lr,
                      lambda: dict(base_lr=0.1, iteration=3, max_iterations=10),
                      _posnum("base_lr") + _posint("max_iterations") + [
                          ("iteration", put("iteration", -1), "iteration"),
                          ("iteration-float", put("iteration", 1.5), "iteration"),
                          ("power", put("power", NAN), "power")],
                      [("iteration-numpy", put("iteration", np.int64(3)))],
                      runs=[("iteration-end", put("iteration", 10))]))

    def logits():
        return torch.randn(2, K, 4, 5, generator=torch.Generator().manual_seed(0))

    def targets():
        return torch.tensor(_labels()[:4, :5].astype(np.int64))[None].repeat(2, 1, 1)

    specs.append(Spec("segmentation_loss", TR.segmentation_loss,
                      lambda: dict(logits=logits(), labels=targets()), [
                          ("logits-rank", put("logits", lambda x, kw: x[0, 0]), "logits"),
                          ("logits-int", put("logits", lambda x, kw: x.long()), "logits"),
                          ("logits-nan", put("logits", lambda x, kw: _set(x, NAN, (0, 0, 0, 0))),
                           "logits"),
                          ("logits-list", put("logits", lambda x, kw: x.tolist()), "logits"),
                          ("labels-float", put("labels", lambda y, kw: y.float()), "labels"),
                          ("labels-range", put("labels", lambda y, kw: _set(y, K, (0, 1, 1))),
                           "labels"),
                          ("labels-negative", put("labels", lambda y, kw: _set(y, -1, (0, 1, 1))),
                           "labels"),
                          ("labels-size", put("labels", lambda y, kw: y[:, 1:]), "labels"),
                          ("labels-batch", put("labels", lambda y, kw: y[:1]), "labels"),
                          ("ignore_index", put("ignore_index", 1.5), "ignore_index")],
                      [("labels-int32", put("labels", lambda y, kw: y.int())),
                       ("labels-noncontig", put("labels", lambda y, kw: noncontig(y))),
                       ("logits-noncontig", put("logits", lambda x, kw: noncontig(x)))],
                      runs=[("all-ignored", put("labels", lambda y, kw: torch.full_like(y, 255)))]))

    def train(**kw):
        torch.manual_seed(0)
        model = kw.pop("model") or OneByOne()
        return _state(TR.train_segmentation(model, **kw))

    def dataset():
        return SDATA.PseudoLabelDataset(_samples(), [_labels()], flip=False)

    specs.append(Spec("train_segmentation", train,
                      lambda: dict(model=None, dataset=dataset(), iterations=2, batch_size=1),
                      [("model", put("model", "deeplab"), "model"),
                       ("dataset", put("dataset", lambda d, kw: _samples()), "dataset")]
                      + _posint("iterations") + _posint("batch_size") + _posnum("lr")
                      + _posnum("momentum") + _posnum("weight_decay") + _posnum("poly_power")
                      + _posnum("head_lr_mult") + _posint("checkpoint_every")
                      + [("seed", put("seed", "0"), "seed"),
                         ("seed-negative", put("seed", -1), "seed"),
                         ("device", put("device", "gpu7"), "device"),
                         ("checkpoint", put("checkpoint", 5), "checkpoint")],
                      [("iterations-numpy", put("iterations", np.int64(2)))]))
    # segmentation.evaluate --------------------------------------------------------------
    pbase = lambda: dict(model=OneByOne(), image=_image(), scales=(1.0, 0.5))  # noqa: E731
    common = [("model", put("model", "deeplab"), "model"),
              ("scales-empty", put("scales", ()), "scales"),
              ("scales-negative", put("scales", (1.0, -0.5)), "scales"),
              ("scales-nan", put("scales", (NAN,)), "scales"),
              ("scales-type", put("scales", 1.0), "scales"),
              ("device", put("device", "gpu7"), "device")] + bi
    specs.append(Spec("predict_probabilities", EV.predict_probabilities, pbase, common,
                      oi + [("scales-list", put("scales", [1.0, 0.5]))]))
    specs.append(Spec("predict_segmentation", EV.predict_segmentation, pbase,
                      common + [("crf", put("crf", "fast"), "crf|preset"),
                                ("crf_iterations", put("crf_iterations", -1), "crf_iterations")],
                      oi))
    specs.append(Spec("evaluate_segmentation", EV.evaluate_segmentation,
                      lambda: dict(model=OneByOne(), samples=_samples(), num_classes=K), [
                          ("model", put("model", "deeplab"), "model"),
                          ("num_classes", put("num_classes", 0), "num_classes"),
                          ("class_names", put("class_names", ["a"]), "class_names"),
                          ("scales", put("scales", ()), "scales")] + _samples_cases(mask=True),
                      [("mask-int32", _in_sample("mask", lambda m: m.astype(np.int32))),
                       ("mask-tensor", _in_sample("mask", lambda m: torch.from_numpy(m))),
                       ("mask-float-whole", _in_sample("mask", lambda m: m.astype(np.float32)))]))
    # segmentation.deeplab ---------------------------------------------------------------
    specs.append(Spec("ASPP()", DL.ASPP, lambda: dict(in_channels=4, out_channels=2),
                      _posint("in_channels") + _posint("out_channels") + [
                          ("rates-empty", put("rates", ()), "rates"),
                          ("rates-zero", put("rates", (1, 0)), "rates"),
                          ("rates-type", put("rates", 3), "rates")]))

    def x4():
        return torch.rand(1, 4, 5, 6, generator=torch.Generator().manual_seed(0))

    def aspp(x):
        torch.manual_seed(0)
        return DL.ASPP(4, 2, rates=(1, 2))(x)

    specs.append(Spec("ASPP", aspp, lambda: dict(x=x4()), [
        ("x-rank", put("x", lambda x, kw: x[0]), "'x'"),
        ("x-channels", put("x", lambda x, kw: x[:, :3]), "'x'"),
        ("x-int", put("x", lambda x, kw: x.long()), "'x'"),
        ("x-nan", put("x", lambda x, kw: _set(x, NAN, (0, 0, 0, 0))), "'x'"),
        ("x-list", put("x", lambda x, kw: x.tolist()), "'x'")],
        [("x-noncontig", put("x", lambda x, kw: noncontig(x)))]))

    def backbone():
        torch.manual_seed(0)
        return SmallCNN(widths=(4, 8), output_stride=2)

    specs.append(Spec("DeepLab()", DL.DeepLab,
                      lambda: dict(backbone=backbone(), num_classes=K, aspp_channels=4,
                                   rates=(1,)),
                      [("backbone", put("backbone", "resnet"), "backbone")]
                      + _posint("num_classes") + _posint("aspp_channels")
                      + [("dropout", put("dropout", 1.5), "dropout"),
                         ("dropout-nan", put("dropout", NAN), "dropout"),
                         ("head", put("head", "grm"), "head")]))

    def deeplab(x):
        torch.manual_seed(0)
        return DL.DeepLab(backbone(), K, aspp_channels=4, rates=(1,)).eval()(x)

    def img4():
        return torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))

    specs.append(Spec("DeepLab", deeplab, lambda: dict(x=img4()), [
        ("x-rank", put("x", lambda x, kw: x[0]), "'x'"),
        ("x-channels", put("x", lambda x, kw: x[:, :2]), "'x'"),
        ("x-int", put("x", lambda x, kw: x.long()), "'x'"),
        ("x-nan", put("x", lambda x, kw: _set(x, NAN, (0, 0, 0, 0))), "'x'"),
        ("x-empty", put("x", lambda x, kw: x[:, :, :0]), "'x'")],
        [("x-noncontig", put("x", lambda x, kw: noncontig(x)))]))

    def build(**kw):
        torch.manual_seed(0)
        kw.setdefault("backbone", backbone())
        return _state(DL.build_deeplab(**kw))

    specs.append(Spec("build_deeplab", build,
                      lambda: dict(num_classes=K, aspp_channels=4, rates=(1,)),
                      _posint("num_classes") + [
                          ("num_classes-1", put("num_classes", 1), "num_classes"),
                          ("backbone-name", put("backbone", "resnet7"), "backbone|name"),
                          ("backbone-type", put("backbone", 5), "backbone"),
                          ("rates", put("rates", (0,)), "rates"),
                          ("aspp_channels", put("aspp_channels", 0), "aspp_channels"),
                          ("grm-kwargs", put("score", "dot"), "grm"),
                          ("node_features-shape", lambda kw: dict(
                              kw, grm=True, node_features=torch.eye(K)), "node_features"),
                          ("node_features-nan", lambda kw: dict(
                              kw, grm=True, node_features=torch.full((K - 1, K - 1), NAN)),
                           "node_features")]))
    # pipelines.baselines ----------------------------------------------------------------
    sbase = lambda: dict(samples=_samples(), cams=_cams())  # noqa: E731
    scases = _samples_cases()
    specs.append(Spec("cam_threshold_labels", B.cam_threshold_labels, sbase,
                      [s for s in scases if "image" not in s[0] and "not-dict" not in s[0]]
                      + [("samples-not-dict", put("samples", [np.zeros((H, W, 3), np.uint8)]),
                          "samples")]
                      + [c for c in _cams_cases() if c[0] != "cams-size"]
                      + _posnum("bg_threshold"),
                      [("cams-numpy", put("cams", lambda c, kw: [c[0].numpy()]))]))
    specs.append(Spec("cam_seed_labels", B.cam_seed_labels,
                      lambda: dict(n_iter=1, **sbase()),
                      scases + _cams_cases() + [("ratio", put("ratio", 2.0), "ratio")],
                      [("cams-numpy", put("cams", lambda c, kw: [c[0].numpy()]))]))
    specs.append(Spec("random_walk_crf_labels", B.random_walk_crf_labels,
                      lambda: dict(stride=2, radius=2, log_t=2, **sbase()),
                      scases + _cams_cases() + _posint("stride") + _posint("max_nodes")
                      + [("features-length", put("features", [[], []]), "features"),
                         ("features-type", put("features", "f.npy"), "features"),
                         ("crf_preset", put("crf_preset", "fast"), "crf_preset|preset"),
                         ("device", put("device", "gpu7"), "device")],
                      [("stride-numpy", put("stride", np.int64(2)))]))
    bseeds, oseeds = _label_cases("seeds", shape=True)
    specs.append(Spec("seed_precision", B.seed_precision,
                      lambda: dict(seeds=_labels(), mask=np.roll(_labels(), 1, 0)),
                      [b for b in bseeds if "range" not in b[0] and "float" not in b[0]]
                      + [("mask-size", put("mask", lambda m, kw: m[1:]), "mask|seeds"),
                         ("seeds-fraction", put("seeds", lambda m, kw: m + 0.5), "seeds"),
                         ("mask-nan", put("mask", lambda m, kw: _set(m.astype(float), NAN)),
                          "mask"),
                         ("ignore_index", put("ignore_index", "void"), "ignore_index")],
                      oseeds + [("mask-float", put("mask", lambda m, kw: m.astype(float)))]))
    return specs


SPECS = _specs()
BAD, OK, RUNS = parametrize("viz+segmentation+baselines", SPECS)


@pytest.mark.parametrize("spec,mutate,match", BAD)
def test_bad_input_is_named(spec, mutate, match):
    check_bad(spec, mutate, match)


@pytest.mark.parametrize("spec,mutate", OK)
def test_accepted_variant_gives_the_canonical_result(spec, mutate):
    check_ok(spec, mutate)


@pytest.mark.parametrize("spec,mutate", RUNS)
def test_edge_case_runs_finite(spec, mutate):
    check_runs(spec, mutate)


def test_value_checks_of_the_stage_2_loss_follow_the_level():
    import pyg_wsss

    logits = torch.zeros(1, K, 2, 2)
    logits[0, 0, 0, 0] = NAN
    labels = torch.zeros(1, 2, 2, dtype=torch.long)
    with pytest.raises(ValueError, match="'logits' contains NaN"):
        TR.segmentation_loss(logits, labels)
    with pyg_wsss.checks("cheap"):
        assert torch.isnan(TR.segmentation_loss(logits, labels))  # value check skipped
        with pytest.raises(ValueError, match="'labels' has shape"):  # cheap checks run
            TR.segmentation_loss(logits, labels[:, :1])
