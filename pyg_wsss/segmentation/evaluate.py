"""Stage-2 inference (multi-scale, flip, dense CRF) and evaluation (mIoU, per-class table)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyg_wsss._checks import check_positive
from pyg_wsss.segmentation.data import image_to_tensor

__all__ = ["predict_probabilities", "predict_segmentation", "evaluate_segmentation"]


def _check_model(model: Any) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"'model' must be an nn.Module, got {type(model).__name__}")


def _check_scales(scales: Any) -> tuple[float, ...]:
    if isinstance(scales, (str, bytes)) or not isinstance(scales, (tuple, list)):
        raise TypeError(f"'scales' must be a sequence of numbers, got {scales!r}")
    if not scales:
        raise ValueError("'scales' must not be empty")
    for s in scales:
        check_positive(s, "scales")
        if not np.isfinite(s):
            raise ValueError(f"'scales' must be finite, got {s!r}")
    return tuple(scales)


def _device(device: Any) -> torch.device:
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"'device' is not a torch device: {device!r} ({err})") from None


@torch.no_grad()
def predict_probabilities(
    model: nn.Module,
    image: Any,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    device: str | torch.device = "cpu",
) -> Tensor:
    """Softmax class probabilities ``[K, H, W]`` (CPU float32) of one ``uint8 [H, W, 3]`` image,
    averaged over ``scales`` and (with ``flip``) horizontal flips."""
    _check_model(model)
    scales = _check_scales(scales)
    device = _device(device)
    x = image_to_tensor(image)[None].to(device)
    h, w = x.shape[-2:]
    model.eval()
    total: Tensor | None = None
    for s in scales:
        xs = (
            x
            if s == 1.0
            else F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)
        )
        batch = torch.cat([xs, xs.flip(-1)]) if flip else xs
        logits = model(batch)
        logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
        probs = logits.softmax(1)
        probs = (probs[0] + probs[1].flip(-1)) / 2 if flip else probs[0]
        total = probs if total is None else total + probs
    assert total is not None  # scales is not empty (checked)
    return (total / len(scales)).float().cpu()


def predict_segmentation(
    model: nn.Module,
    image: Any,
    crf: str | Any | None = None,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    device: str | torch.device = "cpu",
    crf_iterations: int = 10,
) -> np.ndarray:
    """``uint8 [H, W]`` label map of one image; ``crf="deeplab"`` (or any preset of
    :func:`pyg_wsss.pseudo.dense_crf`) refines the probabilities with a dense CRF (DeepLab:
    10 iterations, gaussian 1/3, bilateral 67/3/4)."""
    check_positive(crf_iterations, "crf_iterations", strict=False, integer=True)
    if crf is not None:
        from pyg_wsss.pseudo.crf import _resolve_preset

        _resolve_preset(crf)  # a bad preset is named before the network runs
    probs = predict_probabilities(model, image, scales, flip, device)
    if crf is not None:
        from pyg_wsss.pseudo.crf import dense_crf

        rgb = (image_to_tensor(image) * 255).round().byte().permute(1, 2, 0).numpy()
        probs = torch.as_tensor(
            np.asarray(dense_crf(rgb, probs.numpy(), preset=crf, n_iter=crf_iterations))
        )
    if probs.shape[0] > 256:
        raise ValueError("at most 256 classes fit a uint8 label map")
    return probs.argmax(0).numpy().astype(np.uint8)


def _sample_mask(sample: Any, i: int) -> np.ndarray:
    """The ground-truth mask of ``samples[i]`` as a numpy integer map (whole-valued float
    masks accepted)."""
    if not isinstance(sample, dict) or "image" not in sample:
        raise TypeError(f"'samples'[{i}] must be a sample dict with an 'image' key")
    if "mask" not in sample:
        raise ValueError(f"'samples'[{i}] has no 'mask' to evaluate against")
    mask = sample["mask"]
    mask = np.asarray(mask.cpu() if isinstance(mask, Tensor) else mask)
    if np.issubdtype(mask.dtype, np.floating):  # whole-valued float masks as before
        if not (np.isfinite(mask).all() and (mask == np.round(mask)).all()):
            raise ValueError(f"'samples'[{i}]['mask'] must hold integer class ids")
        mask = mask.astype(np.int64)
    return mask


def evaluate_segmentation(
    model: nn.Module,
    samples: Any,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    crf: str | Any | None = None,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    device: str | torch.device = "cpu",
    progress: bool = False,
    return_predictions: bool = False,
) -> dict[str, Any]:
    """Evaluate a stage-2 network on a split (a dataset or list of sample dicts with
    ``image`` and ``mask``; 255 = void).

    Returns:
        ``{"miou", "iou" (per class, NaN for classes absent from predictions and targets),
        "pixel_accuracy", "confusion" ([K, K] numpy, rows = target), "table" (markdown, from
        :meth:`pyg_wsss.metrics.ConfusionMatrix.table`)}``
        plus ``"predictions"`` (list of ``uint8 [H, W]``) with ``return_predictions``.
    """
    from pyg_wsss.metrics import ConfusionMatrix

    _check_model(model)
    check_positive(num_classes, "num_classes", integer=True)
    _check_scales(scales)
    if isinstance(samples, (str, bytes, dict)) or not hasattr(samples, "__len__"):
        raise TypeError(f"'samples' must be a dataset or list of sample dicts, got {samples!r}")
    n = len(samples)
    if n == 0:
        raise ValueError("'samples' is empty")
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"'class_names' has {len(class_names)} names for {num_classes} classes")
    cm = ConfusionMatrix(num_classes, ignore_index=255, class_names=class_names)
    preds = []
    from pyg_wsss._progress import progress as _progress

    for i in _progress(range(n), enabled=bool(progress), desc="evaluate"):
        sample = samples[i]
        mask = _sample_mask(sample, i)
        pred = predict_segmentation(
            model, sample["image"], crf=crf, scales=scales, flip=flip, device=device
        )
        if mask.shape != pred.shape:
            raise ValueError(
                f"'samples'[{i}]['mask'] has shape {mask.shape}, the image is {pred.shape}"
            )
        try:
            cm.update(torch.from_numpy(pred.astype(np.int64)), torch.as_tensor(mask))
        except (ValueError, TypeError) as err:
            raise type(err)(f"'samples'[{i}]['mask']: {err}") from None
        if return_predictions:
            preds.append(pred)
    out: dict[str, Any] = {
        "miou": float(cm.miou()),
        "iou": [float(v) for v in cm.iou()],
        "pixel_accuracy": float(cm.pixel_accuracy()),
        "confusion": cm.matrix.copy(),
        "table": cm.table(),
    }
    if return_predictions:
        out["predictions"] = preds
    return out
