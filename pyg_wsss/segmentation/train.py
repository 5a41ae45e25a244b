"""Stage-2 training on pseudo-labels: poly lr, ignore 255, crop/flip, checkpoint and resume.

The settings are one :class:`SegmentationTrainConfig`, shared with the distributed trainer
(:func:`pyg_wsss.segmentation.distributed.train_segmentation_distributed`); the former
keyword arguments are still accepted.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyg_wsss._checks import check_finite, check_positive, check_tensor, value_checks
from pyg_wsss.segmentation.data import PseudoLabelDataset

__all__ = ["train_segmentation", "SegmentationTrainConfig", "poly_lr", "segmentation_loss"]


def poly_lr(base_lr: float, iteration: int, max_iterations: int, power: float = 0.9) -> float:
    """DeepLab's poly schedule ``base_lr * (1 - iteration / max_iterations) ** power``."""
    check_positive(base_lr, "base_lr", strict=False)
    check_positive(iteration, "iteration", strict=False, integer=True)
    check_positive(max_iterations, "max_iterations", integer=True)
    check_positive(power, "power", strict=False)
    return base_lr * max(0.0, 1.0 - iteration / max_iterations) ** power


def segmentation_loss(logits: Tensor, labels: Tensor, ignore_index: int = 255) -> Tensor:
    """Pixel cross-entropy averaged over the labelled pixels; 0 (not NaN) when none is labelled.

    ``logits`` ``[B, K, H, W]`` float, ``labels`` ``[B, H, W]`` integer class ids in
    ``[0, K)`` or ``ignore_index`` (int32 accepted). NaN logits and out-of-range labels are
    value checks (they follow :func:`pyg_wsss.set_checks`)."""
    check_tensor(logits, "logits", ndim=4, floating=True)
    check_tensor(labels, "labels", ndim=3, floating=False)
    if labels.dtype == torch.bool:
        raise TypeError("'labels' must be an integer tensor, got torch.bool")
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"'ignore_index' must be an int, got {ignore_index!r}")
    if labels.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(
            f"'labels' has shape {tuple(labels.shape)}, expected {tuple(logits.shape[:1])} + "
            f"{tuple(logits.shape[2:])} (the logits' [B, H, W])"
        )
    check_finite(logits, "logits", nan_only=True)
    if labels.numel() and value_checks(labels):
        bad = (labels != ignore_index) & ((labels < 0) | (labels >= logits.size(1)))
        if bool(bad.any()):
            raise ValueError(
                f"'labels' has labels outside [0, {logits.size(1) - 1}] (and not {ignore_index}): "
                f"{torch.unique(labels[bad])[:10].tolist()}"
            )
    labels = labels.long()
    loss = F.cross_entropy(logits, labels, ignore_index=ignore_index, reduction="sum")
    count = (labels != ignore_index).sum().clamp_min(1)
    return loss / count


def _device(device: object) -> torch.device:
    try:
        return torch.device(device)  # type: ignore[arg-type, call-overload]
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"'device' is not a torch device: {device!r} ({err})") from None


def _batch(
    dataset: PseudoLabelDataset, iteration: int, batch_size: int, seed: int
) -> tuple[Tensor, Tensor]:
    """The batch of ``iteration``: a deterministic function of (seed, iteration), so a resumed
    run continues exactly as an uninterrupted one."""
    n = len(dataset)
    start = iteration * batch_size
    idx = []
    for k in range(start, start + batch_size):
        epoch, pos = divmod(k, n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003 + epoch))
        idx.append(int(perm[pos]))
    gen = torch.Generator().manual_seed(seed * 7919 + iteration + 1)
    pairs = [dataset.sample(i, gen) for i in idx]
    shapes = {tuple(lab.shape) for _, lab in pairs}
    if len(shapes) > 1:
        raise ValueError(
            f"images of different sizes {sorted(shapes)} in one batch: set 'crop_size'"
        )
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def _save(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, iteration: int, meta: dict
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "iteration": iteration,
            "meta": meta,
        },
        tmp,
    )
    os.replace(tmp, path)


