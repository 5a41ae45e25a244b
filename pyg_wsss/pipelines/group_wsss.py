"""Group-WSSS end to end (Li et al., AAAI 2021): group classifier training, group-wise CAMs
(intermediate / graph readout / self-ensemble) and pseudo-labels (CAM + background threshold,
optionally dense CRF).

Library functions used by ``examples/group_wsss.py`` and the demo:

* :func:`build_group_model` — a :class:`~pyg_wsss.nn.models.group_gnn.GroupGNN` on a backbone;
* :func:`train_group_wsss` — SGD with the paper's learning-rate groups and step schedule on
  groups from :class:`~pyg_wsss.graphs.GreedyGroupSampler` (settings: one
  :class:`GroupTrainConfig`);
* :func:`group_cams` — CAMs of target images, each as the anchor of a greedy group;
* :func:`cams_to_labels` / :func:`pseudo_labels` — label maps (255-free CAM argmax, CRF).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Optional, Sequence, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_choice, check_fraction, check_positive
from .._config import replace_fields, resolve_config
from ..nn.models.group_gnn import GroupGNN, OnlineCAMAccumulator, group_wsss_loss
from . import DemoContext, register_demo

__all__ = [
    "build_group_model",
    "stack_images",
    "group_batch",
    "GroupTrainConfig",
    "train_group_wsss",
    "group_cams",
    "cams_to_labels",
    "pseudo_labels",
    "context_group_cams",
    "demo",
]

READOUTS = ("intermediate", "graph", "ensemble")


def _progress(iterable: Any, desc: str, enabled: bool, total: Optional[int] = None) -> Any:
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is optional
        return iterable
    return tqdm(iterable, desc=desc, total=total, leave=False)


def build_group_model(
    num_classes: int,
    backbone: nn.Module | str = "small_cnn",
    pretrained: bool = False,
    **kwargs: Any,
) -> GroupGNN:
    """A :class:`GroupGNN` on ``backbone`` (a module, or a name for
    :func:`pyg_wsss.nn.models.build_backbone`, e.g. ``"small_cnn"``, ``"vgg16_dilated"``,
    ``"efficientnet_lite0"``); ``kwargs`` go to :class:`GroupGNN`."""
    if isinstance(backbone, str):
        from ..nn.models import build_backbone

        backbone = build_backbone(backbone, pretrained=pretrained)
    return GroupGNN(backbone, num_classes, **kwargs)


def stack_images(
    samples: Sequence[dict[str, Any]], image_size: Optional[int | tuple[int, int]] = None
) -> tuple[Tensor, Tensor]:
    """Images as one float ``[N, 3, H, W]`` tensor in ``[0, 1]`` (resized to ``image_size``,
    default: the first image's size, which all must share) and tags ``[N, C]``."""
    if len(samples) == 0:
        raise ValueError("'samples' is empty")
    if image_size is not None:
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    else:
        size = tuple(np.asarray(samples[0]["image"]).shape[:2])
    ims, tags = [], []
    for i, s in enumerate(samples):
        if "image" not in s or "tags" not in s:
            raise ValueError(f"sample {i} needs 'image' and 'tags'")
        im = torch.from_numpy(np.ascontiguousarray(s["image"])).permute(2, 0, 1).float() / 255
        if tuple(im.shape[1:]) != size:
            if image_size is None:
                raise ValueError("images differ in size; pass 'image_size'")
            im = F.interpolate(im[None], size=size, mode="bilinear", align_corners=False)[0]
        ims.append(im)
        tags.append(torch.as_tensor(np.asarray(s["tags"]), dtype=torch.float32))
    return torch.stack(ims), torch.stack(tags)


def group_batch(
    groups: Sequence[Sequence[int]], tags: Tensor, self_loops: bool
) -> tuple[Tensor, Tensor]:
    """Flatten groups of image indices into one disjoint graph: returns the image index of
    every node ``[sum K]`` and ``edge_index`` (edges join images of a group sharing a class;
    :func:`pyg_wsss.graphs.image_group_graph`)."""
    from ..graphs import image_group_graph

    nodes, edges, offset = [], [], 0
    for g in groups:
        idx = torch.as_tensor(list(g), dtype=torch.long)
        ei = cast(Tensor, image_group_graph(tags[idx], self_loops=self_loops))
        nodes.append(idx)
        edges.append(ei + offset)
        offset += idx.numel()
    return torch.cat(nodes), torch.cat(edges, dim=1)


def _self_loops(model: GroupGNN) -> bool:
    # the paper's self-edge message (G 6) needs self-loops; the code has no self message
    return bool(model.conv.self_attention)


@dataclass
class GroupTrainConfig:
    r"""The settings of :func:`train_group_wsss` (passed whole; its keywords override them).

    Fields:
        group_size: Images per group K (paper: 4).
        epochs: Training epochs (paper: 15).
        lr: Learning rate of the new layers (paper 1e-2; biases 2x).
        backbone_lr: Learning rate of the backbone weights (paper 1e-3; biases 2x; ``None``:
            ``lr / 10``); ``0`` freezes the backbone (kept in eval mode, its features
            computed once, also of the flipped images).
        groups_per_step: Groups joined into one disjoint graph per SGD step.
        sampler: ``"paper"`` (anchor + the images sharing most classes) or ``"code"`` (the
            authors' random search for identical label vectors), see
            :class:`pyg_wsss.graphs.GreedyGroupSampler`.
        milestones: Epochs at which the learning rates drop ``x0.1`` (default ``E/3`` and
            ``2E/3``, i.e. 5 and 10 of the paper's 15).
        momentum, weight_decay: SGD (Nesterov when ``momentum > 0``; 0.9, 5e-4).
        lambda_mid: :math:`\lambda` of the intermediate-readout loss (G 12; 0.4).
        image_size: Resize every image to this size (default: all share the first's).
        flip: Random horizontal flips (one draw per node and step).
        accumulate_cams: The code's online CAM accumulation (NOTES.md 1.2).
        seed: Seed of the groups and the flips.
        sync_batchnorm: Convert the backbone's BatchNorm to SyncBatchNorm when data-parallel
            (GPUs only; torch has no CPU SyncBatchNorm).
        freeze_bn: Keep every BatchNorm layer in eval mode (running statistics, no update).
    """

    group_size: int = 4
    epochs: int = 15
    lr: float = 1e-2
    backbone_lr: Optional[float] = 1e-3
    groups_per_step: int = 2
    sampler: str = "paper"
    milestones: Optional[Sequence[int]] = None
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lambda_mid: float = 0.4
    image_size: Optional[int | tuple[int, int]] = None
    flip: bool = True
    accumulate_cams: bool = False
    seed: int = 0
    sync_batchnorm: bool = False
    freeze_bn: bool = False

    def replace(self, **changes: Any) -> "GroupTrainConfig":
        """A copy with some fields changed (an unknown name is a ``TypeError`` naming it)."""
        return replace_fields(self, changes, "GroupTrainConfig.replace()")

    def check(self) -> None:
        """Validate the fields (each error names its field)."""
        check_positive(self.group_size, "group_size", integer=True)
        check_positive(self.epochs, "epochs", integer=True)
        check_positive(self.groups_per_step, "groups_per_step", integer=True)
        check_choice(self.sampler, ("paper", "code"), "sampler")
        check_fraction(self.momentum, "momentum")

    @property
    def frozen(self) -> bool:
        """Whether the backbone is frozen (``backbone_lr == 0``)."""
        return self.backbone_lr is not None and self.backbone_lr == 0


@dataclass
class _GroupRun:
    """What the one-process and the data-parallel loop of :func:`train_group_wsss` share."""

    model: GroupGNN
    cfg: GroupTrainConfig
    opt: torch.optim.Optimizer
    sched: Any
    group_sampler: Any
    images: Tensor
    tags: Tensor
    cache: Optional[list[Tensor]]  # frozen backbone: its features (and of the flipped images)
    loops: bool
    gen: torch.Generator
    device: torch.device
    acc: Optional[OnlineCAMAccumulator]
    history: Optional[list]


def train_group_wsss(
    model: GroupGNN,
    samples: Sequence[dict[str, Any]],
    config: Optional[GroupTrainConfig] = None,
    *,
    device: Optional[torch.device | str] = None,
    progress: bool = True,
    distributed: Optional[bool] = None,
    history: Optional[list] = None,
    **overrides: Any,
) -> tuple[GroupGNN, Optional[OnlineCAMAccumulator]]:
    r"""Train a :class:`GroupGNN` on image tags with groups of ``group_size`` images.

    The settings are one :class:`GroupTrainConfig` (``config``) or, as before, its fields by
    keyword (``group_size=3, epochs=2``, ...; they override ``config``).

    Groups come from :class:`pyg_wsss.graphs.GreedyGroupSampler` (``sampler``);
    ``groups_per_step`` groups form one disjoint graph per step. Optimiser: SGD, momentum
    0.9, Nesterov, weight decay 5e-4 with the paper's learning-rate groups
    (:meth:`GroupGNN.parameter_groups`: backbone ``backbone_lr`` (paper 1e-3), new layers
    ``lr`` (paper 1e-2), biases 2x); ``x0.1`` at ``milestones`` (default: epochs ``E/3`` and
    ``2E/3``, i.e. 5 and 10 of the paper's 15). ``backbone_lr=0`` freezes the backbone (kept
    in eval mode). Loss: G 12 with :math:`\lambda` = ``lambda_mid``.

    With ``accumulate_cams`` the code's online CAM accumulation (NOTES.md 1.2) records the
    anchors' self-ensembled maps from the second epoch on (the last epoch without the
    probability gate) in an :class:`OnlineCAMAccumulator` keyed by sample index.

    Data-parallel training (``distributed``; ``None``: when ``torch.distributed`` runs with
    more than one rank, see :func:`pyg_wsss.distributed.data_parallel`): every rank draws
    the same groups and flips from ``seed`` (the one-process draws), takes groups
    ``rank, rank + world, ...`` of each step's ``groups_per_step`` and runs the model in
    :class:`~torch.nn.parallel.DistributedDataParallel` (:meth:`GroupGNN.forward_features`
    behind :class:`pyg_wsss.distributed.LossModule` with a frozen backbone); the step's
    gradient is that of the one-process loss (G 12 summed over the ranks' nodes and divided
    by the global node count, :func:`pyg_wsss.distributed.ddp_train_step`), so N ranks
    follow one process's losses and weights up to float rounding (tested: 2 gloo ranks,
    rtol 1e-4) when nothing else is random. What cannot match: graph dropout masks (drawn
    by :class:`~pyg_wsss.nn.graph_dropout.GraphDropout` from each rank's global torch RNG
    for its own nodes; use ``graph_dropout=False`` for an exact match) and BatchNorm batch
    statistics of a trained backbone (each rank normalises over its own images: use
    ``freeze_bn``, a frozen backbone (``backbone_lr=0``) or ``sync_batchnorm`` on GPUs).
    Groups are whole graphs (no edge crosses two groups), so a group's output does not
    depend on the split. Use ``groups_per_step`` >= the number of ranks (a rank without a
    group in a step runs a zero-weighted forward pass). The accumulator is merged over the
    ranks at the end (element-wise maximum, as one process's) and rank 0's buffers are
    copied to every rank; the progress bar is rank 0's.

    Args:
        model: The :class:`GroupGNN` (trained in place).
        samples: Sample dicts with ``image`` and ``tags``.
        config: The settings, a :class:`GroupTrainConfig` (default: its defaults).
        device: Where to train (default: the model's device).
        progress: Show a progress bar over the epochs.
        distributed: ``None`` (auto), ``True`` (the data-parallel path, also on one rank) or
            ``False`` (every rank trains alone on all groups, the one-process result).
        history: A list that receives the loss of every step (the global mean when
            data-parallel).
        **overrides: The former keyword form: any :class:`GroupTrainConfig` field,
            overriding ``config`` (an unknown name is a ``TypeError`` listing the fields).

    Returns:
        ``(model in eval mode, accumulator or None)``.
    """
    from .. import distributed as D

    if not isinstance(model, GroupGNN):
        raise TypeError(f"'model' must be a GroupGNN, got {type(model).__name__}")
    cfg = resolve_config(config, GroupTrainConfig, overrides,
                         "train_group_wsss(model, samples, config)")
    cfg.check()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    images, tags = stack_images(samples, cfg.image_size)
    if tags.size(1) != model.num_classes:
        raise ValueError(f"samples have {tags.size(1)} classes, the model {model.num_classes}")
    parallel = D.data_parallel(distributed)
    gen = torch.Generator().manual_seed(cfg.seed)
    if parallel and cfg.sync_batchnorm:
        model.backbone = D.convert_sync_batchnorm(model.backbone, device)
    run = _start_group_run(model, cfg, images, tags, gen, device, history)
    if parallel:
        _train_group_parallel(run, progress and D.is_main())
    else:
        _train_group_serial(run, progress)
    model.eval()
    return model, run.acc


def _start_group_run(
    model: GroupGNN, cfg: GroupTrainConfig, images: Tensor, tags: Tensor,
    gen: torch.Generator, device: torch.device, history: Optional[list],
) -> _GroupRun:
    """Model in training mode (backbone frozen / BatchNorm in eval mode as configured),
    optimiser, schedule, group sampler, accumulator and the frozen backbone's features."""
    from ..graphs import GreedyGroupSampler

    model.to(device).train()
    if cfg.frozen:
        for p in model.backbone.parameters():
            p.requires_grad_(False)
        model.backbone.eval()
    if cfg.freeze_bn:
        _eval_batchnorm(model)
    groups_cfg = model.parameter_groups(cfg.lr, None if cfg.frozen else cfg.backbone_lr)
    opt = torch.optim.SGD(groups_cfg, lr=cfg.lr, momentum=cfg.momentum,
                          nesterov=cfg.momentum > 0, weight_decay=cfg.weight_decay)
    milestones = cfg.milestones
    if milestones is None:
        milestones = sorted({max(1, round(cfg.epochs / 3)), max(1, round(2 * cfg.epochs / 3))})
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(milestones), gamma=0.1)
    group_sampler = GreedyGroupSampler(
        tags, cfg.group_size, strategy=cfg.sampler, shuffle=True, seed=cfg.seed, empty="skip"
    )
    acc = OnlineCAMAccumulator() if cfg.accumulate_cams else None
    loops = _self_loops(model)
    cache = _feature_cache(model, images, cfg.flip, device) if cfg.frozen else None
    return _GroupRun(model, cfg, opt, sched, group_sampler, images, tags, cache, loops, gen,
                     device, acc, history)


