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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyg_wsss._checks import as_rgb_image, check_choice, check_positive, check_tensor
from pyg_wsss._config import replace_fields, resolve_config
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


@dataclass
class ClassifierTrainConfig:
    r"""The settings of :func:`train_classifier` (passed whole; its keywords override them).

    Fields:
        epochs: Passes over the data.
        lr: Learning rate of the classifier layer.
        batch_size: Images per step.
        image_size: Resize every image to this size (int or ``(H, W)``); by default images
            keep their size if they all agree, else they go to the median height/width.
        seed: Seed of the shuffling and augmentation generator.
        optimizer: ``"adam"`` or ``"sgd"`` (momentum 0.9, Nesterov).
        weight_decay: L2 weight decay.
        scale_jitter: ``(min, max)`` random rescale factor per batch, or ``None``.
        flip: Random horizontal flips.
        backbone_lr_mult: Learning-rate multiplier of the backbone (e.g. 0.1 for
            pretrained); ``0`` freezes the backbone's parameters.
    """

    epochs: int = 30
    lr: float = 3e-3
    batch_size: int = 8
    image_size: Optional[int | tuple[int, int]] = None
    seed: int = 0
    optimizer: str = "adam"
    weight_decay: float = 1e-4
    scale_jitter: Optional[tuple[float, float]] = (0.8, 1.2)
    flip: bool = True
    backbone_lr_mult: float = 1.0

    def replace(self, **changes: Any) -> "ClassifierTrainConfig":
        """A copy with some fields changed (an unknown name is a ``TypeError`` naming it)."""
        return replace_fields(self, changes, "ClassifierTrainConfig.replace()")

    def check(self) -> None:
        """Validate the fields (each error names its field)."""
        check_positive(self.epochs, "epochs", integer=True)
        check_positive(self.lr, "lr")
        check_positive(self.batch_size, "batch_size", integer=True)
        check_positive(self.weight_decay, "weight_decay", strict=False)
        check_positive(self.backbone_lr_mult, "backbone_lr_mult", strict=False)
        check_choice(self.optimizer, ("adam", "sgd"), "optimizer")
        if self.scale_jitter is not None:
            lo, hi = self.scale_jitter
            check_positive(lo, "scale_jitter")
            check_positive(hi, "scale_jitter")
            if lo > hi:
                raise ValueError(
                    f"'scale_jitter' must be (min, max) with min <= max, got {self.scale_jitter}"
                )


def _check_inputs(model: Any, samples: Any) -> None:
    """Type and emptiness checks of :func:`train_classifier`'s ``model`` and ``samples``."""
    if not isinstance(model, CAMClassifier):
        raise TypeError(f"'model' must be a CAMClassifier, got {type(model).__name__}")
    if isinstance(samples, (dict, str)) or not hasattr(samples, "__len__"):
        raise TypeError("'samples' must be a sequence of sample dicts")
    if len(samples) == 0:
        raise ValueError("'samples' is empty")


def _make_optimizer(model: CAMClassifier, cfg: ClassifierTrainConfig) -> torch.optim.Optimizer:
    """Adam or Nesterov SGD over two parameter groups: the classifier layer at ``lr`` and the
    rest (the backbone) at ``lr * backbone_lr_mult``; with a multiplier of 0 the backbone's
    parameters get ``requires_grad=False`` and no group."""
    head = list(model.classifier.parameters())
    head_ids = {id(p) for p in head}
    body = [p for p in model.parameters() if id(p) not in head_ids]
    groups = [{"params": head, "lr": cfg.lr}]
    if body and cfg.backbone_lr_mult > 0:
        groups.append({"params": body, "lr": cfg.lr * cfg.backbone_lr_mult})
    elif body:
        for p in body:
            p.requires_grad_(False)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(groups, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)


class _CosineLR:
    r"""Cosine decay of every parameter group's learning rate to 0 over ``total`` steps:

    .. math::
        \eta_t = \eta_0 \cdot \tfrac{1}{2} \left(1 + \cos \frac{\pi t}{T}\right),

    with :math:`\eta_0` the group's learning rate at construction and :math:`t` = ``step``.
    """

    def __init__(self, opt: torch.optim.Optimizer, total: int) -> None:
        self.opt, self.total, self.step = opt, total, 0
        self.base_lrs = [g["lr"] for g in opt.param_groups]

    def apply(self) -> None:
        """Set the learning rates of step ``self.step``."""
        for g, base in zip(self.opt.param_groups, self.base_lrs):
            g["lr"] = base * 0.5 * (1 + math.cos(math.pi * self.step / self.total))