@dataclass
class SegmentationTrainConfig:
    """The settings of stage-2 training, shared by :func:`train_segmentation` and
    :func:`~pyg_wsss.segmentation.distributed.train_segmentation_distributed` (passed whole).

    Fields:
        iterations: Total iterations (DeepLab-v2 on VOC: 20k, batch 10, crop 321).
        batch_size: Images per iteration (under DDP: the *global* batch).
        lr: Base learning rate (DeepLab-v2: 2.5e-4 with a pretrained backbone).
        momentum, weight_decay, poly_power: SGD and schedule (0.9, 5e-4, 0.9).
        head_lr_mult, grm_lr_mult: Learning-rate multipliers of the ASPP/classifier and the
            GRM parameter groups (when the model has ``param_groups``; backbone 1x).
        freeze_bn: Keep BatchNorm layers in eval mode (DeepLab-v2 freezes them).
        sync_batchnorm: Distributed only: convert BatchNorm layers to
            :class:`~torch.nn.SyncBatchNorm` when several ranks run (GPUs only).
        checkpoint: File to save to and resume from (``None``: no checkpointing).
        checkpoint_every: Save period in iterations (and at the end).
        resume: Continue from ``checkpoint`` when it exists.
        device: Where to train (distributed: also ``"auto"``; ``"cuda"`` = the local rank's
            GPU).
        seed: Seed of batches, augmentation and dropout.
        progress: Show a tqdm bar.
        meta: Extra entries stored in the checkpoint (e.g. how to rebuild the model).
    """

    iterations: int = 2000
    batch_size: int = 8
    lr: float = 2.5e-4
    momentum: float = 0.9
    weight_decay: float = 5e-4
    poly_power: float = 0.9
    head_lr_mult: float = 10.0
    grm_lr_mult: float = 1.0
    freeze_bn: bool = False
    sync_batchnorm: bool = False
    checkpoint: str | os.PathLike | None = None
    checkpoint_every: int = 500
    resume: bool = True
    device: str | torch.device = "cpu"
    seed: int = 0
    progress: bool = False
    meta: dict[str, Any] | None = None

    def replace(self, **changes: Any) -> "SegmentationTrainConfig":
        """A copy with some fields changed (an unknown name is a ``TypeError`` naming it)."""
        fields = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - fields)
        if unknown:
            raise TypeError(f"unexpected keyword argument(s) {unknown}; the settings are the "
                            f"SegmentationTrainConfig fields {sorted(fields)}")
        return dataclasses.replace(self, **changes) if changes else self

    def check(self) -> None:
        """Validate the fields (each error names its field; the device is checked where it
        is resolved)."""
        check_positive(self.iterations, "iterations", integer=True)
        check_positive(self.batch_size, "batch_size", integer=True)
        check_positive(self.lr, "lr")
        check_positive(self.checkpoint_every, "checkpoint_every", integer=True)
        for name in ("momentum", "weight_decay", "poly_power", "head_lr_mult", "grm_lr_mult"):
            check_positive(getattr(self, name), name, strict=False)
        check_positive(self.seed, "seed", strict=False, integer=True)
        if self.checkpoint is not None and not isinstance(self.checkpoint, (str, os.PathLike)):
            raise TypeError(
                f"'checkpoint' must be a path or None, got {type(self.checkpoint).__name__}")

    def settings(self) -> dict[str, Any]:
        """What a checkpoint must agree with to be resumed: iterations, batch size, seed."""
        return {"iterations": self.iterations, "batch_size": self.batch_size,
                "seed": self.seed}


def train_config(config: SegmentationTrainConfig | None, options: dict[str, Any],
                 caller: str) -> SegmentationTrainConfig:
    """``config`` (default :class:`SegmentationTrainConfig`) with the keyword ``options``
    applied: the former keyword form of ``caller``."""
    if config is None:
        config = SegmentationTrainConfig()
    elif not isinstance(config, SegmentationTrainConfig):
        raise TypeError(
            f"{caller}(model, dataset, config): the 3rd argument is a SegmentationTrainConfig, "
            f"got {type(config).__name__} {config!r}; give the settings by keyword "
            f"(iterations=..., batch_size=..., ...) or as SegmentationTrainConfig(...)")
    return config.replace(**options)


def check_model_and_dataset(model: Any, dataset: Any) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"'model' must be an nn.Module, got {type(model).__name__}")
    if not isinstance(dataset, PseudoLabelDataset):
        raise TypeError("'dataset' must be a PseudoLabelDataset")


def sgd_optimizer(model: nn.Module, cfg: SegmentationTrainConfig) -> torch.optim.SGD:
    """SGD over the model's DeepLab ``param_groups`` (lr multipliers) or all its trainable
    parameters."""
    lr = cfg.lr
    groups = (
        model.param_groups(lr, cfg.head_lr_mult, cfg.grm_lr_mult)  # type: ignore[operator]
        if hasattr(model, "param_groups")
        else [
            {"params": [p for p in model.parameters() if p.requires_grad], "lr": lr, "lr_mult": 1.0}
        ]
    )
    return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def set_poly_lr(optimizer: torch.optim.Optimizer, cfg: SegmentationTrainConfig,
                iteration: int) -> None:
    """Every group's lr for ``iteration``: :func:`poly_lr` times the group's ``lr_mult``."""
    for group in optimizer.param_groups:
        group["lr"] = (poly_lr(cfg.lr, iteration, cfg.iterations, cfg.poly_power)
                       * group.get("lr_mult", 1.0))


