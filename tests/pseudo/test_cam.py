import cv2
import numpy as np
import pytest
import torch

from pyg_wsss.nn.models.backbones import SmallCNN
from pyg_wsss.nn.models.classifier import CAMClassifier
from pyg_wsss.pseudo.cam import _normalize_cams as normalize_cams
from pyg_wsss.pseudo.cam import classifier_cams, multiscale_cam


def _linear_cam_fn(weight):
    """A 1x1 'classifier' on the raw pixels: CAM = weight @ rgb, at input resolution."""

    def fn(x):
        return torch.einsum("cd,bdhw->bchw", weight.to(x), x)

    return fn


def _reference(weight, image, scales, flip):
    """Independent numpy/OpenCV implementation (cv2 INTER_LINEAR == half-pixel bilinear)."""
    img = image.permute(1, 2, 0).numpy().astype(np.float64)
    h, w = img.shape[:2]
    total = np.zeros((weight.shape[0], h, w))
    for s in scales:
        size = (max(1, round(w * s)), max(1, round(h * s)))
        xs = img if size == (w, h) else cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
        for mirrored in (False, True) if flip else (False,):
            xi = xs[:, ::-1] if mirrored else xs
            cam = np.maximum(np.einsum("cd,hwd->chw", weight.numpy(), xi), 0)
            up = np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR) for c in cam])
            total += up[:, :, ::-1] if mirrored else up
    return torch.from_numpy(total).float()


@pytest.mark.parametrize(
    "scales,flip", [((1.0,), False), ((1.0, 0.5, 1.5, 2.0), True), ((0.5,), True)]
)
def test_multiscale_cam_matches_opencv_reference(scales, flip):
    torch.manual_seed(0)
    weight = torch.randn(4, 3)
    image = torch.rand(3, 20, 28)
    out = multiscale_cam(_linear_cam_fn(weight), image, scales=scales, flip=flip)
    ref = _reference(weight, image, scales, flip)
    assert out.shape == (4, 20, 28)
    assert torch.allclose(out, ref, atol=1e-4)


def test_multiscale_cam_constant_image_and_3d_output():
    image = torch.full((3, 9, 13), 0.5)
    out = multiscale_cam(lambda x: x[0], image, scales=(1.0, 0.5, 1.5), flip=True)
    assert torch.allclose(out, torch.full((3, 9, 13), 0.5 * 6))


def test_multiscale_cam_flips_back():
    # cam_fn that is not mirror-equivariant: a column ramp; the mirrored pass is mirrored back
    def ramp(x):
        w = x.size(-1)
        return torch.arange(w, dtype=x.dtype).expand(1, 1, x.size(-2), w).clone()

    image = torch.rand(3, 4, 6)
    no_flip = multiscale_cam(ramp, image, scales=(1.0,), flip=False)[0]
    with_flip = multiscale_cam(ramp, image, scales=(1.0,), flip=True)[0]
    assert torch.equal(no_flip[0], torch.arange(6.0))
    assert torch.allclose(with_flip, torch.full((4, 6), 5.0))


def test_multiscale_cam_relu_before_sum():
    image = torch.rand(3, 8, 8)
    out = multiscale_cam(lambda x: -torch.ones(1, 2, 4, 4), image)
    assert torch.equal(out, torch.zeros(2, 8, 8))


def test_multiscale_cam_differentiable():
    weight = torch.randn(2, 3, requires_grad=True)
    image = torch.rand(3, 8, 8)
    multiscale_cam(_linear_cam_fn(weight), image, scales=(1.0, 0.5)).sum().backward()
    assert weight.grad is not None