@torch.no_grad()
def _feature_cache(model: GroupGNN, images: Tensor, flip: bool,
                   device: torch.device) -> list[Tensor]:
    """A frozen backbone's features of every image (and of the flipped images with
    ``flip``), computed once in chunks of 16."""
    cache = []
    for flipped in (False, True) if flip else (False,):
        fs = []
        for s in range(0, images.size(0), 16):
            x = images[s : s + 16].to(device)
            fs.append(model.backbone_features(x.flip(-1) if flipped else x))
        cache.append(torch.cat(fs))
    return cache


def _eval_batchnorm(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def _epoch_steps(run: _GroupRun, epoch: int) -> list[list[Sequence[int]]]:
    """The groups of every step of ``epoch`` (the sampler's draw for that epoch)."""
    run.group_sampler.set_epoch(epoch)
    groups = list(run.group_sampler)
    n = run.cfg.groups_per_step
    return [groups[start : start + n] for start in range(0, len(groups), n)]


def _step_inputs(run: _GroupRun, nodes: Tensor, f: Optional[Tensor]) -> Tensor:
    """The model input of a step's nodes on the device, flipped where ``f``: the cached
    backbone features (frozen backbone) or the images."""
    if run.cache is not None:
        x = run.cache[0][nodes.to(run.device)]
        if f is not None:
            fd = f.to(run.device)
            x = torch.where(fd[:, None, None, None], run.cache[1][nodes.to(run.device)], x)
        return x
    x = run.images[nodes]
    if f is not None:
        x = torch.where(f[:, None, None, None], x.flip(-1), x)
    return x.to(run.device)


def _after_step(
    run: _GroupRun, epoch: int, loss: Optional[float], out: Any, part: Sequence[Sequence[int]],
    nodes: Tensor, f: Optional[Tensor], y: Tensor,
) -> None:
    """Record the loss, keep a frozen backbone in eval mode and (from the second epoch on)
    feed the anchors' self-ensembled CAMs of ``out`` (``None``: no group here) to the
    accumulator."""
    if run.history is not None:
        run.history.append(loss)
    if run.cfg.frozen:
        run.model.backbone.eval()
    epochs = run.cfg.epochs
    if run.acc is None or out is None or epoch < min(1, epochs - 1):
        return
    anchors = torch.tensor([0] + [len(g) for g in part[:-1]]).cumsum(0)
    cam = (out.cam + out.cam_mid).detach()[anchors] / 2
    if f is not None:
        cam = torch.where(f[anchors].to(run.device)[:, None, None, None], cam.flip(-1), cam)
    run.acc.update(
        [int(nodes[a]) for a in anchors], cam, y[anchors],
        torch.sigmoid(out.logits.detach()[anchors]), force=epoch == epochs - 1,
    )


def _train_group_serial(run: _GroupRun, progress: bool) -> None:
    """The one-process loop of :func:`train_group_wsss`."""
    model, cfg = run.model, run.cfg
    for epoch in _progress(range(cfg.epochs), "Group-WSSS epochs", progress):
        for chunk in _epoch_steps(run, epoch):
            nodes, edge_index = group_batch(chunk, run.tags, run.loops)
            f = torch.rand(nodes.numel(), generator=run.gen) < 0.5 if cfg.flip else None
            y, edge_index = run.tags[nodes].to(run.device), edge_index.to(run.device)
            x = _step_inputs(run, nodes, f)
            if run.cache is not None:
                out = model.forward_features(x, edge_index)
            else:
                out = model(x, edge_index)
            loss = group_wsss_loss(out.logits, out.logits_mid, y, cfg.lambda_mid)
            run.opt.zero_grad(set_to_none=True)
            loss.backward()
            run.opt.step()
            value = float(loss.detach()) if run.history is not None else None
            _after_step(run, epoch, value, out, chunk, nodes, f, y)
        run.sched.step()


def _rank_part(
    run: _GroupRun, chunk: Sequence[Sequence[int]], rank: int, world: int
) -> tuple[list[Sequence[int]], Optional[Tensor], bool]:
    """This rank's groups of a step (``rank, rank + world, ...``; group 0, to be
    zero-weighted, when there is none), their part of the one-process flip draw over all
    the step's nodes, and whether the rank has a group."""
    sizes = [len(g) for g in chunk]
    f_all = torch.rand(sum(sizes), generator=run.gen) < 0.5 if run.cfg.flip else None
    mine = list(range(rank, len(chunk), world))
    sel = mine or [0]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    pos = torch.cat([torch.arange(int(offsets[j]), int(offsets[j + 1])) for j in sel])
    f = f_all[pos] if f_all is not None else None
    return [chunk[j] for j in sel], f, bool(mine)


def _train_group_parallel(run: _GroupRun, progress: bool) -> None:
    """The data-parallel loop of :func:`train_group_wsss`: the one-process draws (groups,
    flips), this rank's groups of every step, DDP, the one-process gradient."""
    from .. import distributed as D

    rank, world = D.rank(), D.world_size()
    model, cfg = run.model, run.cfg
    # find_unused_parameters: a backbone may hold layers its features do not use
    net = D.wrap_model(
        D.LossModule(model, "forward_features") if run.cache is not None else model,
        run.device, find_unused_parameters=True,
    )
    for epoch in _progress(range(cfg.epochs), "Group-WSSS epochs", progress):
        for chunk in _epoch_steps(run, epoch):
            part, f, mine = _rank_part(run, chunk, rank, world)
            weight = 1.0 if mine else 0.0  # no group here: a zero-weighted forward pass
            nodes, edge_index = group_batch(part, run.tags, run.loops)
            y, edge_index = run.tags[nodes].to(run.device), edge_index.to(run.device)
            x = _step_inputs(run, nodes, f)
            box: dict[str, Any] = {}

            def loss_fn(m: nn.Module, x: Tensor = x, ei: Tensor = edge_index, y: Tensor = y,
                        weight: float = weight):
                out = m(x, ei)
                box["out"] = out
                loss = group_wsss_loss(out.logits, out.logits_mid, y, cfg.lambda_mid)
                n = y.numel() if weight else 0
                return loss * (y.numel() * weight), n

            loss = D.ddp_train_step(net, run.opt, loss_fn)
            _after_step(run, epoch, loss, box.get("out") if mine else None, part, nodes, f, y)
        run.sched.step()
    D.sync_buffers(model)
    if run.acc is not None:  # one process's maps: the element-wise maximum over the ranks
        merged: dict[Any, Tensor] = {}
        for maps in D.all_gather_object(run.acc.maps):
            for key, m in maps.items():
                merged[key] = torch.maximum(merged[key], m) if key in merged else m
        run.acc.maps = {k: merged[k] for k in sorted(merged)}


@torch.no_grad()
def group_cams(
    model: GroupGNN,
    samples: Sequence[dict[str, Any]],
    pool: Sequence[dict[str, Any]] = (),
    group_size: int = 4,
    groups_per_step: int = 4,
    image_size: Optional[int | tuple[int, int]] = None,
    ensemble: str = "normalized",
    device: Optional[torch.device | str] = None,
    progress: bool = False,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
) -> dict[str, list[Tensor]]:
    """CAMs of every sample from both readouts and their self-ensemble.

    Each sample is the anchor of a group completed greedily (paper strategy) from
    ``samples`` + ``pool`` (images sharing the most classes); the anchor's maps are
    upsampled to its image size, ReLU'd, max-normalised and zero for absent tags.
    ``scales`` / ``flip``: multi-scale + flip inference (the whole group is resized / flipped
    together; the ReLU'd raw maps are summed, then normalised), as
    :func:`pyg_wsss.pseudo.classifier_cams` does for single-image classifiers.

    Returns:
        ``{"intermediate", "graph", "ensemble"}`` -> list of float32 ``[C, H, W]`` CAMs.
    """
    from ..graphs import GreedyGroupSampler

    check_positive(group_size, "group_size", integer=True)
    check_positive(groups_per_step, "groups_per_step", integer=True)
    if len(samples) == 0:
        return {k: [] for k in READOUTS}
    device = torch.device(device) if device is not None else next(model.parameters()).device
    everything = list(samples) + list(pool)
    sizes = [tuple(np.asarray(s["image"]).shape[:2]) for s in samples]
    all_sizes = {tuple(np.asarray(s["image"]).shape[:2]) for s in everything}
    if image_size is None and len(all_sizes) > 1:
        image_size = sizes[0]
    images, tags = stack_images(everything, image_size)
    model.to(device).eval()
    n = len(samples)
    groups: dict[int, list[int]] = {}
    if (tags[:n] > 0).any():
        gs = GreedyGroupSampler(tags, group_size, strategy="paper", shuffle=False, empty="skip")
        for g in gs:
            if g[0] < n:
                groups[g[0]] = g
    out: dict[str, list[Tensor]] = {k: [] for k in READOUTS}
    results: dict[int, dict[str, Tensor]] = {}
    anchors = sorted(groups)
    loops = _self_loops(model)
    steps = range(0, len(anchors), groups_per_step)
    for start in _progress(steps, "Group-WSSS CAMs", progress):
        chunk = [groups[a] for a in anchors[start : start + groups_per_step]]
        nodes, edge_index = group_batch(chunk, tags, loops)
        pos = torch.tensor([0] + [len(g) for g in chunk[:-1]]).cumsum(0)
        x, ei, t = images[nodes].to(device), edge_index.to(device), tags[nodes].to(device)
        if tuple(scales) == (1.0,) and not flip:
            cams = model.cams(x, ei, t, ensemble=ensemble)
        else:
            cams = _multiscale_group_cams(model, x, ei, t, scales, flip, ensemble)
        for j, a in enumerate(anchors[start : start + groups_per_step]):
            results[a] = {k: cams[k][pos[j]] for k in READOUTS}
    for i in range(n):
        c = tags.size(1)
        h, w = sizes[i]
        for k in READOUTS:
            if i in results:
                m = results[i][k][None]
                m = F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)[0]
                m = m / m.flatten(1).amax(1).clamp_min(1e-8)[:, None, None]
                m = m * (tags[i] > 0).to(m.device)[:, None, None].to(m.dtype)
            else:
                m = torch.zeros(c, h, w)
            out[k].append(m.float().cpu())
    return out


