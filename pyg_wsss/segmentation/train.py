"""Stage-2 training on pseudo-labels: poly lr, ignore 255, crop/flip, checkpoint and resume."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyg_wsss._checks import check_finite, check_positive, check_tensor, value_checks
from pyg_wsss.segmentation.data import PseudoLabelDataset

__all__ = ["train_segmentation", "poly_lr", "segmentation_loss"]


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
        return torch.device(device)  # type: ignore[arg-type]
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


def train_segmentation(
    model: nn.Module,
    dataset: PseudoLabelDataset,
    iterations: int = 2000,
    batch_size: int = 8,
    lr: float = 2.5e-4,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    poly_power: float = 0.9,
    head_lr_mult: float = 10.0,
    grm_lr_mult: float = 1.0,
    freeze_bn: bool = False,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 500,
    resume: bool = True,
    device: str | torch.device = "cpu",
    seed: int = 0,
    progress: bool = False,
    history: list[float] | None = None,
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
        iterations: Total iterations (DeepLab-v2 on VOC: 20k, batch 10, crop 321).
        batch_size: Images per iteration.
        lr: Base learning rate (DeepLab-v2: 2.5e-4 with a pretrained backbone).
        momentum, weight_decay, poly_power: SGD and schedule (0.9, 5e-4, 0.9).
        head_lr_mult, grm_lr_mult: Learning-rate multipliers (see above).
        freeze_bn: Keep BatchNorm layers in eval mode (DeepLab-v2 freezes them).
        checkpoint: File to save to and resume from (``None``: no checkpointing).
        checkpoint_every: Save period in iterations.
        resume: Continue from ``checkpoint`` when it exists.
        device: Where to train.
        seed: Seed of batches, augmentation and dropout.
        progress: Show a tqdm bar.
        history: If given, the per-iteration losses are appended to it.

    Returns:
        The trained model (in eval mode).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"'model' must be an nn.Module, got {type(model).__name__}")
    if not isinstance(dataset, PseudoLabelDataset):
        raise TypeError("'dataset' must be a PseudoLabelDataset")
    check_positive(iterations, "iterations", integer=True)
    check_positive(batch_size, "batch_size", integer=True)
    check_positive(lr, "lr")
    check_positive(checkpoint_every, "checkpoint_every", integer=True)
    for name, value in (("momentum", momentum), ("weight_decay", weight_decay),
                        ("poly_power", poly_power), ("head_lr_mult", head_lr_mult),
                        ("grm_lr_mult", grm_lr_mult)):
        check_positive(value, name, strict=False)
    check_positive(seed, "seed", strict=False, integer=True)
    if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"'checkpoint' must be a path or None, got {type(checkpoint).__name__}")
    device = _device(device)
    model.to(device)
    groups = (
        model.param_groups(lr, head_lr_mult, grm_lr_mult)
        if hasattr(model, "param_groups")
        else [
            {"params": [p for p in model.parameters() if p.requires_grad], "lr": lr, "lr_mult": 1.0}
        ]
    )
    optimizer = torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    start = 0
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and resume and path.is_file():
        state = torch.load(path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["iteration"])
    meta = {"iterations": iterations, "batch_size": batch_size, "seed": seed}

    bar = None
    if progress:
        from pyg_wsss._optional import require

        bar = require("tqdm.auto", "progress bars").tqdm(
            total=iterations, initial=start, desc="stage 2"
        )
    model.train()
    if freeze_bn:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
    for it in range(start, iterations):
        for group in optimizer.param_groups:
            group["lr"] = poly_lr(lr, it, iterations, poly_power) * group.get("lr_mult", 1.0)
        images, labels = _batch(dataset, it, batch_size, seed)
        images, labels = images.to(device), labels.to(device)
        torch.manual_seed(seed * 31 + it)  # dropout etc.
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
        if history is not None:
            history.append(float(loss.detach()))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        if path is not None and ((it + 1) % checkpoint_every == 0 or it + 1 == iterations):
            _save(path, model, optimizer, it + 1, meta)
    if bar is not None:
        bar.close()
    return model.eval()
