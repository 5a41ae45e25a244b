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
from pyg_wsss.segmentation.train import (
    SegmentationTrainConfig,
    check_model_and_dataset,
    progress_bar,
    set_poly_lr,
    sgd_optimizer,
    start_training,
    train_config,
)

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


def _resume_distributed(path: Path | None, cfg: SegmentationTrainConfig,
                        model: nn.Module) -> tuple[dict[str, Any] | None, int]:
    """The checkpoint state (loaded into ``model``) and the iteration to start at; a
    checkpoint of another batch size or seed is refused."""
    if path is None or not cfg.resume or not path.is_file():
        return None, 0
    state = load_checkpoint(path, map_location="cpu")
    old, settings = state.get("meta", {}), cfg.settings()
    for key in ("batch_size", "seed"):
        if key in old and old[key] != settings[key]:
            raise ValueError(f"{path} was trained with {key}={old[key]}, not {settings[key]}"
                             f": resume with the same {key} (or another checkpoint file)")
    model.load_state_dict(state["model"])
    return state, int(state["iteration"])


def _global_loss(net: nn.Module, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """This rank's summed cross-entropy and labelled-pixel count (the global mean is taken
    by :func:`pyg_wsss.distributed.ddp_train_step`)."""
    logits = net(images)
    if logits.shape[-2:] != labels.shape[-2:]:
        logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear",
                               align_corners=False)
    total = F.cross_entropy(logits, labels, ignore_index=255, reduction="sum")
    return total, (labels != 255).sum()


def train_segmentation_distributed(
    model: nn.Module,
    dataset: PseudoLabelDataset,
    config: SegmentationTrainConfig | None = None,
    *,
    history: list[float] | None = None,
    **options: Any,
) -> nn.Module:
    """Train a stage-2 network on pseudo-labels on every rank of the job (or one process).

    Call it on every rank after :func:`pyg_wsss.distributed.init_distributed` (or without a
    process group: one process). The settings are those of
    :func:`~pyg_wsss.segmentation.train_segmentation`, one
    :class:`~pyg_wsss.segmentation.train.SegmentationTrainConfig`; see the module docstring
    for what makes N ranks follow one process. Under DDP, ``batch_size`` is the *global*
    batch (a multiple of the number of ranks), the checkpoint is saved by rank 0 and resumed
    on any number of ranks, ``device`` may be ``"cpu"``, ``"cuda"`` (= ``cuda:LOCAL_RANK``)
    or ``"auto"``, and ``sync_batchnorm`` converts BatchNorm layers to
    :class:`~torch.nn.SyncBatchNorm` when several ranks run (GPUs only).

    Args:
        model: Maps ``[B, 3, H, W]`` in ``[0, 1]`` to logits ``[B, K, H, W]`` (the same
            initial weights are broadcast from rank 0).
        dataset: A :class:`~pyg_wsss.segmentation.PseudoLabelDataset` (every rank the same).
        config: The settings (:class:`~pyg_wsss.segmentation.train.SegmentationTrainConfig`).
        history: If given, the global mean loss of every iteration is appended (the same
            on every rank).
        **options: The former keyword form, still accepted: any config field
            (``iterations=...``, ``freeze_bn=True``, ``meta={...}``), overriding ``config``.

    Returns:
        The trained model (unwrapped from DDP, in eval mode).

    Raises:
        ValueError: a bad argument, or a checkpoint written with another batch size or seed.
        pyg_wsss.distributed.DistributedError: another rank died or timed out.
    """
    check_model_and_dataset(model, dataset)
    cfg = train_config(config, options, "train_segmentation_distributed")
    cfg.check()
    world = dist_utils.world_size()
    sampler = GlobalBatchSampler(len(dataset), cfg.batch_size, cfg.seed)
    device = dist_utils.device_for_rank(cfg.device)
    if cfg.sync_batchnorm:
        model = dist_utils.convert_sync_batchnorm(model, device)
    path = Path(cfg.checkpoint) if cfg.checkpoint is not None else None
    state, start = _resume_distributed(path, cfg, model)
    model.to(device)
    optimizer = sgd_optimizer(model, cfg)
    if state is not None and state.get("optimizer") is not None:
        optimizer.load_state_dict(state["optimizer"])
    ddp = dist_utils.wrap_model(model, device)
    record = {**(cfg.meta or {}), **cfg.settings(), "world_size": world}
    bar = progress_bar(cfg, start, f"stage 2 ({world} ranks)") if dist_utils.is_main() else None
    ddp.train()
    start_training(model, cfg.freeze_bn)  # model.train() again: a no-op but for BN
    for it in range(start, cfg.iterations):
        set_poly_lr(optimizer, cfg, it)
        images, labels = _local_batch(dataset, sampler.batch(it), cfg.seed)
        images, labels = images.to(device), labels.to(device)
        torch.manual_seed(cfg.seed * 31 + it)  # dropout etc.
        try:
            loss = dist_utils.ddp_train_step(ddp, optimizer,
                                             lambda net: _global_loss(net, images, labels))
        except FloatingPointError as err:
            raise FloatingPointError(f"stage-2 loss became non-finite at iteration {it}: "
                                     f"{err}") from None
        if history is not None:
            history.append(loss)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}")
        if path is not None and ((it + 1) % cfg.checkpoint_every == 0
                                 or it + 1 == cfg.iterations):
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
