import numpy as np
import pytest
import torch

from pyg_wsss.pseudo.seeds import (
    a2gnn_tag_seeds,
    cam_label_map,
    cam_labels,
    cam_scores,
    confident_regions,
    crf_unsure,
    crf_with_alpha,
    la_ha_labels,
    normalize_cams,
    scores_to_labels,
    vote_filter,
    wsgcn_partial_labels,
)

dcrf = pytest.importorskip("pydensecrf.densecrf")
from pydensecrf.utils import unary_from_softmax  # noqa: E402


# ----------------------------------------------------------------------------- CAM scores
def test_normalize_cams_by_hand():
    cams = torch.tensor(
        [[[-1.0, 0.5], [1.0, 2.0]], [[3.0, 3.0], [3.0, 3.0]], [[0.0, 1.0], [2.0, 4.0]]]
    )
    out = normalize_cams(cams, [1, 0, 1], mode="max", eps=1e-5)
    np.testing.assert_allclose(out[0], np.array([[0, 0.5], [1, 2]]) / (2 + 1e-5))
    assert np.all(out[1] == 0)  # absent tag
    mm = normalize_cams(cams, [1, 0, 1], mode="minmax", eps=1e-5)
    relu = np.array([[0, 0.5], [1, 2]])
    np.testing.assert_allclose(mm[0], np.maximum((relu - 0 - 1e-5) / (2 + 1e-5), 0))
    np.testing.assert_allclose(normalize_cams(cams, None, mode=None)[0], relu)


def test_cam_scores_background():
    cams = torch.tensor([[[0.2, 0.9]], [[0.5, 0.1]]])
    s = cam_scores(cams, [1, 1], bg_power=4, normalize=None)
    assert s.shape == (3, 1, 2) and s.dtype == torch.float32
    np.testing.assert_allclose(s[0].numpy(), [[(1 - 0.5) ** 4, (1 - 0.9) ** 4]], rtol=1e-6)
    t = cam_scores(cams, [1, 0], bg_threshold=0.3, normalize=None)
    np.testing.assert_allclose(t.numpy(), [[[0.3, 0.3]], [[0.2, 0.9]], [[0, 0]]], rtol=1e-6)
    lab = cam_labels(cams, [1, 1], bg_threshold=0.3, normalize=None)
    np.testing.assert_array_equal(lab, [[2, 1]])
    assert lab.dtype == np.uint8


def test_cam_scores_no_tags_is_all_background(device):
    cams = torch.rand(3, 4, 5, device=device)
    s = cam_scores(cams, torch.zeros(3), bg_power=32)
    assert s.device.type == device.type
    assert torch.all(s[0] == 1) and torch.all(s[1:] == 0)
    assert np.all(scores_to_labels(s) == 0)


def test_cam_scores_bad_input():
    cams = torch.rand(3, 4, 5)
    with pytest.raises(ValueError, match="exactly one"):
        cam_scores(cams, None)
    with pytest.raises(ValueError, match="exactly one"):
        cam_scores(cams, None, bg_power=2, bg_threshold=0.2)
    with pytest.raises(ValueError, match="tags"):
        cam_scores(cams, [1, 0], bg_power=2)
    with pytest.raises(ValueError, match="NaN"):
        cam_scores(torch.full((3, 4, 5), float("nan")), None, bg_power=2)
    with pytest.raises(ValueError, match=r"\[C, H, W\]"):
        cam_scores(torch.rand(4, 5), None, bg_power=2)
    with pytest.raises(ValueError, match="bg_power"):
        cam_scores(cams, None, bg_power=-1)
    with pytest.raises(ValueError, match="mode"):
        normalize_cams(cams, None, mode="sum")
    with pytest.raises(TypeError):
        cam_scores([[0.1]], None, bg_power=2)


