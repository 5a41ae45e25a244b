import numpy as np
import pytest
import torch

from pyg_wsss.pipelines import DemoContext, demos
from pyg_wsss.pipelines.wsgcn import (
    WSGCNConfig,
    build_wsgcn_data,
    complete_labels,
    grid_shape,
    node_features,
    partial_labels,
    train_wsgcn_batch,
    wsgcn_pseudo_labels,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _sample(seed=0, size=32, num_fg=3):
    """A toy image: one coloured square of class c on a textured background, and a CAM made
    by blurring the ground truth (a stand-in for a classifier's CAM)."""
    rng = np.random.default_rng(seed)
    img = (rng.random((size, size, 3)) * 60 + 40).astype(np.uint8)
    mask = np.zeros((size, size), np.uint8)
    c = 1 + seed % num_fg
    r0, c0 = rng.integers(4, size // 2, 2)
    s = size // 3
    mask[r0 : r0 + s, c0 : c0 + s] = c
    img[mask == c] = np.array([200, 60 * c, 30], np.uint8)
    tags = np.zeros(num_fg, np.float32)
    tags[c - 1] = 1
    cam = torch.zeros(num_fg, size, size)
    blur = torch.nn.functional.avg_pool2d(
        torch.from_numpy((mask == c).astype(np.float32))[None, None], 7, 1, 3
    )[0, 0]
    cam[c - 1] = blur / blur.max()
    return {"image": img, "mask": mask, "tags": tags, "name": f"toy{seed}"}, cam


def test_grid_shape():
    assert grid_shape(375, 500, 4) == (94, 125)
    assert grid_shape(96, 96, 2) == (48, 48)
    with pytest.raises(ValueError):
        grid_shape(0, 5)


def test_node_features():
    s, _ = _sample()
    pyramid = [torch.randn(8, 16, 16), torch.randn(40, 8, 8)]
    x = node_features(s["image"], (8, 8), pyramid, colour=1.0, position=1.0, max_dim=6)
    assert x.shape == (64, 6 + 3 + 2)
    x = node_features(s["image"], (8, 8), pyramid, colour=0.0, max_dim=None)
    assert x.shape == (64, 48)
    assert torch.allclose(x.mean(0), torch.zeros(48), atol=1e-5)
    x = node_features(s["image"], (8, 8), cams=torch.rand(3, 32, 32), cam_weight=1.0)
    assert x.shape == (64, 6)
    with pytest.raises(ValueError):
        node_features(s["image"], (8, 8), colour=0.0)
    # feature_weight scales the pyramid part; 0 drops it
    full = node_features(s["image"], (8, 8), pyramid, colour=1.0, max_dim=6)
    half = node_features(s["image"], (8, 8), pyramid, colour=1.0, max_dim=6, feature_weight=0.5)
    assert torch.allclose(half[:, :6], 0.5 * full[:, :6]) and torch.equal(half[:, 6:], full[:, 6:])
    none = node_features(s["image"], (8, 8), pyramid, colour=1.0, feature_weight=0.0)
    assert torch.equal(none, node_features(s["image"], (8, 8), colour=1.0))


def test_partial_labels_stand_in_cam():
    s, cam = _sample(1)
    lab = partial_labels(s["image"], cam, s["tags"], (16, 16))
    assert lab.shape == (16, 16) and lab.dtype == np.uint8
    values = set(np.unique(lab).tolist())
    assert values <= {0, int(np.flatnonzero(s["tags"])[0]) + 1, 255}
    assert (lab != 255).any()


def test_complete_labels_upsampling_and_crf():
    k, h, w = 4, 3, 3
    lp = torch.full((k, h, w), -5.0)
    lp[2] = 0.0  # class 2 everywhere
    lp[1, 0, 0] = 1.0  # ... except the top-left node
    img = np.zeros((9, 9, 3), np.uint8)
    tags = np.array([1, 1, 0], np.float32)
    lab, lab_crf = complete_labels(lp, img, tags, crf=True)
    assert lab.shape == (9, 9) and lab[0, 0] == 1 and lab[8, 8] == 2
    assert set(np.unique(lab_crf).tolist()) <= {0, 1, 2}
    # align_corners=True: the corner pixel is exactly the corner node
    only_bg = np.zeros(3, np.float32)
    lab, lab_crf = complete_labels(lp, img, only_bg, crf=True)
    assert (lab == 0).all() and (lab_crf == 0).all()
    lab, none = complete_labels(lp, img, tags, crf=False, restrict_to_tags=False)
    assert none is None and lab[8, 8] == 2
    with pytest.raises(ValueError):
        complete_labels(lp, img, tags, crf_scores="softmax")
    with pytest.raises(ValueError):
        complete_labels(lp[0], img)


def test_pipeline_end_to_end_on_toy_images():
    pairs = [_sample(i) for i in range(3)]
    samples, cams = [p[0] for p in pairs], [p[1] for p in pairs]
    cfg = WSGCNConfig(stride=2, steps=150, batch_size=2)
    rows = wsgcn_pseudo_labels(samples, cams, None, cfg, num_classes=4, return_partial=True)
    assert set(rows) == {"WSGCN", "WSGCN + CRF", "partial"}
    for name, maps in rows.items():
        assert len(maps) == 3
        for m, s in zip(maps, samples):
            assert m.shape == s["mask"].shape and m.dtype == np.uint8
    acc = np.mean([(m == s["mask"]).mean() for m, s in zip(rows["WSGCN"], samples)])
    assert acc > 0.8
    assert wsgcn_pseudo_labels([], [], config=cfg) == {"WSGCN": [], "WSGCN + CRF": []}
    with pytest.raises(ValueError):
        wsgcn_pseudo_labels(samples, cams[:2], config=cfg)


def test_node_feature_sources(monkeypatch):
    import pyg_wsss.pipelines.wsgcn as mod

    calls = []

    def fake_imagenet(images, device=None):
        calls.append(len(images))
        return [[torch.randn(8, 8, 8)] for _ in images]

    monkeypatch.setattr(mod, "imagenet_pyramid", fake_imagenet)
    widths = []
    real_build = mod.build_wsgcn_data

    def spy_build(image, labels, x, config, affinity_x=None):
        widths.append(x.size(1))
        return real_build(image, labels, x, config, affinity_x=affinity_x)

    monkeypatch.setattr(mod, "build_wsgcn_data", spy_build)
    pairs = [_sample(i) for i in range(2)]
    samples, cams = [p[0] for p in pairs], [p[1] for p in pairs]
    given = [[torch.randn(5, 16, 16)] for _ in samples]

    def run(features, **cfg):
        cfg = WSGCNConfig(**{"steps": 2, **cfg})
        return wsgcn_pseudo_labels(samples, cams, features, cfg, num_classes=4, crf=False)

    # auto: stride >= 4 -> the ImageNet pyramid, stride < 4 -> colour, given features win
    run(None, stride=4)
    assert calls == [1, 1] and widths == [8 + 3] * 2  # ImageNet pyramid (8 ch) + colour
    run(None, stride=2)
    assert widths[2:] == [3, 3]  # colour only
    run(given, stride=4)
    assert widths[4:] == [5 + 3] * 2  # the given pyramid + colour
    run(given, stride=4, node_features="colour")
    assert widths[6:] == [3, 3] and calls == [1, 1]
    with pytest.raises(ValueError, match="feature_weight"):
        run(given, feature_weight=-1.0)
    with pytest.raises(ValueError, match="given"):
        run(None, node_features="given")
    with pytest.raises(ValueError, match="node_features"):
        run(None, node_features="irn")


def test_batched_training_equals_single_images():
    cfg = WSGCNConfig(stride=4, steps=10)
    graphs = []
    for i in range(3):
        s, cam = _sample(i)
        grid = grid_shape(32, 32, 4)
        lab = partial_labels(s["image"], cam, s["tags"], grid)
        x = node_features(s["image"], grid, position=1.0)
        graphs.append(build_wsgcn_data(s["image"], lab, x, cfg))
    together = train_wsgcn_batch(graphs, cfg, seeds=[5, 6, 7], num_classes=4)
    alone = [
        train_wsgcn_batch([g], cfg, seeds=[s], num_classes=4)[0] for g, s in zip(graphs, [5, 6, 7])
    ]
    for a, b in zip(together, alone):
        assert a.shape == (4, 8, 8)
        assert torch.allclose(a, b, atol=1e-5)


def test_demo_registered_and_runs_on_a_tiny_context():
    assert "WSGCN" in demos()
    pairs = [_sample(i) for i in range(2)]
    ctx = DemoContext(
        name="toy",
        samples=[p[0] for p in pairs],
        cams=[p[1] for p in pairs],
        num_classes=4,
        class_names=["background", "a", "b", "c"],
    )
    rows = demos()["WSGCN"](ctx)
    assert set(rows) == {"WSGCN", "WSGCN + CRF"}
    assert all(len(v) == 2 for v in rows.values())


def test_background_fallback_for_cams_that_are_nowhere_zero():
    s, cam = _sample(2)
    weak = cam * 0.8 + 0.2 * (cam.sum(0, keepdim=True) >= 0)  # max CAM >= 0.2 everywhere
    weak = weak * torch.from_numpy(s["tags"]).view(-1, 1, 1)
    upstream = partial_labels(s["image"], weak, s["tags"], (16, 16), bg_fallback=None)
    assert not (upstream == 0).any()
    fixed = partial_labels(s["image"], weak, s["tags"], (16, 16), bg_fallback=0.3)
    assert (fixed == 0).any()
    assert ((fixed == 0) == ((upstream == 255) & (fixed != 255))).all()
    # the background seeds sit where the ground truth is background
    assert (s["mask"][::2, ::2][fixed == 0] == 0).mean() > 0.9
