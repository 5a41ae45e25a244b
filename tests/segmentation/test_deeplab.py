import pytest
import torch
import torch.nn.functional as F

from pyg_wsss.nn.models import GRMHead, SmallCNN
from pyg_wsss.segmentation import ASPP, DeepLab, build_deeplab


def test_aspp_is_sum_of_dilated_convs():
    aspp = ASPP(4, 3, rates=(1, 2))
    x = torch.randn(1, 4, 9, 9)
    ref = sum(
        F.conv2d(x, b.weight, b.bias, padding=r, dilation=r) for b, r in zip(aspp.branches, (1, 2))
    )
    torch.testing.assert_close(aspp(x), ref)
    assert str(aspp) == "ASPP(4, 3, rates=(1, 2))"


def test_deeplab_shapes(device):
    model = DeepLab(SmallCNN(widths=(8, 16), output_stride=4), 3, aspp_channels=8, rates=(1, 2)).to(
        device
    )
    x = torch.rand(2, 3, 30, 34, device=device)
    assert model(x).shape == (2, 3, 30, 34)
    assert model(x, upsample=False).shape == (2, 3, 8, 9)
    assert not model.has_grm


def test_build_with_grm_and_param_groups():
    v, e = torch.randn(2, 5), torch.rand(2, 2)
    model = build_deeplab(
        3,
        SmallCNN(widths=(8,), output_stride=2),
        grm=True,
        node_features=v,
        relation=e,
        aspp_channels=8,
        rates=(1,),
        score="mlp",
    )
    assert isinstance(model.head, GRMHead) and model.has_grm and model.head.grm.score == "mlp"
    groups = {g["name"]: g for g in model.param_groups(0.1, head_lr_mult=10, grm_lr_mult=0.4)}
    assert set(groups) == {"backbone", "head", "grm"}
    assert groups["head"]["lr"] == pytest.approx(1.0) and groups["grm"]["lr"] == pytest.approx(0.04)
    n = sum(len(g["params"]) for g in groups.values())
    assert n == len([p for p in model.parameters() if p.requires_grad])
    assert model(torch.rand(1, 3, 8, 8)).shape == (1, 3, 8, 8)
    # default one-hot nodes when no embeddings are given
    assert build_deeplab(
        4, SmallCNN(widths=(8,)), grm=True, aspp_channels=8, rates=(1,)
    ).head.node_features.shape == (3, 3)


def test_build_by_name():
    model = build_deeplab(
        3, "small_cnn", backbone_kwargs={"widths": (8,)}, aspp_channels=8, rates=(1,)
    )
    assert model(torch.rand(1, 3, 8, 8)).shape == (1, 3, 8, 8)


def test_bad_input():
    with pytest.raises(ValueError, match="num_classes"):
        build_deeplab(1, SmallCNN(widths=(8,)))
    with pytest.raises(TypeError, match="grm=True"):
        build_deeplab(3, SmallCNN(widths=(8,)), score="mlp")
    with pytest.raises(TypeError, match="backbone"):
        DeepLab(torch.nn.Identity(), 3)
    with pytest.raises(ValueError, match="rates"):
        ASPP(4, 4, rates=())
    model = build_deeplab(3, SmallCNN(widths=(8,)), aspp_channels=8, rates=(1,))
    with pytest.raises(ValueError, match="'x'"):
        model(torch.rand(1, 1, 8, 8))
