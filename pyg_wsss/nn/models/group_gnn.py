"""Group-WSSS group-wise semantic mining network (Li et al., AAAI 2021)."""
from __future__ import annotations

from typing import Any, Hashable, NamedTuple, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.typing import Adj

from ..._checks import check_choice, check_fraction, check_positive, check_tensor
from ..conv.co_attention import CoAttentionConv
from ..conv_gru import ConvGRUCell
from ..graph_dropout import GraphDropout

__all__ = [
    "GroupGNN",
    "GroupGNNOutput",
    "group_wsss_loss",
    "OnlineCAMAccumulator",
    "normalize_cam_maps",
]


class GroupGNNOutput(NamedTuple):
    """What :meth:`GroupGNN.forward` returns (``L`` classes, ``h x w`` node maps)."""

    logits: Tensor  #: graph readout :math:`l^g` ``[N, L]`` (G 9)
    logits_mid: Tensor  #: intermediate readout :math:`l^m` ``[N, L]``
    cam: Tensor  #: class maps of the graph readout ``[N, L, h, w]``
    cam_mid: Tensor  #: class maps of the intermediate readout ``[N, L, h, w]``


def group_wsss_loss(
    logits: Tensor, logits_mid: Tensor, tags: Tensor, lambda_mid: float = 0.4
) -> Tensor:
    r"""Group-WSSS classification loss (G 12):
    :math:`\mathcal{L} = \mathrm{BCE}(l^g, y) + \lambda\, \mathrm{BCE}(l^m, y)`, both the mean
    sigmoid cross-entropy over images and classes (the code's multilabel soft-margin loss; its
    extra ``1/6`` constant is dropped). ``lambda_mid`` = 0.4 in paper and code.

    Args:
        logits: ``[N, L]`` graph readout logits.
        logits_mid: ``[N, L]`` intermediate readout logits.
        tags: ``[N, L]`` multi-hot targets in ``{0, 1}``.
        lambda_mid: :math:`\lambda \ge 0`.
    """
    check_tensor(logits, "logits", ndim=2, floating=True, finite=True)
    check_tensor(logits_mid, "logits_mid", ndim=2, floating=True, finite=True)
    check_tensor(tags, "tags", ndim=2, finite=True)
    if logits.shape != tags.shape or logits_mid.shape != tags.shape:
        raise ValueError(
            f"'logits' {tuple(logits.shape)}, 'logits_mid' {tuple(logits_mid.shape)} and "
            f"'tags' {tuple(tags.shape)} must have the same shape"
        )
    check_positive(lambda_mid, "lambda_mid", strict=False)
    t = tags.to(logits.dtype)
    if t.numel() and ((t < 0) | (t > 1)).any():
        raise ValueError("'tags' must be in [0, 1]")
    if logits.numel() == 0:
        return logits.sum() + logits_mid.sum()
    loss = F.binary_cross_entropy_with_logits(logits, t)
    return loss + lambda_mid * F.binary_cross_entropy_with_logits(logits_mid, t)


def normalize_cam_maps(cams: Tensor, tags: Optional[Tensor] = None, eps: float = 1e-8) -> Tensor:
    r"""ReLU and per-map max normalisation :math:`\mathrm{relu}(M) / (\max \mathrm{relu}(M)
    + \epsilon)` of ``[..., L, h, w]`` class maps; classes absent from ``tags`` ``[..., L]``
    are set to zero."""
    check_tensor(cams, "cams", ndim=(3, 4), floating=True, finite=True)
    m = cams.clamp_min(0)
    peak = m.flatten(-2).amax(-1)[..., None, None]
    out = m / (peak + eps)
    if tags is not None:
        check_tensor(tags, "tags", finite=True)
        if tags.shape != cams.shape[:-2]:
            raise ValueError(
                f"'tags' must have shape {tuple(cams.shape[:-2])}, got {tuple(tags.shape)}"
            )
        out = out * (tags > 0).to(out.dtype)[..., None, None]
    return out