def _augment(x: Tensor, cfg: ClassifierTrainConfig, gen: torch.Generator) -> Tensor:
    r"""Random horizontal flips per image (``flip``), then one random rescale of the batch
    ``[B, 3, H, W]`` by :math:`s \sim U(\mathrm{min}, \mathrm{max})` of ``scale_jitter`` (sides
    rounded to a multiple of 8, at least 8); the draws come from ``gen`` in that order."""
    if cfg.flip:
        flips = (torch.rand(x.size(0), generator=gen) < 0.5).to(x.device)
        x = torch.where(flips.view(-1, 1, 1, 1), x.flip(-1), x)
    jitter = cfg.scale_jitter
    if jitter is not None and jitter[0] != jitter[1]:
        s = float(jitter[0] + (jitter[1] - jitter[0]) * torch.rand((), generator=gen))
        h = max(8, int(round(x.size(2) * s / 8)) * 8)
        w = max(8, int(round(x.size(3) * s / 8)) * 8)
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    return x


def _epoch_batches(
    images: Tensor, tags: Tensor, cfg: ClassifierTrainConfig, gen: torch.Generator,
    device: torch.device,
) -> Iterator[tuple[Tensor, Tensor]]:
    """One epoch of augmented ``(images [b, 3, h, w], tags [b, C])`` batches on ``device``,
    in a random order drawn from ``gen``."""
    n = images.size(0)
    order = torch.randperm(n, generator=gen)
    for b in range(math.ceil(n / cfg.batch_size)):
        idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
        x = images[idx].to(device)
        yield _augment(x, cfg, gen), tags[idx].to(device)


def _train_step(
    model: CAMClassifier, opt: torch.optim.Optimizer, x: Tensor, y: Tensor, step: int
) -> Tensor:
    """One optimiser step on the multi-label soft-margin loss of ``(x, y)``; returns the
    loss (a non-finite one is a ``FloatingPointError`` naming ``step``)."""
    loss = F.multilabel_soft_margin_loss(model(x), y)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"non-finite classifier loss at step {step}")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def train_classifier(
    model: CAMClassifier,
    samples: Sequence[dict[str, Any]],
    config: Optional[ClassifierTrainConfig] = None,
    *,
    device: torch.device | str | None = None,
    progress: bool = True,
    **overrides: Any,
) -> CAMClassifier:
    r"""Train a :class:`CAMClassifier` on image-level tags with the multi-label soft-margin
    loss :math:`-\frac{1}{C}\sum_c y_c \log\sigma(s_c) + (1-y_c)\log(1-\sigma(s_c))`.

    The settings are one :class:`ClassifierTrainConfig` (``config``) or, as before, its
    fields by keyword (``epochs=2, lr=1e-2``, ...; they override ``config``).

    Augmentation: random horizontal flips per image and one random scale per batch
    (``scale_jitter``, image side rounded to a multiple of 8). The learning rate follows a
    cosine schedule to 0. The whole set is held in memory (meant for the synthetic set and
    small subsets; use your own loop for VOC-scale training).

    Args:
        model: The classifier (its backbone is trained too, with ``lr * backbone_lr_mult``).
        samples: Sample dicts with ``image`` (uint8 ``[H, W, 3]``) and ``tags`` (``[C]``
            multi-hot), e.g. a :class:`pyg_wsss.data.SyntheticWSSS`.
        config: The settings, a :class:`ClassifierTrainConfig` (default: its defaults:
            30 epochs, Adam at ``lr=3e-3``, batches of 8, weight decay ``1e-4``, flips and
            ``scale_jitter=(0.8, 1.2)``, ``seed=0``).
        device: Where to train (default: the model's device).
        progress: Show a tqdm progress bar.
        **overrides: The former keyword form: any :class:`ClassifierTrainConfig` field
            (``epochs``, ``lr``, ``batch_size``, ``image_size``, ``seed``, ``optimizer``,
            ``weight_decay``, ``scale_jitter``, ``flip``, ``backbone_lr_mult``), overriding
            ``config`` (an unknown name is a ``TypeError`` listing the fields).

    Returns:
        The trained model, in eval mode.
    """
    cfg = resolve_config(config, ClassifierTrainConfig, overrides,
                         "train_classifier(model, samples, config)")
    _check_inputs(model, samples)
    cfg.check()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    images, tags = _stack_samples([samples[i] for i in range(len(samples))],
                                  model.num_classes, cfg.image_size)
    model.to(device).train()
    opt = _make_optimizer(model, cfg)
    schedule = _CosineLR(opt, cfg.epochs * math.ceil(images.size(0) / cfg.batch_size))
    gen = torch.Generator().manual_seed(cfg.seed)
    bar = _progress(total=schedule.total, enabled=progress, desc="train classifier", leave=False)
    try:
        for _epoch in range(cfg.epochs):
            for x, y in _epoch_batches(images, tags, cfg, gen, device):
                schedule.apply()
                loss = _train_step(model, opt, x, y, schedule.step)
                schedule.step += 1
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
