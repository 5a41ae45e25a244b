"""Knowledge-graph WSSS models (Zhang et al., EAAI 2024): the ML-GCN-style classifier (K 1-6)
and the GRM segmentation head (K 7-8)."""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import DenseGCNConv

from pyg_wsss._checks import check_choice, check_positive, check_tensor
from pyg_wsss.nn.conv.graph_reasoning import GraphReasoningMapping, relation_to_edge_index
from pyg_wsss.nn.functional.focal import multilabel_focal_loss

__all__ = ["KnowledgeClassifier", "GRMHead"]

CAM_SOURCES = ("plain", "gcn", "mean")


def _check_knowledge(node_features: Tensor, relation: Tensor | None) -> tuple[Tensor, Tensor]:
    check_tensor(node_features, "node_features", ndim=2, floating=True, finite=True)
    num = node_features.size(0)
    if num == 0:
        raise ValueError("'node_features' must have at least one class node")
    if relation is None:
        relation = torch.zeros(num, num, dtype=node_features.dtype)
    relation = torch.as_tensor(relation)
    check_tensor(relation, "relation", ndim=2, floating=True, finite=True)
    if tuple(relation.shape) != (num, num):
        raise ValueError(
            f"'relation' must have shape [{num}, {num}] (one row per class node), "
            f"got {tuple(relation.shape)}"
        )
    if relation.numel() and relation.min() < 0:
        raise ValueError("'relation' must be non-negative")
    return node_features.detach().clone().float(), relation.detach().clone().float()