def test_multiscale_cam_bad_input():
    fn = lambda x: x  # noqa: E731
    img = torch.rand(3, 8, 8)
    with pytest.raises(TypeError, match="cam_fn"):
        multiscale_cam("model", img)
    with pytest.raises(ValueError, match="'image'"):
        multiscale_cam(fn, torch.rand(8, 8))
    with pytest.raises(ValueError, match="'image'"):
        multiscale_cam(fn, torch.rand(4, 8, 8))
    with pytest.raises(TypeError, match="'image'"):
        multiscale_cam(fn, torch.zeros(3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="NaN"):
        multiscale_cam(fn, torch.full((3, 8, 8), float("nan")))
    with pytest.raises(ValueError, match="scales"):
        multiscale_cam(fn, img, scales=())
    with pytest.raises(ValueError, match="scales"):
        multiscale_cam(fn, img, scales=(1.0, -0.5))
    with pytest.raises(ValueError, match="batch of 2"):
        multiscale_cam(lambda x: torch.cat([x, x]), img)
    with pytest.raises(ValueError, match=r"\[C, h, w\]"):
        multiscale_cam(lambda x: x[0, 0], img)
    with pytest.raises(TypeError, match="tensor"):
        multiscale_cam(lambda x: x.numpy(), img)


def test_normalize_cams_hand_example():
    cams = torch.tensor(
        [[[0.0, 1.0], [2.0, 4.0]], [[1.0, 1.0], [3.0, 5.0]], [[0.0, 0.0], [0.0, 0.0]]]
    )
    out = normalize_cams(cams, normalize="max", eps=1e-5)
    assert torch.allclose(out[0], torch.tensor([[0.0, 0.25], [0.5, 1.0]]), atol=1e-5)
    assert torch.equal(out[2], torch.zeros(2, 2))  # all-zero class stays zero, no NaN
    mm = normalize_cams(cams, normalize="minmax", eps=1e-5)
    assert torch.allclose(mm[1], torch.tensor([[0.0, 0.0], [0.5, 1.0]]), atol=1e-4)
    assert mm[1, 0, 0] == 0  # the minimum is exactly zero after the -eps shift and clipping
    assert torch.equal(mm[2], torch.zeros(2, 2))
    tagged = normalize_cams(cams, torch.tensor([1, 0, 1]))
    assert torch.equal(tagged[1], torch.zeros(2, 2))
    with pytest.raises(ValueError, match="tags"):
        normalize_cams(cams, torch.ones(2))
    with pytest.raises(ValueError, match="normalize"):
        normalize_cams(cams, normalize="softmax")


def _images(n=2, h=24, w=32, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def test_classifier_cams_format(device):
    model = CAMClassifier(SmallCNN((8, 8, 8, 8), convs_per_stage=1), 3)
    images = _images(2) + _images(1, h=17, w=21, seed=1)
    tags = [np.array([1, 0, 1], np.float32), torch.tensor([0.0, 1.0, 0.0]), [0, 0, 0]]
    cams = classifier_cams(model, images, tags, scales=(1.0, 0.5), device=device)
    assert len(cams) == 3
    for cam, img, t in zip(cams, images, tags):
        assert cam.dtype == torch.float32 and cam.device.type == "cpu"
        assert cam.shape == (3, *img.shape[:2])
        assert cam.min() >= 0 and cam.max() <= 1
        absent = torch.as_tensor(np.asarray(t, dtype=np.float32)) == 0
        assert torch.all(cam[absent] == 0)
        for c in torch.nonzero(~absent).flatten():
            # max-normalised: the peak is max / (max + eps)
            assert cam[c].max() == 0 or cam[c].max() > 0.5
    assert not model.training


def test_classifier_cams_equals_manual_pipeline():
    weight = torch.randn(3, 3)
    fn = _linear_cam_fn(weight)
    img = _images(1)[0]
    tag = np.array([1, 1, 0], np.float32)
    out = classifier_cams(fn, [img], [tag], scales=(1.0, 0.5, 1.5), normalize="minmax")[0]
    x = torch.from_numpy(img).permute(2, 0, 1).float() / 255
    raw = multiscale_cam(fn, x, scales=(1.0, 0.5, 1.5))
    ref = normalize_cams(raw, torch.from_numpy(tag), "minmax")
    assert torch.allclose(out, ref)
    for c in (0, 1):
        if raw[c].max() > 0:
            assert out[c].min() == 0 and out[c].max() > 0.99


def test_classifier_cams_localises_coloured_square():
    # CAM of a hand-built "red detector" peaks on the red square
    img = np.full((32, 32, 3), 120, np.uint8)
    img[8:16, 18:26] = (250, 10, 10)
    weight = torch.tensor([[1.0, -1.0, -1.0]])
    cam = classifier_cams(_linear_cam_fn(weight), [img], [np.ones(1)])[0][0]
    inside = torch.zeros(32, 32, dtype=torch.bool)
    inside[8:16, 18:26] = True
    assert cam[inside].mean() > 0.8 and cam[~inside].max() < 0.7


def test_classifier_cams_bad_input():
    model = CAMClassifier(SmallCNN((8, 8), convs_per_stage=1), 2)
    imgs = _images(2)
    tags = [np.ones(2), np.ones(2)]
    with pytest.raises(ValueError, match="one entry per image"):
        classifier_cams(model, imgs, tags[:1])
    with pytest.raises(ValueError, match="has 3 entries"):
        classifier_cams(model, imgs, [np.ones(3), np.ones(3)])
    with pytest.raises(ValueError, match="multi-hot"):
        classifier_cams(model, imgs, [np.full(2, 0.5), np.ones(2)])
    with pytest.raises(TypeError, match="list"):
        classifier_cams(model, imgs[0], tags)
    with pytest.raises(ValueError, match="images\\[0\\]"):
        classifier_cams(model, [np.zeros((8, 8), np.uint8)], [np.ones(2)])
    with pytest.raises(ValueError, match="normalize"):
        classifier_cams(model, imgs, tags, normalize="l2")
    with pytest.raises(TypeError, match="cam"):
        classifier_cams(42, imgs, tags)


def test_lazy_names():
    from pyg_wsss import pseudo

    assert pseudo.multiscale_cam is multiscale_cam and pseudo.classifier_cams is classifier_cams


@pytest.mark.parametrize("mode", ["max", "minmax"])
def test_normalisation_agrees_with_seeds_module(mode):
    seeds = pytest.importorskip("pyg_wsss.pseudo.seeds")
    cams = torch.rand(4, 6, 7) * torch.tensor([1.0, 3.0, 0.0, 0.5]).view(4, 1, 1)
    tags = torch.tensor([1.0, 1.0, 1.0, 0.0])
    ours = normalize_cams(cams, tags, normalize=mode)
    theirs = seeds.normalize_cams(cams.numpy(), tags.numpy(), mode=mode)
    np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-6)
