"""Stage-2 training and evaluation under DistributedDataParallel (torchrun), one process too.

:func:`train_segmentation_distributed` is :func:`~pyg_wsss.segmentation.train_segmentation`
(SGD, poly lr, DeepLab lr multipliers, cross-entropy ignoring 255) for any number of ranks:

* **Same global batch, same loss curve.** ``batch_size`` is the *global* batch; every rank
  takes ``batch_size / world`` samples of it through a
  :class:`~torch.utils.data.distributed.DistributedSampler` (seeded, re-shuffled each
  epoch), so the union over ranks is the batch one process takes. The loss is the mean
  over the global batch's labelled pixels (the pixel counts are all-reduced, see
  :func:`pyg_wsss.distributed.ddp_train_step`), and the augmentation of a sample is drawn
  from its position in the global stream. Hence N ranks follow one process's losses and
  weights up to float summation order (tested: rtol 1e-4 on CPU, 2 gloo ranks vs 1
  process) when the batch statistics do not depend on the split: BatchNorm frozen
  (``freeze_bn``) or synchronised (``sync_batchnorm``, GPUs), no dropout, and
  ``len(dataset)`` a multiple of the number of ranks (otherwise DistributedSampler repeats
  a few samples to even out the ranks).
* **Checkpoints** (model, optimizer, iteration, settings) are written by rank 0 only,
  atomically (temporary file + :func:`os.replace`). Every rank resumes from the same file,
  on any number of ranks: the batch of an iteration depends on the seed, the global batch
  size and the iteration only.
* **Evaluation** (:func:`evaluate_segmentation_distributed`) splits the images over the
  ranks and all-reduces the confusion matrices: the same numbers as one process.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyg_wsss import distributed as dist_utils
from pyg_wsss._checks import check_positive
from pyg_wsss.distributed import GlobalBatchSampler
from pyg_wsss.segmentation.data import PseudoLabelDataset
from pyg_wsss.segmentation.train import poly_lr

__all__ = ["train_segmentation_distributed", "evaluate_segmentation_distributed",
           "load_checkpoint", "save_checkpoint", "GlobalBatchSampler"]


def _local_batch(dataset: PseudoLabelDataset, items: list[tuple[int, int]],
                 seed: int) -> tuple[Tensor, Tensor]:
    pairs = [dataset.sample(i, torch.Generator().manual_seed(seed * 1_000_003 + g + 1))
             for i, g in items]
    shapes = {tuple(lab.shape) for _, lab in pairs}
    if len(shapes) > 1:
        raise ValueError(f"images of different sizes {sorted(shapes)} in one batch: set "
                         "'crop_size' on the dataset")
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def save_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer: Any,
                    iteration: int, meta: dict[str, Any]) -> None:
    """Write a checkpoint atomically from rank 0 (the other ranks return at once)."""
    if not dist_utils.is_main():
        return
    from pyg_wsss.pseudo.driver import atomic_write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save({"model": dist_utils.unwrap_model(model).state_dict(),
                "optimizer": optimizer.state_dict() if optimizer is not None else None,
                "iteration": int(iteration), "meta": dict(meta)}, buf)
    atomic_write(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike,
                    map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint of :func:`save_checkpoint` (``model``, ``optimizer``, ``iteration``,
    ``meta``), with a clear error when the file is not one."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # noqa: BLE001 - unpickling errors of every kind
        raise ValueError(f"{path}: not a readable checkpoint ({type(err).__name__}: "
                         f"{' '.join(str(err).split())[:200]})") from err
    if not isinstance(state, dict) or "model" not in state:
        raise ValueError(f"{path}: not a pyg_wsss checkpoint (no 'model' entry)")
    return state


def train_segmentation_distributed(
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
    sync_batchnorm: bool = False,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 500,
    resume: bool = True,
    device: str | torch.device = "cpu",
    seed: int = 0,
    progress: bool = False,
    history: list[float] | None = None,
    meta: dict[str, Any] | None = None,
) -> nn.Module:
    """Train a stage-2 network on pseudo-labels on every rank of the job (or one process).

    Call it on every rank after :func:`pyg_wsss.distributed.init_distributed` (or without a
    process group: one process). The settings are those of
    :func:`~pyg_wsss.segmentation.train_segmentation`; see the module docstring for what
    makes N ranks follow one process.

    Args:
        model: Maps ``[B, 3, H, W]`` in ``[0, 1]`` to logits ``[B, K, H, W]`` (the same
            initial weights are broadcast from rank 0).
        dataset: A :class:`~pyg_wsss.segmentation.PseudoLabelDataset` (every rank the same).
        iterations: Total iterations.
        batch_size: The *global* batch (a multiple of the number of ranks).
        freeze_bn: BatchNorm layers in eval mode (their statistics do not depend on the
            split over ranks).
        sync_batchnorm: Convert BatchNorm layers to :class:`~torch.nn.SyncBatchNorm` when
            several ranks run (GPUs only; torch has no CPU kernel for it).
        checkpoint: File saved by rank 0 every ``checkpoint_every`` iterations and at the
            end, and resumed from (``resume``) on any number of ranks.
        device: ``"cpu"``, ``"cuda"`` (= ``cuda:LOCAL_RANK``), ``"auto"``.
        seed: Seed of the sampler, the augmentation and dropout.
        history: If given, the global mean loss of every iteration is appended (the same
            on every rank).
        meta: Extra entries stored in the checkpoint (e.g. how to rebuild the model).

    Returns:
        The trained model (unwrapped from DDP, in eval mode).

    Raises:
        ValueError: a bad argument, or a checkpoint written with another batch size or seed.
        pyg_wsss.distributed.DistributedError: another rank died or timed out.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"'model' must be an nn.Module, got {type(model).__name__}")
    if not isinstance(dataset, PseudoLabelDataset):
        raise TypeError("'dataset' must be a PseudoLabelDataset")
    check_positive(iterations, "iterations", integer=True)
    check_positive(batch_size, "batch_size", integer=True)
    check_positive(lr, "lr")
    check_positive(checkpoint_every, "checkpoint_every", integer=True)
    world = dist_utils.world_size()
    sampler = GlobalBatchSampler(len(dataset), batch_size, seed)
    device = dist_utils.device_for_rank(device)

    if sync_batchnorm:
        model = dist_utils.convert_sync_batchnorm(model, device)
    path = Path(checkpoint) if checkpoint is not None else None
    state = None
    start = 0
    settings = {"iterations": iterations, "batch_size": batch_size, "seed": seed}
    if path is not None and resume and path.is_file():
        state = load_checkpoint(path, map_location="cpu")
        old = state.get("meta", {})
        for key in ("batch_size", "seed"):
            if key in old and old[key] != settings[key]:
                raise ValueError(f"{path} was trained with {key}={old[key]}, not {settings[key]}"
                                 f": resume with the same {key} (or another checkpoint file)")
        model.load_state_dict(state["model"])
        start = int(state["iteration"])
    model.to(device)
    groups = (model.param_groups(lr, head_lr_mult, grm_lr_mult) if hasattr(model, "param_groups")
              else [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr,
                     "lr_mult": 1.0}])
    optimizer = torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if state is not None and state.get("optimizer") is not None:
        optimizer.load_state_dict(state["optimizer"])
    ddp = dist_utils.wrap_model(model, device)
    record = {**(meta or {}), **settings, "world_size": world}

    bar = None
    if progress and dist_utils.is_main():
        from pyg_wsss._optional import require

        bar = require("tqdm.auto", "progress bars").tqdm(total=iterations, initial=start,
                                                          desc=f"stage 2 ({world} ranks)")
    ddp.train()
    if freeze_bn:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()

    def loss_fn(net: nn.Module, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        logits = net(images)
        if logits.shape[-2:] != labels.shape[-2:]:
            logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear",
                                   align_corners=False)
        total = F.cross_entropy(logits, labels, ignore_index=255, reduction="sum")
        return total, (labels != 255).sum()

    for it in range(start, iterations):
        for group in optimizer.param_groups:
            group["lr"] = poly_lr(lr, it, iterations, poly_power) * group.get("lr_mult", 1.0)
        images, labels = _local_batch(dataset, sampler.batch(it), seed)
        images, labels = images.to(device), labels.to(device)
        torch.manual_seed(seed * 31 + it)  # dropout etc.
        try:
            loss = dist_utils.ddp_train_step(ddp, optimizer,
                                             lambda net: loss_fn(net, images, labels))
        except FloatingPointError as err:
            raise FloatingPointError(f"stage-2 loss became non-finite at iteration {it}: "
                                     f"{err}") from None
        if history is not None:
            history.append(loss)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}")
        if path is not None and ((it + 1) % checkpoint_every == 0 or it + 1 == iterations):
            save_checkpoint(path, model, optimizer, it + 1, record)
    if bar is not None:
        bar.close()
    dist_utils.barrier(name="end of stage-2 training")
    return model.eval()


