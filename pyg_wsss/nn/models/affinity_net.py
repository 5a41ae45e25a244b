r"""The affinity CNN of A2GNN (A 6-15; PSA's AffinityNet head) and the pixel graph it builds."""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..._checks import check_positive, check_tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class AffinityNet(nn.Module):
    r"""Affinity head over a backbone feature pyramid (A 6-15, section 5).

    Three pyramid levels are picked (``levels``), bilinearly resized to the finest of them,
    reduced by 1x1 convolutions to 64 / 128 / 256 channels with ELU, concatenated (448) and
    mixed by a 1x1 448 -> 448 convolution with ELU: the affinity features :math:`F_A`. The
    affinity of two pixels is :math:`D(i, j) = \exp(-\|F_A(i) - F_A(j)\|_1 / d_A)` (A 8).

    At inference :meth:`build_graph` returns, per image, the pixel graph of A2GNN: node
    features = the concatenated raw levels, L1-normalised per node (A 15; non-negative
    post-ReLU features assumed), window edges (square radius, 3 or 4 as in the code; the
    paper's disc of radius 5 via ``shape="disc"``) with weights :math:`E_{ij} = D(i, j)`
    (optional threshold, A 14: ``1e-3`` paper, none code).

    Args:
        backbone (nn.Module, optional): A :class:`~pyg_wsss.nn.models.backbones.Backbone`
            (``channels``/``strides`` attributes). Without it :meth:`forward` takes
            precomputed pyramids and ``in_channels`` is required.
        in_channels (sequence of int, optional): Channels of the three picked levels.
        levels (sequence of int): Which pyramid levels to use. (default: last three)
        reduce_channels (sequence of int): Per-level reductions. (default: 64, 128, 256)
        out_channels (int): :math:`d_A`. (default: 448 = sum of the reductions)
        freeze_backbone (bool): Run the backbone without gradients. (default: True)

    Shapes:
        - **input:** images ``[B, 3, H, W]`` in ``[0, 1]`` or a pyramid (list of
          ``[B, C_l, h_l, w_l]``)
        - **output:** :math:`F_A` ``[B, out_channels, h, w]`` at the finest picked level
    """

    def __init__(
        self,
        backbone: Optional[nn.Module] = None,
        in_channels: Optional[Sequence[int]] = None,
        levels: Sequence[int] = (-3, -2, -1),
        reduce_channels: Sequence[int] = (64, 128, 256),
        out_channels: Optional[int] = None,
        freeze_backbone: bool = True,
    ):
        super().__init__()
        levels = tuple(int(v) for v in levels)
        reduce_channels = tuple(int(v) for v in reduce_channels)
        if len(levels) != len(reduce_channels) or len(levels) == 0:
            raise ValueError("'levels' and 'reduce_channels' must have the same non-zero length")
        if backbone is not None:
            chans = tuple(getattr(backbone, "channels"))
            try:
                picked = tuple(chans[v] for v in levels)
            except IndexError as err:
                raise ValueError(f"'levels' {levels} out of range for {len(chans)} levels") from err
            if in_channels is not None and tuple(in_channels) != picked:
                raise ValueError(f"'in_channels' {tuple(in_channels)} != backbone levels {picked}")
            in_channels = picked
        if in_channels is None:
            raise ValueError("'in_channels' is required without a backbone")
        in_channels = tuple(int(v) for v in in_channels)
        if len(in_channels) != len(levels):
            raise ValueError("'in_channels' must have one entry per level")
        for v in in_channels + reduce_channels:
            check_positive(v, "channels", integer=True)
        out_channels = sum(reduce_channels) if out_channels is None else int(out_channels)
        check_positive(out_channels, "out_channels", integer=True)
        self.backbone = backbone
        self.levels = levels
        self.in_channels = in_channels
        self.reduce_channels = reduce_channels
        self.out_channels = out_channels
        self.freeze_backbone = freeze_backbone
        self.reduce = nn.ModuleList(
            [nn.Conv2d(c, r, 1, bias=False) for c, r in zip(in_channels, reduce_channels)]
        )
        self.mix = nn.Conv2d(sum(reduce_channels), out_channels, 1, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming for the reductions, Xavier-uniform gain 4 for the last 1x1 (as PSA)."""
        for conv in self.reduce:
            assert isinstance(conv, nn.Conv2d)
            nn.init.kaiming_normal_(conv.weight)
        nn.init.xavier_uniform_(self.mix.weight, gain=4)

    def pyramid(self, inputs: Union[Tensor, Sequence[Tensor]]) -> list[Tensor]:
        """The picked levels, each resized (bilinear) to the finest picked one."""
        if isinstance(inputs, Tensor):
            if self.backbone is None:
                raise ValueError("images need a backbone; pass a feature pyramid instead")
            check_tensor(inputs, "inputs", ndim=4, floating=True, finite=True)
            if self.freeze_backbone:
                with torch.no_grad():
                    was = self.backbone.training
                    self.backbone.eval()
                    feats = self.backbone(inputs)
                    self.backbone.train(was)
            else:
                feats = self.backbone(inputs)
        elif isinstance(inputs, (list, tuple)):
            feats = list(inputs)
        else:
            raise TypeError(
                f"'inputs' must be images [B, 3, H, W] or a list of feature maps, got "
                f"{type(inputs).__name__}"
            )
        if len(feats) == len(self.levels) and not isinstance(inputs, Tensor):
            picked = feats  # a pyramid of exactly the picked levels
        else:
            try:
                picked = [feats[v] for v in self.levels]
            except IndexError as err:
                raise ValueError(
                    f"'inputs' pyramid has {len(feats)} levels, 'levels' = {self.levels}"
                ) from err
        for k, (f, c) in enumerate(zip(picked, self.in_channels)):
            check_tensor(f, f"inputs[level {k}]", ndim=4, floating=True, finite=True)
            if f.size(1) != c:
                raise ValueError(f"'inputs' level {k} has {f.size(1)} channels, expected {c}")
        size = max((f.shape[-2:] for f in picked), key=lambda s: s[0] * s[1])
        return [
            f if tuple(f.shape[-2:]) == tuple(size)
            else F.interpolate(f, size=tuple(size), mode="bilinear", align_corners=False)
            for f in picked
        ]

    def forward(self, inputs: Union[Tensor, Sequence[Tensor]]) -> Tensor:
        feats = self.pyramid(inputs)
        red = [F.elu(conv(f)) for conv, f in zip(self.reduce, feats)]
        return F.elu(self.mix(torch.cat(red, dim=1)))

    def node_features(self, inputs: Union[Tensor, Sequence[Tensor]]) -> Tensor:
        """Concatenated picked levels, L1-normalised per node (A 15): ``[B, D, h, w]``."""
        with torch.no_grad():
            x = torch.cat(self.pyramid(inputs), dim=1)
            return F.normalize(x, p=1.0, dim=1)

    @torch.no_grad()
    def build_graph(
        self,
        inputs: Union[Tensor, Sequence[Tensor]],
        radius: int = 4,
        shape: str = "square",
        threshold: Optional[float] = None,
        images: Optional[Tensor] = None,
    ) -> list:
        """Pixel graphs (one :class:`~pyg_wsss.graphs.PixelGraph` per image) with ``x``
        (L1-normalised node features), ``edge_weight`` (A 8/14), ``aff`` (:math:`F_A` per
        node) and, with ``images`` (``[B, 3, H, W]`` in ``[0, 1]``), ``colour``
        (ImageNet-normalised RGB bilinearly resized to the grid, for the Gated-CRF kernel).
        Self-loops are not included (the layer adds them with :math:`E_{ii} = 1`)."""
        from ...graphs.pixel import pixel_graph
        from ...graphs.weights import feature_affinity

        was = self.training
        self.eval()
        fa = self.forward(inputs)
        x = self.node_features(inputs)
        self.train(was)
        b, _, h, w = fa.shape
        base = pixel_graph(h, w, radius, shape=shape, device=fa.device)
        colour = None
        if images is not None:
            check_tensor(images, "images", ndim=4, floating=True)
            colour = image_colour(images, (h, w))
        graphs = []
        for k in range(b):
            g = base.clone()
            g.x = x[k].flatten(1).t().contiguous()
            g.aff = fa[k].flatten(1).t().contiguous()
            g.edge_weight = feature_affinity(g.aff, g.edge_index, threshold=threshold)
            if colour is not None:
                g.colour = colour[k].flatten(1).t().contiguous()
            graphs.append(g)
        return graphs

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(in_channels={self.in_channels}, levels={self.levels}, "
            f"out_channels={self.out_channels})"
        )


def image_colour(images: Tensor, size: Sequence[int]) -> Tensor:
    """ImageNet-normalised RGB (``[B, 3, H, W]`` in ``[0, 1]``) bilinearly resized to
    ``size``: the colour term of A2GNN's Gaussian kernels (sigma_rgb = 0.1 on this scale)."""
    mean = images.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    norm = (images - mean) / std
    return F.interpolate(norm, size=tuple(size), mode="bilinear", align_corners=False)
