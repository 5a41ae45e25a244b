r"""Multi-label CAM classifier (Zhou et al., CVPR 2016) on any :class:`Backbone`, and its
training loop on image-level tags.

With the last pyramid level :math:`F \in \mathbb{R}^{D \times h \times w}` and the bias-free
1x1 classifier :math:`W \in \mathbb{R}^{C \times D}`:

.. math::
    \mathrm{logit}_c = w_c^\top \frac{1}{hw} \sum_{p} F_{:,p}, \qquad
    \mathrm{CAM}_c(p) = w_c^\top F_{:,p},

so the logit is exactly the spatial mean of the (raw) CAM, which is why the CAM localises
the evidence the classifier uses. An optional per-class bias :math:`b_c` (``bias=True``) is
added to the logit only: it is constant over the image and does not localise anything.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyg_wsss._checks import as_rgb_image, check_choice, check_positive, check_tensor
from pyg_wsss._progress import progress as _progress
from pyg_wsss.nn.models.backbones import Backbone


class CAMClassifier(nn.Module):
    r"""Global-average-pooling classifier whose weights turn features into CAMs.

    Args:
        backbone: A :class:`~pyg_wsss.nn.models.backbones.Backbone` (any module returning a
            list of feature maps with a ``channels`` attribute works).
        num_classes: Number of foreground classes :math:`C` (no background).
        level: Which pyramid level feeds the classifier (default: the last).
        bias: Give the classifier a per-class bias (logits only; the CAM is :math:`W F`).
            The classic CAM layer has none (the default). With a small randomly initialised
            backbone a bias can make training more reliable: the post-ReLU features are
            non-negative, so without it an absent class needs learnt "negative evidence"
            (on an imbalanced two-colour toy task, 3 seeds: training tag accuracy 0.73-0.77
            without vs 0.98-1.0 with a bias; no measurable effect on ``SyntheticWSSS``).

    Shapes:
        - **input:** ``[B, 3, H, W]`` float RGB in ``[0, 1]``.
        - **forward output:** logits ``[B, C]``.
        - **cam output:** raw CAMs ``[B, C, h, w]`` at the chosen level's stride.
    """

    def __init__(
        self, backbone: Backbone, num_classes: int, level: int = -1, bias: bool = False
    ) -> None:
        super().__init__()
        if not isinstance(backbone, nn.Module):
            raise TypeError(f"'backbone' must be an nn.Module, got {type(backbone).__name__}")
        check_positive(num_classes, "num_classes", integer=True)
        channels = tuple(getattr(backbone, "channels", ()))
        if not channels:
            raise ValueError("'backbone' must have a non-empty 'channels' attribute")
        if not -len(channels) <= level < len(channels):
            raise ValueError(f"'level' must index the {len(channels)} pyramid levels, got {level}")
        self.backbone = backbone
        self.num_classes = int(num_classes)
        self.level = int(level)
        self.in_channels = int(channels[level])
        self.classifier = nn.Conv2d(self.in_channels, self.num_classes, 1, bias=bool(bias))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise the classifier (not the backbone)."""
        nn.init.normal_(self.classifier.weight, std=0.01)
        if self.classifier.bias is not None:
            nn.init.zeros_(self.classifier.bias)

    def features(self, x: Tensor) -> Tensor:
        """The pyramid level that feeds the classifier, ``[B, D, h, w]``."""
        return self.backbone(x)[self.level]

    def forward(self, x: Tensor) -> Tensor:
        feat = self.features(x)
        pooled = feat.mean(dim=(2, 3), keepdim=True)
        return self.classifier(pooled).flatten(1)

    def cam(self, x: Tensor) -> Tensor:
        """Raw class activation maps ``[B, C, h, w]`` (no ReLU, no normalisation, no bias)."""
        return F.conv2d(self.features(x), self.classifier.weight)

    def forward_with_cam(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(logits [B, C], raw CAMs [B, C, h, w])`` from one backbone pass."""
        cam = self.cam(x)
        logits = cam.mean(dim=(2, 3))
        if self.classifier.bias is not None:
            logits = logits + self.classifier.bias
        return logits, cam

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(backbone={self.backbone.__class__.__name__}, "
            f"in_channels={self.in_channels}, num_classes={self.num_classes}, "
            f"bias={self.classifier.bias is not None})"
        )


def _stack_samples(
    samples: Sequence[dict[str, Any]], num_classes: int, image_size: Any
) -> tuple[Tensor, Tensor]:
    """Images as float ``[N, 3, H, W]`` in [0, 1] (resized to a common size) and tags ``[N, C]``."""
    images, tags = [], []
    for i, s in enumerate(samples):
        if not isinstance(s, dict) or "image" not in s or "tags" not in s:
            raise ValueError(f"'samples[{i}]' must be a dict with 'image' and 'tags'")
        img = as_rgb_image(s["image"], f"samples[{i}]['image']")
        t = torch.as_tensor(np.asarray(s["tags"]), dtype=torch.float32).flatten()
        if t.numel() != num_classes:
            raise ValueError(
                f"'samples[{i}]['tags']' has {t.numel()} entries, the model has "
                f"{num_classes} classes"
            )
        if not torch.isfinite(t).all() or ((t != 0) & (t != 1)).any():
            raise ValueError(f"'samples[{i}]['tags']' must be multi-hot (0/1)")
        images.append(torch.from_numpy(img).permute(2, 0, 1).float().div_(255.0))
        tags.append(t)
    if image_size is None:
        sizes = {tuple(im.shape[1:]) for im in images}
        if len(sizes) == 1:
            return torch.stack(images), torch.stack(tags)
        hs = sorted(im.shape[1] for im in images)
        ws = sorted(im.shape[2] for im in images)
        image_size = (hs[len(hs) // 2], ws[len(ws) // 2])
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    size = (int(image_size[0]), int(image_size[1]))
    out = [
        im if tuple(im.shape[1:]) == size else
        F.interpolate(im[None], size=size, mode="bilinear", align_corners=False)[0]
        for im in images
    ]
    return torch.stack(out), torch.stack(tags)


def train_classifier(
    model: CAMClassifier,
    samples: Sequence[dict[str, Any]],
    epochs: int = 30,
    lr: float = 3e-3,
    batch_size: int = 8,
    device: torch.device | str | None = None,
    image_size: int | tuple[int, int] | None = None,
    progress: bool = True,
    seed: int = 0,
    optimizer: str = "adam",
    weight_decay: float = 1e-4,
    scale_jitter: tuple[float, float] | None = (0.8, 1.2),
    flip: bool = True,
    backbone_lr_mult: float = 1.0,
) -> CAMClassifier:
    r"""Train a :class:`CAMClassifier` on image-level tags with the multi-label soft-margin
    loss :math:`-\frac{1}{C}\sum_c y_c \log\sigma(s_c) + (1-y_c)\log(1-\sigma(s_c))`.

    Augmentation: random horizontal flips per image and one random scale per batch
    (``scale_jitter``, image side rounded to a multiple of 8). The learning rate follows a
    cosine schedule to 0. The whole set is held in memory (meant for the synthetic set and
    small subsets; use your own loop for VOC-scale training).

    Args:
        model: The classifier (its backbone is trained too, with ``lr * backbone_lr_mult``).
        samples: Sample dicts with ``image`` (uint8 ``[H, W, 3]``) and ``tags`` (``[C]``
            multi-hot), e.g. a :class:`pyg_wsss.data.SyntheticWSSS`.
        epochs: Passes over the data.
        lr: Learning rate of the classifier layer.
        batch_size: Images per step.
        device: Where to train (default: the model's device).
        image_size: Resize every image to this size (int or ``(H, W)``); by default images
            keep their size if they all agree, else they go to the median height/width.
        progress: Show a tqdm progress bar.
        seed: Seed of the shuffling and augmentation generator.
        optimizer: ``"adam"`` or ``"sgd"`` (momentum 0.9, Nesterov).
        weight_decay: L2 weight decay.
        scale_jitter: ``(min, max)`` random rescale factor per batch, or ``None``.
        flip: Random horizontal flips.
        backbone_lr_mult: Learning-rate multiplier of the backbone (e.g. 0.1 for pretrained).

    Returns:
        The trained model, in eval mode.
    """
    if not isinstance(model, CAMClassifier):
        raise TypeError(f"'model' must be a CAMClassifier, got {type(model).__name__}")
    if isinstance(samples, (dict, str)) or not hasattr(samples, "__len__"):
        raise TypeError("'samples' must be a sequence of sample dicts")
    if len(samples) == 0:
        raise ValueError("'samples' is empty")
    check_positive(epochs, "epochs", integer=True)
    check_positive(lr, "lr")
    check_positive(batch_size, "batch_size", integer=True)
    check_positive(weight_decay, "weight_decay", strict=False)
    check_positive(backbone_lr_mult, "backbone_lr_mult", strict=False)
    check_choice(optimizer, ("adam", "sgd"), "optimizer")
    if scale_jitter is not None:
        lo, hi = scale_jitter
        check_positive(lo, "scale_jitter")
        check_positive(hi, "scale_jitter")
        if lo > hi:
            raise ValueError(
                f"'scale_jitter' must be (min, max) with min <= max, got {scale_jitter}"
            )
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)

    images, tags = _stack_samples([samples[i] for i in range(len(samples))],
                                  model.num_classes, image_size)
    model.to(device).train()
    head = list(model.classifier.parameters())
    head_ids = {id(p) for p in head}
    body = [p for p in model.parameters() if id(p) not in head_ids]
    groups = [{"params": head, "lr": lr}]
    if body and backbone_lr_mult > 0:
        groups.append({"params": body, "lr": lr * backbone_lr_mult})
    elif body:
        for p in body:
            p.requires_grad_(False)
    if optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(groups, weight_decay=weight_decay)
    else:
        opt = torch.optim.SGD(groups, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    n = images.size(0)
    steps_per_epoch = math.ceil(n / batch_size)
    total = epochs * steps_per_epoch
    base_lrs = [g["lr"] for g in opt.param_groups]
    gen = torch.Generator().manual_seed(seed)
    bar = _progress(total=total, enabled=progress, desc="train classifier", leave=False)
    step = 0
    try:
        for _epoch in range(epochs):
            order = torch.randperm(n, generator=gen)
            for b in range(steps_per_epoch):
                idx = order[b * batch_size:(b + 1) * batch_size]
                x = images[idx].to(device)
                y = tags[idx].to(device)
                if flip:
                    flips = (torch.rand(idx.numel(), generator=gen) < 0.5).to(device)
                    x = torch.where(flips.view(-1, 1, 1, 1), x.flip(-1), x)
                if scale_jitter is not None and scale_jitter[0] != scale_jitter[1]:
                    s = float(scale_jitter[0] + (scale_jitter[1] - scale_jitter[0])
                              * torch.rand((), generator=gen))
                    h = max(8, int(round(x.size(2) * s / 8)) * 8)
                    w = max(8, int(round(x.size(3) * s / 8)) * 8)
                    x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
                for g, base in zip(opt.param_groups, base_lrs):
                    g["lr"] = base * 0.5 * (1 + math.cos(math.pi * step / total))
                loss = F.multilabel_soft_margin_loss(model(x), y)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"non-finite classifier loss at step {step}")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                bar.update(1)
                if progress:
                    bar.set_postfix(loss=f"{loss.item():.4f}")
    finally:
        bar.close()
    return model.eval()


@torch.no_grad()
def predict_tags(
    model: CAMClassifier,
    images: Tensor,
    threshold: float = 0.5,
) -> Tensor:
    """Multi-hot predictions ``[B, C]`` (``sigmoid(logit) > threshold``) for ``[B, 3, H, W]``
    float images in ``[0, 1]``."""
    check_tensor(images, "images", ndim=4, floating=True)
    model.eval()
    return (torch.sigmoid(model(images)) > threshold).float()