def _multiscale_group_cams(
    model: GroupGNN, x: Tensor, edge_index: Tensor, tags: Tensor, scales: Sequence[float],
    flip: bool, ensemble: str,
) -> dict[str, Tensor]:
    """Multi-scale + flip CAMs of a group: the ReLU'd raw maps of each pass are upsampled to
    the input size and summed, then normalised once (as :func:`pyg_wsss.pseudo.multiscale_cam`
    and :func:`~pyg_wsss.pseudo.classifier_cams` do for single images)."""
    from ..nn.models.group_gnn import normalize_cam_maps

    size = tuple(x.shape[-2:])
    raw: dict[str, Tensor] = {}
    for sc in scales:
        xs = x if sc == 1 else F.interpolate(
            x, scale_factor=float(sc), mode="bilinear", align_corners=False
        )
        for flipped in (False, True) if flip else (False,):
            out = model(xs.flip(-1) if flipped else xs, edge_index)
            for k, v in (("intermediate", out.cam_mid), ("graph", out.cam)):
                v = F.interpolate(v.clamp_min(0), size=size, mode="bilinear",
                                  align_corners=False)
                v = v.flip(-1) if flipped else v
                raw[k] = v if k not in raw else raw[k] + v
    norm = {k: normalize_cam_maps(v, tags) for k, v in raw.items()}
    if ensemble == "normalized":
        norm["ensemble"] = (norm["intermediate"] + norm["graph"]) / 2
    else:
        norm["ensemble"] = normalize_cam_maps((raw["intermediate"] + raw["graph"]) / 2, tags)
    return norm