# ----------------------------------------------------------------------------- pieces
def test_la_ha_merge_by_hand():
    la = np.zeros((3, 1, 4))
    ha = np.zeros((3, 1, 4))
    la[:, 0, :] = np.array([[0.9, 0.1, 0.1, 0.9], [0.1, 0.8, 0.1, 0.05], [0, 0.1, 0.8, 0.05]])
    ha[:, 0, :] = np.array([[0.9, 0.1, 0.9, 0.1], [0.1, 0.8, 0.1, 0.8], [0, 0.1, 0, 0.1]])
    # pixel 0: la bg, ha bg -> 0; 1: fg 1 -> 1; 2: la says 2, ha bg -> 0; 3: la bg, ha fg -> 255
    np.testing.assert_array_equal(la_ha_labels(la, ha), [[0, 1, 0, 255]])


def _brute_confident(scores, classes, ratio, min_score, bg_thr):
    arg = scores.argmax(0)
    sure = np.zeros(arg.shape, bool)
    for c in classes:
        region = arg == c
        if c == 0:
            sure |= region & (scores[0] > bg_thr)
            continue
        vals = [v for v, r in zip(scores[c].ravel(), region.ravel()) if r and v > min_score]
        if not vals:
            continue
        vals.sort()
        cut = int(len(vals) * (1 - ratio))
        if cut >= len(vals):
            continue
        sure |= region & (scores[c] > vals[cut])
    return sure


@pytest.mark.parametrize("ratio", [0.0, 0.3, 0.4, 1.0])
def test_confident_regions_brute_force(ratio):
    rng = np.random.default_rng(3)
    scores = rng.random((4, 9, 11))
    scores[0] *= 1.2
    classes = [0, 1, 2, 3]
    got = confident_regions(scores, classes, ratio=ratio, min_score=0.1, bg_threshold=0.8)
    np.testing.assert_array_equal(got, _brute_confident(scores, classes, ratio, 0.1, 0.8))


def test_confident_top_fraction_by_hand():
    # one class, 10 candidate values 0.15 .. 0.6: top 30 % = values > sorted[7]
    vals = np.linspace(0.15, 0.6, 10)
    scores = np.zeros((2, 1, 12))
    scores[1, 0, :10] = vals
    scores[1, 0, 10:] = 0.05  # below min_score: not candidates
    scores[0] = 0.01
    sure = confident_regions(scores, [1], ratio=0.3, min_score=0.1)
    np.testing.assert_array_equal(np.flatnonzero(sure[0]), [8, 9])
    # no candidates at all: nothing, no error
    assert not confident_regions(scores * 0.1, [1], ratio=0.3, min_score=0.1).any()


def test_unsure_and_vote():
    la = np.array([[[0.1, 0.1]], [[0.85, 0.5]], [[0.05, 0.4]]])
    ha = np.array([[[0.9, 0.6]], [[0.05, 0.3]], [[0.05, 0.1]]])
    np.testing.assert_array_equal(crf_unsure(la, ha, 0.8), [[False, True]])
    stack = np.concatenate([ha[:1], la[1:]])
    np.testing.assert_array_equal(vote_filter(np.array([[0, 2]]), stack), [[0, 255]])
    with pytest.raises(ValueError, match="differ"):
        vote_filter(np.zeros((2, 2), int), stack)
    with pytest.raises(ValueError, match="shape"):
        la_ha_labels(la, ha[:2])


# ----------------------------------------------------------------------------- composed
def _crf_ref(image, stack, params):
    k, h, w = stack.shape
    d = dcrf.DenseCRF2D(w, h, k)
    d.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(stack)))
    d.addPairwiseGaussian(sxy=params[0], compat=params[1])
    d.addPairwiseBilateral(sxy=params[2], srgb=params[3], rgbim=np.copy(image), compat=params[4])
    return np.array(d.inference(10)).reshape(k, h, w)


