"""Stage 2 for every example: train the shared DeepLab network (:mod:`pyg_wsss.segmentation`)
on a system's pseudo-labels and evaluate it on held-out images (each example's ``--stage2``).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from .._checks import check_positive


def heldout_synthetic(
    num_images: int, after: int, image_size: int = 96, num_classes: int = 5, seed: int = 0
) -> list[dict[str, Any]]:
    """``num_images`` synthetic samples that follow the first ``after`` images of the same
    seeded :class:`~pyg_wsss.data.SyntheticWSSS` (image ``i`` does not depend on the set size,
    so these never overlap the images the pseudo-labels were made for)."""
    from ..data import SyntheticWSSS

    check_positive(num_images, "num_images", integer=True)
    data = SyntheticWSSS(num_images=after + num_images, image_size=image_size,
                         num_classes=num_classes, seed=seed)
    return [data[i] for i in range(after, after + num_images)]


def run_stage2(
    train_samples: Sequence[dict[str, Any]],
    pseudo_labels: Sequence[np.ndarray],
    eval_samples: Sequence[dict[str, Any]],
    num_classes: int,
    iterations: int = 300,
    crf: bool = True,
    device: str | torch.device = "cpu",
    seed: int = 0,
    progress: bool = False,
    **train_kwargs: Any,
) -> dict[str, float]:
    """Train DeepLab (ASPP over a backbone; SmallCNN by default) on ``pseudo_labels`` (255 =
    ignored) and return its held-out ``{"miou", "miou_crf"}`` (DeepLab CRF preset)."""
    from ..segmentation import evaluate_segmentation
    from .knowledge_grm import train_stage2

    if len(train_samples) != len(pseudo_labels):
        raise ValueError(
            f"{len(train_samples)} samples but {len(pseudo_labels)} pseudo-label maps"
        )
    model = train_stage2(list(train_samples), list(pseudo_labels), num_classes,
                         iterations=iterations, device=device, seed=seed, progress=progress,
                         **train_kwargs)
    out = {"miou": evaluate_segmentation(model, list(eval_samples), num_classes,
                                         device=device)["miou"]}
    if crf:
        out["miou_crf"] = evaluate_segmentation(model, list(eval_samples), num_classes,
                                                crf="deeplab", device=device)["miou"]
    return out


def print_stage2(rows: dict[str, dict[str, float]]) -> None:
    """Print stage-2 results as a markdown table."""
    print("\n| stage 2 trained on | held-out mIoU (%) | + CRF (%) |\n|---|---:|---:|")
    for name, r in rows.items():
        crf = f"{100 * r['miou_crf']:.1f}" if "miou_crf" in r else "-"
        print(f"| {name} | {100 * r['miou']:.1f} | {crf} |")