def cams_to_labels(
    cams: Tensor | np.ndarray, tags: Any, bg_threshold: float = 0.2
) -> np.ndarray:
    """CAM pseudo-label: argmax over ``[bg_threshold, CAMs of present classes]``; ``uint8
    [H, W]`` class ids (0 = background), fully labelled."""
    c = torch.as_tensor(np.asarray(cams), dtype=torch.float32)
    if c.dim() != 3:
        raise ValueError(f"'cams' must have shape [C, H, W], got {tuple(c.shape)}")
    check_positive(bg_threshold, "bg_threshold", strict=False)
    t = torch.as_tensor(np.asarray(tags), dtype=torch.float32).reshape(-1)
    if t.numel() != c.size(0):
        raise ValueError(f"'tags' has {t.numel()} classes, 'cams' {c.size(0)}")
    c = c.clamp_min(0) * (t > 0)[:, None, None]
    bg = torch.full_like(c[:1], float(bg_threshold))
    return torch.cat([bg, c]).argmax(0).numpy().astype(np.uint8)


def pseudo_labels(
    samples: Sequence[dict[str, Any]],
    cams: Sequence[Tensor],
    bg_threshold: float = 0.2,
    crf: bool = True,
    preset: str = "deeplab",
    n_iter: int = 10,
) -> list[np.ndarray]:
    """Pseudo-labels: CAM + constant background score ``bg_threshold`` (helper
    :func:`pyg_wsss.pseudo.cam_scores`), refined by a dense CRF
    (:func:`pyg_wsss.pseudo.dense_crf`, restricted to background + the image's classes)
    when ``crf``. ``uint8 [H, W]`` class ids."""
    if len(samples) != len(cams):
        raise ValueError(f"got {len(samples)} samples and {len(cams)} CAMs")
    out = []
    for s, cam in zip(samples, cams):
        if not crf:
            out.append(cams_to_labels(cam, s["tags"], bg_threshold))
            continue
        from ..pseudo import cam_scores, dense_crf

        tags = np.asarray(s["tags"])
        scores = cam_scores(cam, tags, bg_threshold=bg_threshold, normalize=None)
        keep = [0] + (np.flatnonzero(tags > 0) + 1).tolist()
        probs = dense_crf(s["image"], scores, preset=preset, n_iter=n_iter, labels=keep)
        out.append(np.asarray(torch.as_tensor(probs).argmax(0).cpu().numpy(), dtype=np.uint8))
    return out