class KnowledgeClassifier(nn.Module):
    r"""Multi-label classifier with knowledge-graph classifier weights (ML-GCN style, K 1-6).

    A backbone gives the feature map :math:`x \in \mathbb{R}^{F \times h \times w}` and its
    global average :math:`f`. Two classifiers score the :math:`C` foreground classes:

    - the plain one, :math:`x'_c = w_c^\top f` (a 1x1 convolution without bias);
    - the knowledge one, :math:`\hat{x}_c = g_c^\top f` with classifier weights from a two-layer
      GCN over the class nodes (Eq. 2): :math:`G = \rho(\hat{A}\,\rho(\hat{A} V W_1) W_2)
      \in \mathbb{R}^{C \times F}`, :math:`\hat{A} = \hat{Q}^{-1/2}(E + I)\hat{Q}^{-1/2}`,
      :math:`V` the class embeddings, :math:`\rho` = LeakyReLU(0.2). The GCN layers are
      :class:`torch_geometric.nn.DenseGCNConv` with ``add_loop=False`` applied to
      :math:`E + I` (exactly Eq. 2, NOTES.md check 3; :math:`C \le 91` nodes, so dense).

    Loss (Eq. 6): :math:`L = \mathrm{MultiLabelSoftMargin}(x', y) + \lambda\,
    L_{\mathrm{fl}}(\hat{x}, y)` with the focal loss of Eq. 5
    (:func:`~pyg_wsss.nn.functional.multilabel_focal_loss`, :math:`\gamma = 2`).

    Paper or code: ``final_activation=True`` (the authors' code: LeakyReLU after both GCN
    layers) or ``False`` (ML-GCN: none after the second); ``detach_modulator`` as in the focal
    loss (paper ``False``, code ``True``); CAMs from ``cam_source="plain"`` (the code: the
    knowledge branch acts only through the loss), ``"gcn"`` (the GCN classifier's weights) or
    ``"mean"`` (average of the two maps).

    Args:
        backbone: A :class:`~pyg_wsss.nn.models.Backbone` (``forward(x) -> list`` of feature
            maps, attribute ``channels``); the last map is used.
        node_features: Class-node embeddings :math:`V`, ``[C, K]`` (e.g. GloVe).
        relation: Class-relation matrix :math:`E`, ``[C, C]`` non-negative (knowledge graph,
            co-occurrence, or any user matrix); ``None`` = no relations (:math:`\hat{A} = I`).
        hidden_channels: Hidden GCN size (code: 1024).
        focal_weight: :math:`\lambda` (paper: 1e-4).
        gamma: Focal :math:`\gamma` (paper: 2).
        detach_modulator: Focal loss variant (paper ``False``, code ``True``).
        final_activation: LeakyReLU after the second GCN layer (code ``True``).
        cam_source: ``"plain"`` | ``"gcn"`` | ``"mean"``.
        use_knowledge: ``False`` drops the knowledge branch (the baseline classifier).

    Shapes:
        - **input:** :math:`(B, 3, H, W)` RGB in :math:`[0, 1]`
        - **output:** logits :math:`(B, C)` (plain classifier; ``forward(x, both=True)``
          returns ``(plain, knowledge)``); :meth:`cam` gives :math:`(B, C, h, w)`.
    """

    # buffers, for type checkers
    node_features: Tensor
    adjacency: Tensor

    def __init__(
        self,
        backbone: nn.Module,
        node_features: Tensor,
        relation: Tensor | None = None,
        hidden_channels: int = 1024,
        focal_weight: float = 1e-4,
        gamma: float = 2.0,
        detach_modulator: bool = False,
        final_activation: bool = True,
        cam_source: str = "plain",
        use_knowledge: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(backbone, nn.Module) or not hasattr(backbone, "channels"):
            raise TypeError("'backbone' must be an nn.Module with a 'channels' attribute")
        check_positive(hidden_channels, "hidden_channels", integer=True)
        check_positive(focal_weight, "focal_weight", strict=False)
        check_positive(gamma, "gamma", strict=False)
        check_choice(cam_source, CAM_SOURCES, "cam_source")
        if cam_source != "plain" and not use_knowledge:
            raise ValueError("cam_source 'gcn'/'mean' needs use_knowledge=True")
        node_features, relation = _check_knowledge(node_features, relation)
        self.backbone = backbone
        self.num_classes = node_features.size(0)
        self.feature_channels = int(getattr(backbone, "channels")[-1])
        self.hidden_channels = hidden_channels
        self.focal_weight = float(focal_weight)
        self.gamma = float(gamma)
        self.detach_modulator = detach_modulator
        self.final_activation = final_activation
        self.cam_source = cam_source
        self.use_knowledge = use_knowledge
        self.classifier = nn.Conv2d(self.feature_channels, self.num_classes, 1, bias=False)
        self.register_buffer("node_features", node_features)
        self.register_buffer("adjacency", relation + torch.eye(self.num_classes))  # E + I
        if use_knowledge:
            self.gc1 = DenseGCNConv(node_features.size(1), hidden_channels, bias=False)
            self.gc2 = DenseGCNConv(hidden_channels, self.feature_channels, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.classifier.weight, std=0.01)
        if self.use_knowledge:
            self.gc1.reset_parameters()
            self.gc2.reset_parameters()

    def head_parameters(self) -> list[nn.Parameter]:
        """Parameters of the classifiers and the GCN (not the backbone)."""
        return [p for n, p in self.named_parameters() if not n.startswith("backbone.")]

    def gcn_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if n.startswith(("gc1.", "gc2."))]

    def features(self, x: Tensor) -> Tensor:
        check_tensor(x, "x", ndim=4, floating=True)
        if x.size(1) != 3:
            raise ValueError(f"'x' must be RGB [B, 3, H, W], got {tuple(x.shape)}")
        return self.backbone(x)[-1]

    def knowledge_weights(self) -> Tensor:
        r"""GCN classifier weights :math:`G \in (C, F)` (Eq. 2, two layers)."""
        if not self.use_knowledge:
            raise RuntimeError("this classifier was built with use_knowledge=False")
        h = F.leaky_relu(self.gc1(self.node_features, self.adjacency, add_loop=False), 0.2)
        h = self.gc2(h, self.adjacency, add_loop=False)
        if self.final_activation:
            h = F.leaky_relu(h, 0.2)
        return h.squeeze(0)

    def forward(self, x: Tensor, both: bool = False) -> Tensor | tuple[Tensor, Tensor | None]:
        pooled = self.features(x).mean(dim=(2, 3))  # [B, F]
        plain = pooled @ self.classifier.weight.view(self.num_classes, -1).t()
        if not both:
            return plain
        knowledge = pooled @ self.knowledge_weights().t() if self.use_knowledge else None
        return plain, knowledge

    def loss(self, x: Tensor, targets: Tensor) -> Tensor:
        """Eq. 6: multilabel soft margin (plain) + ``focal_weight`` x focal (knowledge)."""
        check_tensor(targets, "targets", ndim=2)
        if targets.shape != (x.size(0), self.num_classes):
            raise ValueError(
                f"'targets' must have shape [{x.size(0)}, {self.num_classes}], "
                f"got {tuple(targets.shape)}"
            )
        plain, knowledge = self.forward(x, both=True)
        loss = F.multilabel_soft_margin_loss(plain, targets.to(plain.dtype))
        if knowledge is not None and self.focal_weight > 0:
            loss = loss + self.focal_weight * multilabel_focal_loss(
                knowledge, targets, gamma=self.gamma, detach_modulator=self.detach_modulator
            )
        return loss

    def cam(self, x: Tensor, source: str | None = None) -> Tensor:
        """CAMs ``ReLU(sum_f w_cf x_f)`` at feature resolution, ``[B, C, h, w]``."""
        source = self.cam_source if source is None else check_choice(source, CAM_SOURCES, "source")
        feat = self.features(x)
        maps = []
        if source in ("plain", "mean"):
            maps.append(F.relu(F.conv2d(feat, self.classifier.weight)))
        if source in ("gcn", "mean"):
            g = self.knowledge_weights()
            maps.append(F.relu(torch.einsum("bfhw,cf->bchw", feat, g)))
        if len(maps) == 1:
            return maps[0]
        # average of the two maps, each scaled to max 1 per image and class
        scaled = [m / m.flatten(2).amax(-1).clamp_min(1e-5)[..., None, None] for m in maps]
        return (scaled[0] + scaled[1]) / 2

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(num_classes={self.num_classes}, "
            f"feature_channels={self.feature_channels}, knowledge={self.use_knowledge}, "
            f"focal_weight={self.focal_weight}, cam_source='{self.cam_source}')"
        )