def _reference_seeds(image, cams, tags, alpha_lo, alpha_hi, ratio, min_score, params, mode, vote):
    """Independent re-statement of NOTES.md 2.4 / 3.5 (loops, direct pydensecrf)."""
    cams = np.maximum(cams.numpy().astype(np.float64), 0)
    present = [c for c in range(len(tags)) if tags[c] > 0]
    norm = np.zeros_like(cams)
    for c in present:
        m = cams[c]
        if mode == "max":
            norm[c] = m / (m.max() + 1e-5)
        else:
            norm[c] = np.maximum((m - m.min() - 1e-5) / (m.max() - m.min() + 1e-5), 0)
    cam_all = np.concatenate([(1 - norm.max(0, keepdims=True)) ** alpha_hi, norm])
    cam_img = cam_all.argmax(0)

    def crf(alpha):
        sub = np.stack([(1 - norm.max(0)) ** alpha] + [norm[c] for c in present])
        q = _crf_ref(image, sub, params)
        full = np.zeros((len(tags) + 1,) + image.shape[:2])
        full[0] = q[0]
        for i, c in enumerate(present):
            full[c + 1] = q[i + 1]
        return full

    la, ha = crf(alpha_lo), crf(alpha_hi)
    label = la.argmax(0).copy()
    label[la.argmax(0) == 0] = 255
    label[ha.argmax(0) == 0] = 0
    sure = np.zeros(label.shape, bool)
    for c in np.unique(la.argmax(0)):
        val = np.where(cam_img == c, cam_all[c], 0)
        if c == 0:
            sure |= val > 0.8
            continue
        order = np.sort(val[val > min_score])
        if order.size == 0:
            continue
        sure |= val > order[int(order.size * (1 - ratio))]
    stack = np.concatenate([ha[:1], la[1:]])
    label[(stack.max(0) < 0.8) | ~sure] = 255
    if vote:
        label = np.where(stack.argmax(0) == label, stack.argmax(0), 255)
    return label.astype(np.uint8)


def test_wsgcn_partial_labels_match_reference(scene):
    image, mask, tags, cams = scene()
    got, scores = wsgcn_partial_labels(image, cams, tags, return_scores=True)
    ref = _reference_seeds(image, cams, tags, 4, 32, 0.3, 0.1, (4, 3, 20, 3, 10), "max", True)
    np.testing.assert_array_equal(got, ref)
    assert got.dtype == np.uint8 and got.shape == mask.shape
    assert scores.shape == (5,) + mask.shape
    assert set(np.unique(got)) <= {0, 1, 3, 255}
    lab = got != 255
    assert lab.mean() > 0.3
    assert (got[lab] == mask[lab]).mean() > 0.97  # seed precision
    assert {1, 3} <= set(np.unique(got[lab]))


def test_a2gnn_tag_seeds_match_reference(scene):
    image, mask, tags, cams = scene(seed=1)
    got = a2gnn_tag_seeds(image, cams, tags)
    ref = _reference_seeds(image, cams, tags, 4, 24, 0.4, 0.01, (3, 3, 80, 13, 10), "minmax", False)
    np.testing.assert_array_equal(got, ref)
    lab = got != 255
    assert (got[lab] == mask[lab]).mean() > 0.95
    assert set(np.unique(got)) <= {0, 1, 3, 255}
    # the la/ha map before selection covers more pixels
    full = cam_label_map(image, cams, tags)
    assert (full != 255).sum() >= lab.sum()


def test_seeds_without_tags_only_background(scene):
    image, mask, _, cams = scene()
    out = wsgcn_partial_labels(image, cams, np.zeros(4))
    assert set(np.unique(out)) <= {0, 255}
    assert (out == 0).all()
    out = a2gnn_tag_seeds(image, torch.zeros_like(cams), np.zeros(4))
    assert (out == 0).all()


def test_crf_normalized_option_runs(scene):
    image, _, tags, cams = scene()
    a = wsgcn_partial_labels(image, cams, tags, crf_normalized=True)
    assert a.shape == image.shape[:2] and a.dtype == np.uint8


def test_crf_with_alpha_scatter(scene):
    image, _, tags, cams = scene()
    norm = normalize_cams(cams, tags)
    q = crf_with_alpha(image, norm, tags, 4, preset="psa")
    assert q.shape == (5,) + image.shape[:2]
    assert np.all(q[[2, 4]] == 0)
    np.testing.assert_allclose(q.sum(0), 1, atol=1e-4)
    with pytest.raises(ValueError, match="normalised"):
        crf_with_alpha(image, norm * 3, tags, 4)