#: Multi-scale + flip CAM inference of the demo (the plain classifier's CAMs use the same).
DEMO_SCALES = (1.0, 0.5, 1.5, 2.0)


def context_group_cams(
    ctx: DemoContext,
    graph_dropout: bool = True,
    group_size: int = 4,
    epochs: Optional[int] = None,
    scales: Sequence[float] = DEMO_SCALES,
    flip: bool = True,
    init_from_classifier: bool = True,
    head_convs: Optional[int] = None,
    lr: float = 1e-2,
) -> dict[str, list[Tensor]]:
    """Train a Group-WSSS classifier (paper variant) on ``ctx.train_samples`` +
    ``ctx.samples`` (tags only) and return :func:`group_cams` of ``ctx.samples``.

    The backbone starts from the context's trained CAM classifier's backbone when there is
    one (``ctx.extras["classifier"]``, standing in for the paper's ImageNet initialisation)
    and is then frozen (``ctx.fast``; its features are computed once) or fine-tuned at 1/10
    of the GNN learning rate; with ``init_from_classifier`` both readouts' 1x1 classifiers
    start from that classifier's weights when the shapes allow (the single-image head that
    Group-WSSS extends; then ``head_convs=0``: the readouts act on the classifier's own
    features, so the intermediate readout starts as the plain classifier). New layers train at
    the paper's ``lr`` = 1e-2. ``graph_dropout=False`` is G Table 3's "w/o dropout"."""
    from ..nn.models import SmallCNN

    torch.manual_seed(ctx.seed)
    clf = ctx.extras.get("classifier")
    backbone = getattr(clf, "backbone", None)
    backbone = copy.deepcopy(backbone) if backbone is not None else SmallCNN()
    c = ctx.num_classes - 1
    if head_convs is None:  # the classifier's own features when it initialises the readouts
        head_convs = 0 if (init_from_classifier and clf is not None) else 1
    model = build_group_model(
        c, backbone, hidden_channels=64 if ctx.fast and head_convs else None,
        head_convs=head_convs, graph_dropout=graph_dropout,
    )
    if init_from_classifier and clf is not None:
        _init_readouts(model, clf)
    train = list(ctx.train_samples) + list(ctx.samples)
    pretrained = clf is not None
    # fast: keep the trained backbone frozen (its features are cached); else fine-tune it
    backbone_lr = (0.0 if ctx.fast else 1e-3) if pretrained else 1e-2
    if epochs is None:
        epochs = 8 if ctx.fast else 15
    cfg = GroupTrainConfig(group_size=group_size, epochs=epochs, lr=lr, backbone_lr=backbone_lr,
                           groups_per_step=4, seed=ctx.seed)
    model, _ = train_group_wsss(model, train, cfg, device=ctx.device, progress=False)
    return group_cams(
        model, ctx.samples, ctx.train_samples, group_size=group_size, device=ctx.device,
        scales=scales, flip=flip,
    )


