"""DeepLab-style stage-2 segmentation network shared by every system (ASPP over a backbone,
optional GRM head)."""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyg_wsss._checks import check_finite, check_fraction, check_positive, check_tensor

__all__ = ["ASPP", "DeepLab", "build_deeplab"]


def _check_input(x: Any, channels: int) -> None:
    """``[B, channels, H, W]`` float, non-empty, finite (the finite check follows the level)."""
    check_tensor(x, "x", ndim=4, floating=True)
    if x.size(1) != channels:
        raise ValueError(f"'x' must have {channels} channels [B, {channels}, H, W], "
                         f"got {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"'x' is empty (shape {tuple(x.shape)})")
    check_finite(x, "x")


class ASPP(nn.Module):
    r"""DeepLab-v2 atrous spatial pyramid pooling: parallel 3x3 convolutions with dilation
    rates :math:`r_k`, **summed** (as DeepLab-v2 and the GRM code, K Sec. 3.4):
    :math:`\mathrm{ASPP}(x) = \sum_k \mathrm{conv}_{3\times3, r_k}(x)`.

    Weights :math:`\mathcal{N}(0, 0.01)`, zero biases (DeepLab-v2 init).

    Args:
        in_channels: Backbone channels (2048 for ResNet-101).
        out_channels: Output channels (256 in the GRM paper; ``num_classes`` in DeepLab-v2).
        rates: Dilation rates (DeepLab-v2: 6, 12, 18, 24 at stride 8).

    Shapes:
        - **input:** :math:`(B, C_{in}, h, w)` -> **output:** :math:`(B, C_{out}, h, w)`
    """

    def __init__(
        self, in_channels: int, out_channels: int, rates: tuple[int, ...] = (6, 12, 18, 24)
    ) -> None:
        super().__init__()
        check_positive(in_channels, "in_channels", integer=True)
        check_positive(out_channels, "out_channels", integer=True)
        if isinstance(rates, (str, bytes)) or not isinstance(rates, (tuple, list)):
            raise TypeError(f"'rates' must be a sequence of ints, got {rates!r}")
        rates = tuple(rates)
        if not rates:
            raise ValueError("'rates' must not be empty")
        for r in rates:
            check_positive(r, "rates", integer=True)
        self.in_channels, self.out_channels, self.rates = in_channels, out_channels, rates
        self.branches = nn.ModuleList(
            nn.Conv2d(in_channels, out_channels, 3, padding=r, dilation=r, bias=True) for r in rates
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for conv in self.branches:
            assert isinstance(conv, nn.Conv2d) and conv.bias is not None
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        _check_input(x, self.in_channels)
        out = self.branches[0](x)
        for branch in self.branches[1:]:
            out = out + branch(x)
        return out

    def __repr__(self) -> str:
        name = self.__class__.__name__
        return f"{name}({self.in_channels}, {self.out_channels}, rates={self.rates})"


class DeepLab(nn.Module):
    r"""Backbone -> ASPP (summed dilated branches to ``aspp_channels``) -> ReLU -> head.

    The head is a 1x1 classifier (the plain network) or a :class:`~pyg_wsss.nn.models.GRMHead`
    (GRM + 1x1 classifier, the "Ours + GRM" network of K Table 2). Logits are upsampled
    bilinearly to the input size.

    Args:
        backbone: A :class:`~pyg_wsss.nn.models.Backbone` (its last pyramid level is used).
        num_classes: Classes including background.
        aspp_channels: ASPP output channels (256).
        rates: ASPP dilation rates.
        head: Optional module mapping ``[B, aspp_channels, h, w]`` to
            ``[B, num_classes, h, w]`` (e.g. ``GRMHead``); default a 1x1 conv.
        dropout: Dropout on the ASPP features before the head (0 = none).

    Shapes:
        - **input:** :math:`(B, 3, H, W)` RGB in :math:`[0, 1]`
        - **output:** :math:`(B, \text{num\_classes}, H, W)` (``upsample=False``: at the
          backbone's output stride)
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        aspp_channels: int = 256,
        rates: tuple[int, ...] = (6, 12, 18, 24),
        head: nn.Module | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not isinstance(backbone, nn.Module) or not hasattr(backbone, "channels"):
            raise TypeError("'backbone' must be an nn.Module with a 'channels' attribute")
        check_positive(num_classes, "num_classes", integer=True)
        check_positive(aspp_channels, "aspp_channels", integer=True)
        check_fraction(dropout, "dropout")
        if dropout >= 1:
            raise ValueError(f"'dropout' must be < 1, got {dropout}")
        if head is not None and not isinstance(head, nn.Module):
            raise TypeError(f"'head' must be an nn.Module or None, got {type(head).__name__}")
        self.backbone = backbone
        self.num_classes = num_classes
        channels: Sequence[int] = getattr(backbone, "channels")  # checked above
        self.aspp = ASPP(int(channels[-1]), aspp_channels, rates)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        if head is None:
            head = nn.Conv2d(aspp_channels, num_classes, 1, bias=False)
            nn.init.normal_(head.weight, std=0.01)
        self.head = head

    @property
    def has_grm(self) -> bool:
        return hasattr(self.head, "grm")

    def param_groups(
        self, lr: float, head_lr_mult: float = 10.0, grm_lr_mult: float = 1.0
    ) -> list[dict[str, Any]]:
        """SGD parameter groups: backbone ``lr``; ASPP and classifier ``head_lr_mult * lr``
        (DeepLab: 10x); GRM ``grm_lr_mult * lr`` (paper: 1e-4 vs base 2.5e-4 = 0.4)."""
        groups: dict[str, list] = {"backbone": [], "head": [], "grm": []}
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            if name.startswith("backbone."):
                groups["backbone"].append(p)
            elif ".grm." in name or name.startswith("head.grm"):
                groups["grm"].append(p)
            else:
                groups["head"].append(p)
        mults = {"backbone": 1.0, "head": head_lr_mult, "grm": grm_lr_mult}
        return [
            {"params": ps, "lr": lr * mults[k], "lr_mult": mults[k], "name": k}
            for k, ps in groups.items()
            if ps
        ]

    def forward(self, x: Tensor, upsample: bool = True) -> Tensor:
        check_tensor(x, "x", ndim=4, floating=True)
        if x.size(1) != 3:
            raise ValueError(f"'x' must be RGB [B, 3, H, W], got {tuple(x.shape)}")
        _check_input(x, 3)
        feat = self.backbone(x)[-1]
        feat = F.relu(self.aspp(feat))
        logits = self.head(self.dropout(feat))
        if upsample:
            logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return logits


def build_deeplab(
    num_classes: int,
    backbone: str | nn.Module = "small_cnn",
    pretrained: bool = False,
    grm: bool = False,
    node_features: Tensor | None = None,
    relation: Tensor | None = None,
    aspp_channels: int = 256,
    rates: tuple[int, ...] | None = None,
    dropout: float = 0.0,
    backbone_kwargs: dict[str, Any] | None = None,
    **grm_kwargs: Any,
) -> DeepLab:
    """Build the shared stage-2 network.

    Args:
        num_classes: Classes including background.
        backbone: A backbone name for :func:`pyg_wsss.nn.models.build_backbone`
            (``"resnet101"``, ``"resnet50"``, ``"efficientnet_lite0"``, ``"small_cnn"``, ...)
            or a built backbone module.
        pretrained: ImageNet weights for the named backbone.
        grm: Put a :class:`~pyg_wsss.nn.models.GRMHead` after the ASPP.
        node_features, relation: Class knowledge for the GRM (``[C, K]``, ``[C, C]`` over the
            ``num_classes - 1`` foreground classes). ``node_features=None`` uses one-hot
            node features (no embeddings).
        aspp_channels: ASPP output size (256).
        rates: ASPP rates (default 6/12/18/24 for stride-8/16 backbones on large images; use
            small rates such as 1/2/3/4 for the 96-pixel synthetic images).
        dropout: Dropout before the head.
        backbone_kwargs: Passed to ``build_backbone``.
        **grm_kwargs: Passed to :class:`~pyg_wsss.nn.conv.GraphReasoningMapping` (``score``...).
    """
    from pyg_wsss.nn.models.knowledge import GRMHead

    check_positive(num_classes, "num_classes", integer=True)
    if num_classes < 2:
        raise ValueError(f"'num_classes' must be >= 2 (background + classes), got {num_classes}")
    check_positive(aspp_channels, "aspp_channels", integer=True)
    if not isinstance(backbone, (str, nn.Module)):
        raise TypeError(
            f"'backbone' must be a backbone name or an nn.Module, got {type(backbone).__name__}"
        )
    if grm and node_features is not None:
        check_tensor(node_features, "node_features", ndim=2, floating=True, finite=True)
        if node_features.size(0) != num_classes - 1:
            raise ValueError(
                f"'node_features' must have one row per foreground class "
                f"[{num_classes - 1}, K], got {tuple(node_features.shape)}"
            )
    if isinstance(backbone, str):
        from pyg_wsss.nn.models import build_backbone

        backbone = build_backbone(backbone, pretrained=pretrained, **(backbone_kwargs or {}))
    head = None
    if grm:
        if node_features is None:
            node_features = torch.eye(num_classes - 1)
        head = GRMHead(aspp_channels, num_classes, node_features, relation, **grm_kwargs)
    elif grm_kwargs:
        raise TypeError(f"GRM options {sorted(grm_kwargs)} need grm=True")
    return DeepLab(backbone, num_classes, aspp_channels, rates or (6, 12, 18, 24), head, dropout)