def test_composed_bad_input(scene):
    image, _, tags, cams = scene()
    with pytest.raises(ValueError, match="spatial size"):
        wsgcn_partial_labels(image, cams[:, :-1], tags)
    with pytest.raises(ValueError, match="tags"):
        a2gnn_tag_seeds(image, cams, tags[:2])
    with pytest.raises(TypeError, match="uint8"):
        wsgcn_partial_labels(image / 255.0, cams, tags)
    bad = cams.clone()
    bad[0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN"):
        a2gnn_tag_seeds(image, bad, tags)
    with pytest.raises(ValueError, match="ratio"):
        confident_regions(np.random.rand(2, 3, 3), ratio=1.5)
    with pytest.raises(ValueError, match="class"):
        confident_regions(np.random.rand(2, 3, 3), classes=[5])


def test_bg_fallback_gives_background_seeds_only_when_there_are_none():
    from pyg_wsss.pseudo import a2gnn_tag_seeds, wsgcn_partial_labels

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)
    # weak CAM: never below 0.2, so (1 - max)^alpha > 0.8 gives no background seed upstream
    cam = np.full((2, 24, 24), 0.2, np.float32)
    cam[0, 6:14, 6:14] = 1.0
    tags = np.array([1.0, 0.0])
    plain = wsgcn_partial_labels(image, cam, tags)
    assert not (plain == 0).any()
    fixed = wsgcn_partial_labels(image, cam, tags, bg_fallback=0.3)
    assert (fixed == 0).any()
    changed = fixed != plain
    assert (plain[changed] == 255).all() and (fixed[changed] == 0).all()
    assert not (fixed[6:14, 6:14] == 0).any()  # never inside the activated object
    # min-max normalised CAMs (A2GNN) already give background seeds: the fallback is a no-op
    plain = a2gnn_tag_seeds(image, cam, tags)
    assert (plain == 0).any()
    assert np.array_equal(a2gnn_tag_seeds(image, cam, tags, bg_fallback=0.3), plain)
    with pytest.raises(ValueError, match="bg_fallback"):
        wsgcn_partial_labels(image, cam, tags, bg_fallback=1.5)


def test_seed_presets_are_the_wrappers_defaults(scene):
    """Issue 18: one seed function taking a CRFSeedConfig; the two old names are presets and
    keep their keyword form."""
    from pyg_wsss.pseudo.seeds import CRFSeedConfig, crf_seeds

    image, _, tags, cams = scene()
    for wrapper, preset in ((wsgcn_partial_labels, CRFSeedConfig.wsgcn()),
                            (a2gnn_tag_seeds, CRFSeedConfig.a2gnn())):
        got, scores = wrapper(image, cams, tags, return_scores=True)
        ref, ref_scores = crf_seeds(image, cams, tags, preset, return_scores=True)
        np.testing.assert_array_equal(got, ref)
        np.testing.assert_array_equal(scores, ref_scores)
        # keyword override == the config with that field replaced == config passed whole
        cfg = preset.replace(ratio=0.5, vote=not preset.vote)
        a = wrapper(image, cams, tags, ratio=0.5, vote=not preset.vote)
        np.testing.assert_array_equal(a, crf_seeds(image, cams, tags, cfg))
        np.testing.assert_array_equal(a, wrapper(image, cams, tags, cfg))
    assert CRFSeedConfig.a2gnn() == CRFSeedConfig(alpha_high=24, ratio=0.4, min_score=0.01,
                                                  preset="psa", normalize="minmax", vote=False)
    assert CRFSeedConfig.wsgcn(bg_fallback=0.3).bg_fallback == 0.3
    with pytest.raises(TypeError, match="CRFSeedConfig.wsgcn"):
        wsgcn_partial_labels(image, cams, tags, 4)  # the old positional alpha_low
    with pytest.raises(TypeError, match="alpha_lo"):
        a2gnn_tag_seeds(image, cams, tags, alpha_lo=4)
    with pytest.raises(ValueError, match="ratio"):
        crf_seeds(image, cams, tags, CRFSeedConfig(ratio=2.0))