class GroupGNN(nn.Module):
    r"""Group-wise semantic mining network of Group-WSSS (Li et al., AAAI 2021, Fig. 2).

    A group of images (the nodes; edges join images sharing a class, e.g.
    :func:`pyg_wsss.graphs.image_group_graph`) goes through

    1. the backbone (``backbone(x)[level]``) and a head of ``head_convs`` 3x3 conv + ReLU
       layers (the code's "extra" layers) giving :math:`\mathbf{h}^0`;
    2. the intermediate readout :math:`l^m = \mathrm{GAP}(\phi_m(\mathbf{h}^0))`;
    3. ``num_steps`` = T rounds (default 3) of message passing
       :math:`\mathbf{m}^t = \mathrm{CoAttentionConv}(\mathbf{h}^{t-1})` (G 4-8), update
       :math:`\mathbf{h}^t = \mathrm{ConvGRU}(\mathbf{m}^t, \mathbf{h}^{t-1})` (G 2) and
       graph dropout :math:`\hat{\mathbf{h}}^t = \mathrm{GDL}(\mathbf{h}^t)` (G 10-11); the
       co-attention, GRU and dropout weights are shared across rounds;
    4. the graph readout :math:`l^g = \mathrm{GAP}(\phi_r(\hat{\mathbf{h}}^T))` (G 9).

    ``node_state="features"`` (paper): the node state is the ``hidden_channels`` feature map;
    :math:`\phi_m, \phi_r` are 1x1 class-aware convolutions. ``node_state="classes"`` (code,
    NOTES.md 1.1): a 1x1 conv turns the head output into an ``L``-channel class-score map,
    which *is* the node state; :math:`\phi_m = \phi_r = \mathrm{id}`. The class maps before
    the GAP are the CAMs of each readout; :meth:`cams` self-ensembles them (mean).

    Args:
        backbone: A module mapping ``[N, 3, H, W]`` images (RGB in ``[0, 1]``) to a list of
            feature maps, with a ``channels`` attribute (the
            :mod:`pyg_wsss.nn.models.backbones` API), or to one tensor (give
            ``in_channels``).
        num_classes: Foreground classes ``L``.
        level: Which backbone output to use.
        in_channels: Channels of that output (default ``backbone.channels[level]``).
        hidden_channels: Width of the head (default ``in_channels``).
        head_convs: 3x3 conv + ReLU layers of the head (code: 3).
        num_steps: Message-passing rounds T (default 3; 0 = no graph reasoning).
        node_state: ``"features" | "classes"`` (see above).
        variant: ``"paper" | "code"`` for :class:`CoAttentionConv` and
            :class:`GraphDropout` (and the default ``node_state``: features / classes).
        graph_dropout: Use the graph dropout layer (``False`` = the paper's "w/o dropout").
        drop_rate, drop_threshold: :math:`\delta_r, \delta_d` (0.8, 0.7).
        conv_kwargs: Extra arguments of :class:`CoAttentionConv` (e.g. ``reduction``).
        dropout_kwargs: Extra arguments of :class:`GraphDropout` (e.g. ``eval_mode``).
        gru_kernel_size: Kernel of the :class:`ConvGRUCell` (1 in the code).

    Shapes:
        - **input:** images :math:`(N, 3, H, W)`, edge_index :math:`(2, E)` (a batch of
          groups is one disjoint graph)
        - **output:** :class:`GroupGNNOutput` (``logits`` and ``logits_mid`` :math:`(N, L)`,
          ``cam`` and ``cam_mid`` :math:`(N, L, h, w)`)
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        level: int = -1,
        in_channels: Optional[int] = None,
        hidden_channels: Optional[int] = None,
        head_convs: int = 1,
        num_steps: int = 3,
        node_state: Optional[str] = None,
        variant: str = "paper",
        graph_dropout: bool = True,
        drop_rate: float = 0.8,
        drop_threshold: float = 0.7,
        conv_kwargs: Optional[dict[str, Any]] = None,
        dropout_kwargs: Optional[dict[str, Any]] = None,
        gru_kernel_size: int = 1,
    ) -> None:
        """See the class docstring. Many parameters because: they are the paper's and the
        code's hyper-parameters of one network (head, GNN rounds, graph dropout), set by
        keyword like a PyG model's; :func:`~pyg_wsss.pipelines.group_wsss.build_group_model`
        is the short form."""
        super().__init__()
        if not isinstance(backbone, nn.Module):
            raise TypeError(f"'backbone' must be an nn.Module, got {type(backbone).__name__}")
        check_positive(num_classes, "num_classes", integer=True)
        check_positive(head_convs, "head_convs", strict=False, integer=True)
        check_positive(num_steps, "num_steps", strict=False, integer=True)
        check_choice(variant, ("paper", "code"), "variant")
        if node_state is None:
            node_state = "features" if variant == "paper" else "classes"
        check_choice(node_state, ("features", "classes"), "node_state")
        check_fraction(drop_rate, "drop_rate")
        check_fraction(drop_threshold, "drop_threshold")
        if in_channels is None:
            chans = getattr(backbone, "channels", None)
            if chans is None:
                raise ValueError("'in_channels' is required when the backbone has no 'channels'")
            in_channels = int(chans[level])
        check_positive(in_channels, "in_channels", integer=True)
        hidden_channels = in_channels if hidden_channels is None else hidden_channels
        check_positive(hidden_channels, "hidden_channels", integer=True)

        self.backbone = backbone
        self.num_classes = int(num_classes)
        self.level = level
        self.in_channels = int(in_channels)
        self.hidden_channels = int(hidden_channels)
        self.num_steps = int(num_steps)
        self.node_state = node_state
        self.variant = variant
        layers: list[nn.Module] = []
        cin = self.in_channels
        for _ in range(head_convs):
            layers += [nn.Conv2d(cin, self.hidden_channels, 3, padding=1), nn.ReLU(inplace=True)]
            cin = self.hidden_channels
        self.head = nn.Sequential(*layers)
        if node_state == "classes":
            self.to_classes = nn.Conv2d(cin, self.num_classes, 1)
            state = self.num_classes
            self.register_module("classifier_mid", None)
            self.register_module("classifier", None)
        else:
            self.register_module("to_classes", None)
            state = cin
            self.classifier_mid = nn.Conv2d(cin, self.num_classes, 1)
            self.classifier = nn.Conv2d(cin, self.num_classes, 1)
        self.state_channels = state
        self.conv = CoAttentionConv(state, variant=variant, **(conv_kwargs or {}))
        self.gru = ConvGRUCell(state, state, kernel_size=gru_kernel_size)
        if graph_dropout:
            self.dropout = GraphDropout(
                drop_rate, drop_threshold, variant=variant, **(dropout_kwargs or {})
            )
        else:
            self.register_module("dropout", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Reset the new (non-backbone) layers: N(0, 0.01) convolution weights as in the
        authors' code, zero biases; the co-attention and GRU layers use their own reset."""
        for m in self.new_modules():
            if m in (self.conv, self.gru):
                m.reset_parameters()
                continue
            for sub in m.modules():
                if isinstance(sub, nn.Conv2d):
                    nn.init.normal_(sub.weight, 0.0, 0.01)
                    if sub.bias is not None:
                        nn.init.zeros_(sub.bias)

    def new_modules(self) -> list[nn.Module]:
        """The layers that are not part of the backbone (the code's "extra" layers)."""
        mods: list[nn.Module | None] = [
            self.head, self.to_classes, self.classifier_mid, self.classifier, self.conv, self.gru
        ]
        return [m for m in mods if m is not None]

    def parameter_groups(self, lr: float, backbone_lr: Optional[float] = None) -> list[dict]:
        """SGD parameter groups of the authors' code (NOTES.md 1.1): backbone weights
        ``backbone_lr`` (default ``lr / 10``), backbone biases ``2 x``, new weights ``lr``,
        new biases ``2 x lr``. (Paper: 1e-3 backbone, 1e-2 GNN.)"""
        check_positive(lr, "lr")
        backbone_lr = lr / 10 if backbone_lr is None else backbone_lr
        check_positive(backbone_lr, "backbone_lr")
        groups: dict[str, list[nn.Parameter]] = {"bw": [], "bb": [], "nw": [], "nb": []}
        for name, p in self.backbone.named_parameters():
            if p.requires_grad:
                groups["bb" if name.endswith("bias") or p.dim() == 1 else "bw"].append(p)
        for m in self.new_modules():
            for name, p in m.named_parameters():
                if p.requires_grad:
                    groups["nb" if name.endswith("bias") else "nw"].append(p)
        out = [
            {"params": groups["bw"], "lr": backbone_lr, "name": "backbone_weight"},
            {"params": groups["bb"], "lr": 2 * backbone_lr, "name": "backbone_bias"},
            {"params": groups["nw"], "lr": lr, "name": "new_weight"},
            {"params": groups["nb"], "lr": 2 * lr, "name": "new_bias"},
        ]
        return [g for g in out if g["params"]]

    def backbone_features(self, images: Tensor) -> Tensor:
        """The backbone output at ``level`` for ``[N, 3, H, W]`` images."""
        feats = self.backbone(images)
        if isinstance(feats, (list, tuple)):
            feats = feats[self.level]
        return feats

    def forward(self, images: Tensor, edge_index: Adj) -> GroupGNNOutput:
        check_tensor(images, "images", ndim=4, floating=True, finite=True)
        return self.forward_features(self.backbone_features(images), edge_index)

    def forward_features(self, feats: Tensor, edge_index: Adj) -> GroupGNNOutput:
        """:meth:`forward` from precomputed backbone features ``[N, in_channels, h, w]``
        (e.g. cached features of a frozen backbone)."""
        check_tensor(feats, "feats", ndim=4, floating=True)
        if feats.size(1) != self.in_channels:
            raise ValueError(
                f"'feats' must have {self.in_channels} channels, got shape {tuple(feats.shape)}"
            )
        h = self.head(feats)
        if self.node_state == "classes":
            h = self.to_classes(h)
            cam_mid = h
        else:
            cam_mid = self.classifier_mid(h)
        for _ in range(self.num_steps):
            m = self.conv(h, edge_index)
            h = self.gru(m, h)
            if self.dropout is not None:
                h = self.dropout(h)
        cam = h if self.node_state == "classes" else self.classifier(h)
        return GroupGNNOutput(cam.mean(dim=(2, 3)), cam_mid.mean(dim=(2, 3)), cam, cam_mid)

    @torch.no_grad()
    def cams(
        self,
        images: Tensor,
        edge_index: Adj,
        tags: Optional[Tensor] = None,
        size: Optional[Sequence[int]] = None,
        ensemble: str = "normalized",
    ) -> dict[str, Tensor]:
        r"""CAMs of both readouts and their self-ensemble (G "Self-Ensembling", Table 3).

        Args:
            images, edge_index: As :meth:`forward`.
            tags: ``[N, L]`` tags; absent classes are zeroed.
            size: Upsample the maps to ``(H, W)`` (bilinear) before normalising.
            ensemble: ``"normalized"``: mean of the two max-normalised maps (paper:
                "averaging" the CAMs); ``"raw"``: normalise the mean of the raw maps (code).

        Returns:
            ``{"intermediate", "graph", "ensemble"}`` -> ``[N, L, h, w]`` in ``[0, 1]``.
        """
        check_choice(ensemble, ("normalized", "raw"), "ensemble")
        out = self(images, edge_index)
        maps = {"intermediate": out.cam_mid, "graph": out.cam}
        if size is not None:
            maps = {
                k: F.interpolate(v, size=tuple(size), mode="bilinear", align_corners=False)
                for k, v in maps.items()
            }
        norm = {k: normalize_cam_maps(v, tags) for k, v in maps.items()}
        if ensemble == "normalized":
            norm["ensemble"] = (norm["intermediate"] + norm["graph"]) / 2
        else:
            norm["ensemble"] = normalize_cam_maps((maps["intermediate"] + maps["graph"]) / 2, tags)
        return norm

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(num_classes={self.num_classes}, "
            f"state_channels={self.state_channels}, num_steps={self.num_steps}, "
            f"node_state={self.node_state!r}, variant={self.variant!r}, "
            f"graph_dropout={self.dropout is not None})"
        )