def _init_readouts(model: GroupGNN, clf: nn.Module) -> None:
    """Copy a single-image CAM classifier's 1x1 classifier into both readouts (when the head
    keeps the backbone's width, i.e. ``hidden_channels`` equals its channels)."""
    w = getattr(getattr(clf, "classifier", None), "weight", None)
    for name in ("classifier_mid", "classifier"):
        conv = getattr(model, name, None)
        if conv is None or w is None:
            continue
        weight = w.detach().reshape(w.size(0), -1, 1, 1)
        if conv.weight.shape == weight.shape:
            conv.weight.data.copy_(weight)


@register_demo("Group-WSSS")
def demo(ctx: DemoContext) -> dict[str, list[np.ndarray]]:
    """Group-WSSS (paper variant, K = 4, graph dropout) on ``ctx.samples``
    (:func:`context_group_cams`, CAMs at 4 scales + flip like the plain CAMs).

    Rows: ``"Group-WSSS CAM"`` (self-ensembled CAM, background threshold 0.2),
    ``"Group-WSSS intermediate-readout CAM"``, ``"Group-WSSS graph-readout CAM"`` and
    ``"Group-WSSS + CRF"`` (ensemble CAM + dense CRF). Returns ``{}`` on contexts without
    training images (the single real VOC photo): a group classifier cannot be trained there.
    """
    if not ctx.train_samples:
        return {}
    cams = context_group_cams(ctx)
    ens = cams["ensemble"]
    return {
        "Group-WSSS CAM": pseudo_labels(ctx.samples, ens, crf=False),
        "Group-WSSS intermediate-readout CAM": pseudo_labels(
            ctx.samples, cams["intermediate"], crf=False
        ),
        "Group-WSSS graph-readout CAM": pseudo_labels(ctx.samples, cams["graph"], crf=False),
        "Group-WSSS + CRF": pseudo_labels(ctx.samples, ens, crf=True),
    }
