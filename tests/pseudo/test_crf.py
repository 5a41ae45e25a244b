import sys

import numpy as np
import pytest
import torch

from pyg_wsss.pseudo.crf import CRF_PRESETS, dense_crf

dcrf = pytest.importorskip("pydensecrf.densecrf")
from pydensecrf.utils import unary_from_softmax  # noqa: E402


def _scene(h=24, w=30, k=3, seed=0):
    rng = np.random.default_rng(seed)
    image = np.zeros((h, w, 3), np.uint8)
    image[:, : w // 2] = (200, 40, 40)
    image[:, w // 2 :] = (40, 40, 200)
    image = np.clip(image + rng.normal(0, 5, image.shape), 0, 255).astype(np.uint8)
    probs = rng.random((k, h, w))
    probs[0, :, : w // 2] += 0.6
    probs[1, :, w // 2 :] += 0.6
    return image, probs


def _reference(image, scores, params, n_iter=10):
    """pydensecrf used directly, the way PSA / WSGCN do (unary_from_softmax)."""
    k, h, w = scores.shape
    d = dcrf.DenseCRF2D(w, h, k)
    d.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(scores)))
    d.addPairwiseGaussian(sxy=params[0], compat=params[1])
    d.addPairwiseBilateral(sxy=params[2], srgb=params[3], rgbim=np.copy(image), compat=params[4])
    return np.array(d.inference(n_iter)).reshape(k, h, w)


def test_presets_match_spec():
    assert tuple(CRF_PRESETS["psa"]) == (3, 3, 80, 13, 10)
    assert tuple(CRF_PRESETS["seam"]) == (3, 3, 80, 13, 10)
    assert tuple(CRF_PRESETS["irn"]) == (3, 3, 50, 5, 10)
    assert tuple(CRF_PRESETS["a2gnn"]) == (2, 3, 50, 5, 10)
    assert tuple(CRF_PRESETS["wsgcn"]) == (3, 3, 50, 5, 3)
    assert tuple(CRF_PRESETS["wsgcn_partial"]) == (4, 3, 20, 3, 10)
    assert tuple(CRF_PRESETS["deeplab"]) == (1, 3, 67, 3, 4)


@pytest.mark.parametrize("preset", ["psa", "a2gnn", "wsgcn_partial", "deeplab"])
def test_unnormalised_equals_direct_pydensecrf(preset):
    image, probs = _scene()
    scores = probs / probs.max() * 0.9  # un-normalised scores in [0, 1]
    out = dense_crf(image, scores, preset=preset, normalized=False)
    ref = _reference(image, scores, CRF_PRESETS[preset])
    np.testing.assert_allclose(out, ref, atol=1e-5)
    np.testing.assert_allclose(out.sum(0), 1.0, atol=1e-4)


def test_normalised_and_logits():
    image, probs = _scene()
    norm = probs / probs.sum(0, keepdims=True)
    out = dense_crf(image, probs, preset="irn")  # normalized=True
    np.testing.assert_allclose(out, _reference(image, norm, CRF_PRESETS["irn"]), atol=1e-5)
    logits = np.log(norm) + 3.0
    out2 = dense_crf(image, logits, preset="irn", scores="logits")
    np.testing.assert_allclose(out2, out, atol=1e-4)


def test_unnormalised_scores_matter_only_through_clipping():
    # A per-pixel factor adds a per-pixel constant to the unary, which mean-field inference
    # ignores: renormalising changes nothing unless a score is clipped at 'clip' (or 1).
    image, probs = _scene()
    norm = probs / probs.sum(0, keepdims=True)
    scores = norm * np.linspace(0.2, 1.0, norm.shape[2])[None, None]
    a = dense_crf(image, scores, preset="psa", normalized=False)
    b = dense_crf(image, scores, preset="psa", normalized=True)
    np.testing.assert_allclose(a, b, atol=1e-5)
    # (1 - max CAM)^32-style tiny background scores hit the clip: now it matters
    tiny = norm * 1e-7  # all below clip=1e-5: un-normalised the unary is flat
    a = dense_crf(image, tiny, preset="psa", normalized=False)
    b = dense_crf(image, tiny, preset="psa", normalized=True)
    np.testing.assert_allclose(a, 1.0 / 3, atol=1e-4)
    np.testing.assert_allclose(b, dense_crf(image, norm, preset="psa"), atol=1e-5)


def test_zero_iterations_is_the_clipped_unary():
    image, probs = _scene()
    norm = probs / probs.sum(0, keepdims=True)
    out = dense_crf(image, norm, n_iter=0)
    np.testing.assert_allclose(out, norm, atol=1e-5)


def test_label_subset():
    image, probs = _scene(k=5)
    keep = [0, 3, 1]
    full = dense_crf(image, probs, preset="psa", labels=keep)
    assert full.shape == probs.shape
    assert np.all(full[[2, 4]] == 0)
    np.testing.assert_allclose(full.sum(0), 1.0, atol=1e-4)
    sub = dense_crf(image, probs, preset="psa", labels=keep, full=False)
    assert sub.shape == (3,) + probs.shape[1:]
    direct = dense_crf(image, probs[keep], preset="psa")
    np.testing.assert_allclose(sub, direct, atol=1e-6)
    np.testing.assert_allclose(full[keep], direct, atol=1e-6)
    one = dense_crf(image, probs, labels=[2])
    assert np.all(one[2] == 1) and np.all(one[[0, 1, 3, 4]] == 0)


def test_crf_cleans_noise_along_colour_edges():
    image, probs = _scene(h=32, w=40)
    h, w = 32, 40
    truth = np.zeros((h, w), int)
    truth[:, w // 2 :] = 1
    noisy = probs[:2].copy()
    rng = np.random.default_rng(1)
    flip = rng.random((h, w)) < 0.25
    noisy[:, flip] = noisy[::-1][:, flip]
    before = (noisy.argmax(0) == truth).mean()
    after = (dense_crf(image, noisy, preset="deeplab").argmax(0) == truth).mean()
    assert after > before and after > 0.97


def test_tensor_in_tensor_out(device):
    image, probs = _scene()
    t = torch.from_numpy(probs).float().to(device)
    out = dense_crf(torch.from_numpy(image), t, preset="a2gnn")
    assert isinstance(out, torch.Tensor) and out.device.type == device.type
    assert out.dtype == torch.float32 and out.shape == t.shape
    ref = dense_crf(image, probs, preset="a2gnn")
    np.testing.assert_allclose(out.cpu().numpy(), ref, atol=1e-6)


def test_custom_params():
    image, probs = _scene()
    a = dense_crf(image, probs, preset=(3, 3, 80, 13, 10))
    np.testing.assert_allclose(a, dense_crf(image, probs, preset="psa"), atol=1e-6)


def test_missing_pydensecrf_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pydensecrf.densecrf", None)
    image, probs = _scene()
    with pytest.raises(ImportError, match=r"pyg-wsss\[crf\]") as info:
        dense_crf(image, probs)
    assert "pydensecrf2" in str(info.value)


def test_bad_input():
    image, probs = _scene()
    with pytest.raises(TypeError, match="uint8"):
        dense_crf(image.astype(np.float32) / 255, probs)
    with pytest.raises(ValueError, match="RGB"):
        dense_crf(image[..., 0], probs)
    with pytest.raises(ValueError, match="spatial size"):
        dense_crf(image[:-1], probs)
    bad = probs.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        dense_crf(image, bad)
    with pytest.raises(ValueError, match="negative"):
        dense_crf(image, probs - 1)
    with pytest.raises(ValueError, match="preset"):
        dense_crf(image, probs, preset="nope")
    with pytest.raises(TypeError, match="preset"):
        dense_crf(image, probs, preset=(1, 2))
    with pytest.raises(ValueError, match="labels"):
        dense_crf(image, probs, labels=[0, 7])
    with pytest.raises(ValueError, match="labels"):
        dense_crf(image, probs, labels=[])
    with pytest.raises(ValueError, match="duplicates"):
        dense_crf(image, probs, labels=[1, 1])
    with pytest.raises(ValueError, match="n_iter"):
        dense_crf(image, probs, n_iter=-1)
    with pytest.raises(ValueError, match="scores"):
        dense_crf(image, probs, scores="softmax")
    with pytest.raises(ValueError, match=r"\[K, H, W\]"):
        dense_crf(image, probs[0])
    with pytest.raises(TypeError, match="probs"):
        dense_crf(image, probs.tolist())