class OnlineCAMAccumulator:
    r"""Online max-accumulation of CAMs over training (the code's OAA-style step, NOTES.md 1.2).

    Each :meth:`update` normalises the maps (ReLU, divide by max + 1e-8), keeps only the
    image's tagged classes whose predicted probability is at least ``prob_threshold``
    (code: 0.1 on :math:`\sigma(l^g)`; ``force=True`` skips that gate, as the code does in
    its last epoch) and stores the element-wise maximum with what was stored for the key.
    """

    def __init__(self, prob_threshold: float = 0.1) -> None:
        check_fraction(prob_threshold, "prob_threshold")
        self.prob_threshold = float(prob_threshold)
        self.maps: dict[Hashable, Tensor] = {}

    def update(
        self,
        keys: Sequence[Hashable],
        cams: Tensor,
        tags: Tensor,
        probs: Optional[Tensor] = None,
        force: bool = False,
    ) -> None:
        """Accumulate raw maps ``cams`` ``[N, L, h, w]`` of images ``keys`` (``[N, L]``
        ``tags`` and optional ``probs``)."""
        check_tensor(cams, "cams", ndim=4, floating=True, finite=True)
        if not hasattr(keys, "__len__") or isinstance(keys, (str, bytes)):
            raise TypeError(f"'keys' must be a sequence of image keys, got {type(keys).__name__}")
        if len(keys) != cams.size(0):
            raise ValueError(f"'keys' has {len(keys)} entries for {cams.size(0)} maps ('cams')")
        check_tensor(tags, "tags", ndim=2, finite=True)
        if tuple(tags.shape) != tuple(cams.shape[:2]):
            raise ValueError(
                f"'tags' must have shape {tuple(cams.shape[:2])} ([N, L] of 'cams'), got "
                f"{tuple(tags.shape)}"
            )
        if probs is not None:
            check_tensor(probs, "probs", ndim=2, floating=True, finite=True)
            if probs.shape != tags.shape:
                raise ValueError(
                    f"'probs' must have shape {tuple(tags.shape)}, got {tuple(probs.shape)}"
                )
        keep = tags > 0
        if probs is not None and not force:
            keep = keep & (probs >= self.prob_threshold)
        new = normalize_cam_maps(cams.detach(), keep.to(cams.dtype)).cpu()
        keep = keep.cpu()
        for key, m, k in zip(keys, new, keep):
            old = self.maps.get(key)
            if old is None:
                self.maps[key] = m.clone()
            else:
                self.maps[key] = torch.where(k[:, None, None], torch.maximum(old, m), old)

    def __getitem__(self, key: Hashable) -> Tensor:
        return self.maps[key]

    def __contains__(self, key: Hashable) -> bool:
        return key in self.maps

    def __len__(self) -> int:
        return len(self.maps)
