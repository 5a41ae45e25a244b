import numpy as np
import pytest
import torch

from pyg_wsss.nn.models.backbones import SmallCNN
from pyg_wsss.nn.models.classifier import CAMClassifier, predict_tags, train_classifier


def _toy_samples(n=24, size=32, seed=0):
    """Two classes: a red square (class 1) and a blue square (class 2) on grey noise; the
    images cycle through red only, blue only, both (balanced tags)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = rng.integers(90, 140, (size, size, 3)).astype(np.uint8)
        tags = np.zeros(2, np.float32)
        for c, colour in enumerate(([230, 20, 20], [20, 20, 230])):
            if (i + seed) % 3 in (c, 2):
                y, x = rng.integers(0, size - 10, 2)
                img[y:y + 10, x:x + 10] = colour
                tags[c] = 1
        out.append({"image": img, "tags": tags})
    return out


def _tiny_model(num_classes=2, bias=True):
    return CAMClassifier(SmallCNN((8, 16, 16, 16)), num_classes, bias=bias)


def test_logits_are_mean_of_raw_cam(device):
    model = _tiny_model(3, bias=False).to(device).eval()
    x = torch.rand(2, 3, 40, 48, device=device)
    logits = model(x)
    cam = model.cam(x)
    assert logits.shape == (2, 3)
    assert cam.shape == (2, 3, 5, 6)
    assert torch.allclose(logits, cam.mean(dim=(2, 3)), atol=1e-5)
    l2, c2 = model.forward_with_cam(x)
    assert torch.allclose(l2, logits, atol=1e-6) and torch.allclose(c2, cam)
    # cam == bias-free 1x1 conv of the last feature map (independent einsum reference)
    feat = model.backbone(x)[-1]
    ref = torch.einsum("bdhw,cd->bchw", feat, model.classifier.weight[:, :, 0, 0])
    assert torch.allclose(cam, ref, atol=1e-5)
    assert model.classifier.bias is None


def test_bias_enters_logits_not_cam():
    model = _tiny_model(3, bias=True).eval()
    with torch.no_grad():
        model.classifier.bias.copy_(torch.tensor([1.0, -2.0, 0.5]))
    x = torch.rand(2, 3, 32, 32)
    cam = model.cam(x)
    ref = torch.einsum(
        "bdhw,cd->bchw", model.backbone(x)[-1], model.classifier.weight[:, :, 0, 0]
    )
    assert torch.allclose(cam, ref, atol=1e-5)
    assert torch.allclose(model(x), cam.mean(dim=(2, 3)) + model.classifier.bias, atol=1e-5)
    logits, _ = model.forward_with_cam(x)
    assert torch.allclose(logits, model(x), atol=1e-5)
    assert "bias=True" in repr(model)
    fresh = _tiny_model(3, bias=True)
    assert torch.equal(fresh.classifier.bias, torch.zeros(3))


def test_level_selection_and_repr():
    model = CAMClassifier(SmallCNN((8, 16, 16, 16)), 4, level=1)
    assert model.in_channels == 16
    assert model.cam(torch.rand(1, 3, 32, 32)).shape == (1, 4, 8, 8)
    assert "num_classes=4" in repr(model) and "SmallCNN" in repr(model)


def test_classifier_bad_args():
    with pytest.raises(TypeError, match="backbone"):
        CAMClassifier("resnet", 3)
    with pytest.raises(ValueError, match="num_classes"):
        CAMClassifier(SmallCNN((8, 8)), 0)
    with pytest.raises(ValueError, match="level"):
        CAMClassifier(SmallCNN((8, 8)), 2, level=5)
    with pytest.raises(ValueError, match="channels"):
        CAMClassifier(torch.nn.Identity(), 2)


def test_gradients_flow_to_backbone():
    model = _tiny_model()
    model(torch.rand(2, 3, 32, 32)).sum().backward()
    assert model.classifier.weight.grad is not None
    assert all(p.grad is not None for p in model.backbone.parameters())


def test_train_classifier_learns_toy_task(device):
    train = _toy_samples(32, seed=0)
    test = _toy_samples(16, seed=1)
    torch.manual_seed(0)
    model = CAMClassifier(SmallCNN((16, 32, 32, 32)), 2, bias=True)
    model = train_classifier(model, train, epochs=20, lr=1e-2, batch_size=16,
                             device=device, progress=False, seed=0)
    assert not model.training
    x = torch.stack([torch.from_numpy(s["image"]).permute(2, 0, 1).float() / 255 for s in test])
    y = torch.stack([torch.from_numpy(s["tags"]) for s in test])
    xt = torch.stack([torch.from_numpy(s["image"]).permute(2, 0, 1).float() / 255 for s in train])
    yt = torch.stack([torch.from_numpy(s["tags"]) for s in train])
    assert (predict_tags(model, xt.to(device)).cpu() == yt).float().mean() >= 0.95
    pred = predict_tags(model, x.to(device)).cpu()
    assert (pred == y).float().mean() >= 0.85
    # the CAM of a present class peaks on its square
    s = test[0]
    c = int(np.flatnonzero(s["tags"])[0])
    with torch.no_grad():
        cam = model.cam(x[:1].to(device))[0, c].cpu()
    colour = [230, 20, 20] if c == 0 else [20, 20, 230]
    mask = torch.from_numpy((s["image"] == colour).all(-1))
    cam_up = torch.nn.functional.interpolate(cam[None, None], size=(32, 32), mode="bilinear")[0, 0]
    assert cam_up[mask].mean() > cam_up[~mask].mean()


def test_train_classifier_deterministic_and_sgd():
    train = _toy_samples(8)
    outs = []
    for _ in range(2):
        torch.manual_seed(0)
        m = train_classifier(_tiny_model(), train, epochs=2, batch_size=4, progress=False,
                             optimizer="sgd", seed=3)
        outs.append(m.classifier.weight.detach().clone())
    assert torch.equal(outs[0], outs[1])


def test_train_classifier_mixed_sizes_and_image_size():
    train = _toy_samples(4, size=32) + _toy_samples(3, size=40)
    m = train_classifier(_tiny_model(), train, epochs=1, batch_size=4, progress=False,
                         scale_jitter=None)
    assert not m.training
    m = train_classifier(_tiny_model(), train, epochs=1, batch_size=4, progress=True,
                         image_size=24, flip=False)
    assert not m.training


def test_train_classifier_frozen_backbone():
    model = _tiny_model()
    before = [p.detach().clone() for p in model.backbone.parameters()]
    train_classifier(model, _toy_samples(4), epochs=1, progress=False, backbone_lr_mult=0.0,
                     scale_jitter=None)
    # BN running stats change in train mode, but the conv weights stay
    after = list(model.backbone.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, after))


def test_train_classifier_bad_input():
    model = _tiny_model()
    good = _toy_samples(2)
    with pytest.raises(TypeError, match="model"):
        train_classifier(torch.nn.Linear(2, 2), good)
    with pytest.raises(ValueError, match="empty"):
        train_classifier(model, [])
    with pytest.raises(TypeError, match="samples"):
        train_classifier(model, good[0])
    with pytest.raises(ValueError, match="tags"):
        train_classifier(model, [{"image": good[0]["image"], "tags": np.ones(3, np.float32)}])
    with pytest.raises(ValueError, match="multi-hot"):
        train_classifier(model, [{"image": good[0]["image"], "tags": np.array([0.5, 1.0])}])
    with pytest.raises(ValueError, match="image"):
        train_classifier(model, [{"image": np.zeros((8, 8), np.uint8), "tags": np.ones(2)}])
    with pytest.raises(ValueError, match="'image' and 'tags'"):
        train_classifier(model, [{"image": good[0]["image"]}])
    with pytest.raises(ValueError, match="epochs"):
        train_classifier(model, good, epochs=0)
    with pytest.raises(ValueError, match="lr"):
        train_classifier(model, good, lr=-1.0)
    with pytest.raises(ValueError, match="optimizer"):
        train_classifier(model, good, optimizer="rmsprop")
    with pytest.raises(ValueError, match="scale_jitter"):
        train_classifier(model, good, scale_jitter=(1.2, 0.8))
    with pytest.raises(ValueError, match="batch_size"):
        train_classifier(model, good, batch_size=0)


def test_on_synthetic_dataset():
    data = pytest.importorskip("pyg_wsss.data")
    ds = data.SyntheticWSSS(num_images=6, image_size=32, num_classes=3, seed=0)
    model = CAMClassifier(SmallCNN((8, 8, 8, 8), convs_per_stage=1), ds.num_classes - 1)
    model = train_classifier(model, ds, epochs=1, batch_size=3, progress=False)
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 3)


def test_lazy_import():
    from pyg_wsss.nn import models

    assert models.CAMClassifier is CAMClassifier and models.train_classifier is train_classifier