def start_training(model: nn.Module, freeze_bn: bool) -> None:
    """``model.train()``, with the BatchNorm layers back in eval mode when ``freeze_bn``."""
    model.train()
    if freeze_bn:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


def progress_bar(cfg: SegmentationTrainConfig, start: int, desc: str) -> Any:
    """A tqdm bar over the iterations (``None`` without ``cfg.progress``)."""
    if not cfg.progress:
        return None
    from pyg_wsss._progress import progress

    return progress(total=cfg.iterations, enabled=True, desc=desc, initial=start)


def _resume(path: Path | None, cfg: SegmentationTrainConfig, model: nn.Module,
            optimizer: torch.optim.Optimizer, device: torch.device) -> int:
    """Load ``path`` into the model and optimizer when resuming; the iteration to start at."""
    if path is None or not cfg.resume or not path.is_file():
        return 0
    state = torch.load(path, map_location=device, weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    return int(state["iteration"])


def _step(model: nn.Module, optimizer: torch.optim.Optimizer, images: Tensor,
          labels: Tensor, it: int) -> Tensor:
    """One SGD step on :func:`segmentation_loss` (logits resized to the labels)."""
    logits = model(images)
    if logits.shape[-2:] != labels.shape[-2:]:
        logits = F.interpolate(
            logits, size=labels.shape[-2:], mode="bilinear", align_corners=False
        )
    loss = segmentation_loss(logits, labels)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"stage-2 loss became {loss.item()} at iteration {it}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def train_segmentation(
    model: nn.Module,
    dataset: PseudoLabelDataset,
    config: SegmentationTrainConfig | None = None,
    *,
    history: list[float] | None = None,
    **options: Any,
) -> nn.Module:
    """Train a stage-2 network (e.g. :class:`~pyg_wsss.segmentation.DeepLab`) on pseudo-labels.

    SGD with momentum, poly learning rate, cross-entropy ignoring 255; the DeepLab lr
    multipliers (backbone 1x, ASPP/classifier ``head_lr_mult``, GRM ``grm_lr_mult``) when the
    model has ``param_groups``. Batches and augmentation are a deterministic function of
    ``seed`` and the iteration, so resuming from ``checkpoint`` (model, optimizer and
    iteration are saved every ``checkpoint_every`` iterations and at the end) gives the same
    weights as an uninterrupted run.

    Args:
        model: Maps ``[B, 3, H, W]`` in ``[0, 1]`` to logits ``[B, K, H, W]``.
        dataset: A :class:`~pyg_wsss.segmentation.PseudoLabelDataset`.
        config: The settings, a :class:`SegmentationTrainConfig` (``sync_batchnorm`` is for
            the distributed trainer only).
        history: If given, the per-iteration losses are appended to it.
        **options: The former keyword form, still accepted: any
            :class:`SegmentationTrainConfig` field (``iterations=300, lr=0.1``, ...),
            overriding ``config``.

    Returns:
        The trained model (in eval mode).
    """
    check_model_and_dataset(model, dataset)
    cfg = train_config(config, options, "train_segmentation")
    cfg.check()
    if cfg.sync_batchnorm:
        raise ValueError("'sync_batchnorm' needs several ranks: use "
                         "pyg_wsss.segmentation.distributed.train_segmentation_distributed")
    device = _device(cfg.device)
    model.to(device)
    optimizer = sgd_optimizer(model, cfg)
    path = Path(cfg.checkpoint) if cfg.checkpoint is not None else None
    start = _resume(path, cfg, model, optimizer, device)
    meta = {**(cfg.meta or {}), **cfg.settings()}
    bar = progress_bar(cfg, start, "stage 2")
    start_training(model, cfg.freeze_bn)
    for it in range(start, cfg.iterations):
        set_poly_lr(optimizer, cfg, it)
        images, labels = _batch(dataset, it, cfg.batch_size, cfg.seed)
        images, labels = images.to(device), labels.to(device)
        torch.manual_seed(cfg.seed * 31 + it)  # dropout etc.
        loss = _step(model, optimizer, images, labels, it)
        if history is not None:
            history.append(float(loss.detach()))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        if path is not None and ((it + 1) % cfg.checkpoint_every == 0
                                 or it + 1 == cfg.iterations):
            _save(path, model, optimizer, it + 1, meta)
    if bar is not None:
        bar.close()
    return model.eval()