def evaluate_segmentation_distributed(
    model: nn.Module,
    samples: Any,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    device: str | torch.device = "cpu",
    **predict_kwargs: Any,
) -> dict[str, Any]:
    """:func:`~pyg_wsss.segmentation.evaluate_segmentation` over the ranks: rank ``r``
    predicts images ``r, r + world, ...``; the confusion matrices are all-reduced, so every
    rank returns the numbers one process computes. ``predict_kwargs``: ``crf``, ``scales``,
    ``flip`` of :func:`~pyg_wsss.segmentation.predict_segmentation`."""
    from pyg_wsss.metrics import ConfusionMatrix
    from pyg_wsss.segmentation.evaluate import predict_segmentation

    check_positive(num_classes, "num_classes", integer=True)
    n = len(samples)
    if n == 0:
        raise ValueError("'samples' is empty")
    r, w = dist_utils.rank(), dist_utils.world_size()
    device = dist_utils.device_for_rank(device)
    net = dist_utils.unwrap_model(model).to(device)
    cm = ConfusionMatrix(num_classes, ignore_index=255, class_names=class_names)
    for i in range(r, n, w):
        sample = samples[i]
        if "mask" not in sample:
            raise KeyError(f"sample {i} has no 'mask' to evaluate against")
        pred = predict_segmentation(net, sample["image"], device=device, **predict_kwargs)
        cm.update(torch.from_numpy(pred.astype(np.int64)),
                  torch.as_tensor(np.asarray(sample["mask"]).astype(np.int64)))
    cm.matrix = np.asarray(dist_utils.all_reduce_sum(cm.matrix), dtype=np.int64)
    return {"miou": float(cm.miou()), "iou": [float(v) for v in cm.iou()],
            "pixel_accuracy": float(cm.pixel_accuracy()), "confusion": cm.matrix.copy(),
            "table": cm.table()}