class GRMHead(nn.Module):
    r"""Segmentation head: :class:`~pyg_wsss.nn.conv.GraphReasoningMapping` over the class
    knowledge graph, then a 1x1 classifier (K Sec. 3.4; placed after the 256-d ASPP output).

    .. math::
        \mathrm{logits} = W_{cls} * \big(\mathrm{ReLU}(H^\top V') + X\big)

    Args:
        in_channels: Channels of the incoming features (256 after ASPP).
        num_classes: Output classes including background (21 for VOC).
        node_features: Class-node embeddings ``[C, K]`` (foreground classes).
        relation: Class-relation matrix ``[C, C]`` or ``None``.
        classifier: Add the 1x1 classifier (``False``: return the GRM features).
        **grm_kwargs: Passed to :class:`GraphReasoningMapping` (``score``, ``dropout``, ...).

    Shapes:
        - **input:** :math:`(B, D, h, w)`
        - **output:** :math:`(B, \text{num\_classes}, h, w)`
    """

    # buffers and sub-modules, for type checkers
    node_features: Tensor
    edge_index: Tensor
    edge_weight: Tensor
    classifier: nn.Conv2d | None

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        node_features: Tensor,
        relation: Tensor | None = None,
        classifier: bool = True,
        **grm_kwargs,
    ) -> None:
        super().__init__()
        check_positive(in_channels, "in_channels", integer=True)
        check_positive(num_classes, "num_classes", integer=True)
        node_features, relation = _check_knowledge(node_features, relation)
        self.in_channels = in_channels
        self.num_classes = num_classes
        edge_index, edge_weight = relation_to_edge_index(relation)
        self.register_buffer("node_features", node_features)
        self.register_buffer("edge_index", edge_index)
        self.register_buffer("edge_weight", edge_weight)
        self.grm = GraphReasoningMapping(in_channels, node_features.size(1), **grm_kwargs)
        self.classifier = nn.Conv2d(in_channels, num_classes, 1, bias=False) if classifier else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.grm.reset_parameters()
        if self.classifier is not None:
            nn.init.normal_(self.classifier.weight, std=0.01)

    def forward(self, x: Tensor, return_mapping: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        out = self.grm(
            x, self.node_features, self.edge_index, self.edge_weight, return_mapping=return_mapping
        )
        out, mapping = out if return_mapping else (out, None)
        if self.classifier is not None:
            out = self.classifier(out)
        return (out, cast(Tensor, mapping)) if return_mapping else out

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.in_channels}, num_classes={self.num_classes}, "
            f"class_nodes={self.node_features.size(0)}, score='{self.grm.score}')"
        )
