import time

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from pyg_wsss.pipelines import _DEMOS, DemoContext
from pyg_wsss.pipelines.baselines import (
    cam_seed_labels,
    cam_threshold_labels,
    demo,
    random_walk_crf_labels,
    seed_precision,
)


def _blurred_cams(sample, num_fg, sigma=3.0):
    mask = sample["mask"]
    cams = np.zeros((num_fg,) + mask.shape, np.float32)
    for c in np.flatnonzero(sample["tags"]):
        blur = ndi.gaussian_filter((mask == c + 1).astype(np.float32), sigma)
        cams[c] = (blur / max(blur.max(), 1e-6)) ** 2  # peaky, under-activated like a CAM
    return torch.from_numpy(cams)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ctx():
    from pyg_wsss.data import SyntheticWSSS

    ds = SyntheticWSSS(num_images=2, image_size=64, num_classes=5, seed=0)
    samples = [ds[i] for i in range(len(ds))]
    cams = [_blurred_cams(s, 5) for s in samples]
    feats = [[torch.rand(8, 16, 16), torch.rand(16, 8, 8)] for _ in samples]
    return DemoContext(name="synthetic", samples=samples, cams=cams, num_classes=6,
                       class_names=list(ds.class_names), features=feats)


def test_demo_rows(ctx):
    pytest.importorskip("pydensecrf.densecrf")
    assert _DEMOS["Baselines"] is demo
    start = time.perf_counter()
    rows = demo(ctx)
    seconds = time.perf_counter() - start
    assert set(rows) == {"CAM (bg threshold)", "CAM seeds", "Random walk + CRF"}
    for name, labels in rows.items():
        assert len(labels) == len(ctx.samples)
        for lab, s in zip(labels, ctx.samples):
            assert lab.dtype == np.uint8 and lab.shape == s["mask"].shape
            present = {0} | {int(c) + 1 for c in np.flatnonzero(s["tags"])} | {255}
            assert set(np.unique(lab)) <= present, name
    for name in ("CAM (bg threshold)", "Random walk + CRF"):
        assert all((lab != 255).all() for lab in rows[name])  # complete labels
    assert seconds < 60  # < 20 s on an idle 2-core machine; generous under load


def test_seed_precision_and_quality(ctx):
    pytest.importorskip("pydensecrf.densecrf")
    seeds = cam_seed_labels(ctx.samples, ctx.cams)
    cams = cam_threshold_labels(ctx.samples, ctx.cams)
    for s, sd, cl in zip(ctx.samples, seeds, cams):
        prec, cov = seed_precision(sd, s["mask"])
        cam_prec, cam_cov = seed_precision(cl, s["mask"])
        assert cam_cov == 1.0
        assert 0.05 < cov < 1.0
        assert prec > 0.9 and prec >= cam_prec - 0.02  # seeds: fewer but cleaner labels


def test_random_walk_without_crf_and_fixed_stride(ctx):
    out = random_walk_crf_labels(ctx.samples[:1], ctx.cams[:1], crf=False, stride=4, log_t=3)
    assert out[0].shape == ctx.samples[0]["mask"].shape
    acc = (out[0] == ctx.samples[0]["mask"]).mean()
    assert acc > 0.7


def test_empty_context_and_no_features(ctx):
    empty = DemoContext(name="x", samples=[], cams=[], num_classes=6, class_names=[])
    assert demo(empty) == {}
    no_feat = DemoContext(name="voc-image", samples=ctx.samples[:1], cams=ctx.cams[:1],
                          num_classes=6, class_names=ctx.class_names)
    rows = demo(no_feat)
    assert all(len(v) == 1 for v in rows.values())


def test_seed_precision_by_hand():
    seeds = np.array([[0, 1, 255], [2, 255, 1]], np.uint8)
    mask = np.array([[0, 2, 1], [2, 255, 255]], np.uint8)
    prec, cov = seed_precision(seeds, mask)
    assert prec == pytest.approx(2 / 3) and cov == pytest.approx(3 / 4)
    assert np.isnan(seed_precision(np.full((2, 2), 255), np.zeros((2, 2)))[0])


def test_random_walk_config_passed_whole(ctx):
    """Issue 18: RandomWalkCRFConfig whole == the keyword form; a positional stride names
    the new form."""
    from pyg_wsss.pipelines.baselines import RandomWalkCRFConfig

    cfg = RandomWalkCRFConfig(crf=False, stride=4, log_t=3)
    a = random_walk_crf_labels(ctx.samples[:1], ctx.cams[:1], None, cfg)
    b = random_walk_crf_labels(ctx.samples[:1], ctx.cams[:1], crf=False, stride=4, log_t=3)
    c = random_walk_crf_labels(ctx.samples[:1], ctx.cams[:1], config=cfg, log_t=3)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[0], c[0])
    with pytest.raises(TypeError, match="RandomWalkCRFConfig"):
        random_walk_crf_labels(ctx.samples[:1], ctx.cams[:1], None, 4)
    with pytest.raises(TypeError, match="strides"):
        random_walk_crf_labels(ctx.samples[:1], ctx.cams[:1], strides=4)
