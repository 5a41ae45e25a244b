r"""Class activation maps at several scales with flips, normalised per class.

The standard recipe of PSA / IRNet / SEAM (and so of WSGCN, A2GNN and the knowledge-graph
system): run the classifier on the image rescaled by each factor in ``scales`` (and its
horizontal mirror), keep the positive part of each raw CAM, upsample it bilinearly to the
image size, mirror it back, and sum:

.. math::
    M_c = \sum_{s \in S} \sum_{f \in \{\mathrm{id}, \mathrm{flip}\}}
          f^{-1}\big(\mathrm{up}_{H \times W}(\mathrm{ReLU}(\mathrm{CAM}_c(f(x_s))))\big).

Each class present in the image tags is then normalised to ``[0, 1]``: ``"max"`` divides by
the maximum (PSA / IRNet), ``"minmax"`` is SEAM's
:math:`(M_c - \min M_c - \epsilon) / (\max M_c - \min M_c + \epsilon)` with values below zero
clipped (NOTES.md 3.5). Classes absent from the tags are zero.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from pyg_wsss._checks import as_rgb_image, check_choice, check_positive, check_tensor

CamFn = Callable[[Tensor], Tensor]


def _check_scales(scales: Any) -> tuple[float, ...]:
    if isinstance(scales, (int, float)):
        scales = (scales,)
    scales = tuple(scales)
    if len(scales) == 0:
        raise ValueError("'scales' must not be empty")
    for s in scales:
        check_positive(s, "scales")
    return scales


def multiscale_cam(
    cam_fn: CamFn,
    image: Tensor,
    scales: Sequence[float] = (1.0, 0.5, 1.5, 2.0),
    flip: bool = True,
) -> Tensor:
    r"""Sum of ReLU'd CAMs over rescaled (and mirrored) copies of one image.

    Args:
        cam_fn: Maps a batch of one image ``[1, 3, h, w]`` (float RGB in ``[0, 1]``) to raw
            CAMs ``[1, C, h', w']`` or ``[C, h', w']`` at any resolution (e.g.
            :meth:`CAMClassifier.cam <pyg_wsss.nn.models.classifier.CAMClassifier.cam>`).
        image: ``[3, H, W]`` float RGB in ``[0, 1]``.
        scales: Rescale factors (the rescaled side is ``max(1, round(s * side))``).
        flip: Also run the horizontally mirrored image and mirror its CAM back.

    Returns:
        ``[C, H, W]`` non-negative (un-normalised) CAMs, on the image's device. Gradients
        flow if ``cam_fn`` is differentiable (wrap in :func:`torch.no_grad` otherwise).
    """
    if not callable(cam_fn):
        raise TypeError(f"'cam_fn' must be callable, got {type(cam_fn).__name__}")
    check_tensor(image, "image", ndim=3, floating=True, finite=True)
    if image.size(0) != 3:
        raise ValueError(f"'image' must have shape [3, H, W], got {tuple(image.shape)}")
    scales = _check_scales(scales)
    height, width = image.shape[1:]
    total: Tensor | None = None
    for s in scales:
        size = (max(1, round(height * s)), max(1, round(width * s)))
        x = image[None]
        if size != (height, width):
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        for mirrored in (False, True) if flip else (False,):
            xi = x.flip(-1) if mirrored else x
            cam = cam_fn(xi)
            if not isinstance(cam, Tensor):
                raise TypeError(f"'cam_fn' must return a tensor, got {type(cam).__name__}")
            if cam.dim() == 4:
                if cam.size(0) != 1:
                    raise ValueError(
                        f"'cam_fn' returned a batch of {cam.size(0)} CAMs for one image"
                    )
                cam = cam[0]
            if cam.dim() != 3:
                raise ValueError(
                    f"'cam_fn' must return [C, h, w] or [1, C, h, w], got {tuple(cam.shape)}"
                )
            cam = F.interpolate(
                F.relu(cam)[None].float(), size=(height, width), mode="bilinear",
                align_corners=False,
            )[0]
            if mirrored:
                cam = cam.flip(-1)
            total = cam if total is None else total + cam
    assert total is not None
    return total


def _normalize_cams(
    cams: Tensor, tags: Tensor | None = None, normalize: str = "max", eps: float = 1e-5
) -> Tensor:
    r"""Per-class normalisation of non-negative CAMs ``[C, H, W]`` to ``[0, 1]``.

    ``"max"``: :math:`M_c / (\max M_c + \epsilon)`; ``"minmax"`` (SEAM):
    :math:`\max(0, (M_c - \min M_c - \epsilon) / (\max M_c - \min M_c + \epsilon))`.
    Classes whose ``tags`` entry is 0 are set to 0 (all classes kept if ``tags`` is None).
    """
    check_tensor(cams, "cams", ndim=3, floating=True, finite=True)
    check_choice(normalize, ("max", "minmax"), "normalize")
    check_positive(eps, "eps")
    flat = cams.flatten(1)
    if flat.size(1):
        hi = flat.max(dim=1).values.view(-1, 1, 1)
    else:
        hi = cams.new_zeros(cams.size(0), 1, 1)
    if normalize == "max":
        out = F.relu(cams) / (hi + eps)
    else:
        lo = flat.min(dim=1).values.view(-1, 1, 1) if flat.size(1) else hi
        out = ((cams - lo - eps) / (hi - lo + eps)).clamp_min(0)
    out = out.clamp(0, 1)
    if tags is not None:
        tags = torch.as_tensor(tags, device=cams.device).flatten()
        if tags.numel() != cams.size(0):
            raise ValueError(f"'tags' has {tags.numel()} entries for {cams.size(0)} CAMs")
        out = out * (tags > 0).to(out.dtype).view(-1, 1, 1)
    return out


def _resolve_cam_fn(model: Any) -> CamFn:
    if hasattr(model, "cam") and callable(model.cam):
        return model.cam
    if callable(model):
        return model
    raise TypeError(f"'model' must have a 'cam' method or be callable, got {type(model).__name__}")


@torch.no_grad()
def classifier_cams(
    model: Any,
    images: Sequence[Any],
    tags: Sequence[Any],
    scales: Sequence[float] = (1.0, 0.5, 1.5, 2.0),
    flip: bool = True,
    device: torch.device | str | None = None,
    normalize: str = "max",
    eps: float = 1e-5,
) -> list[Tensor]:
    """Multi-scale + flip CAMs of a trained classifier for a list of images.

    Args:
        model: A :class:`~pyg_wsss.nn.models.classifier.CAMClassifier` (anything with a
            ``cam(x [1, 3, h, w]) -> [1, C, h', w']`` method), or such a callable. Put in eval
            mode here if it is an ``nn.Module``.
        images: ``uint8 [H, W, 3]`` RGB arrays (or float in ``[0, 1]``; see
            :func:`~pyg_wsss._checks.as_rgb_image`).
        tags: One ``[C]`` multi-hot vector per image; CAMs of absent classes are zero.
        scales: Rescale factors (IRNet's default ``(1.0, 0.5, 1.5, 2.0)``).
        flip: Add horizontally mirrored passes.
        device: Where to run (default: the model's device, else CPU).
        normalize: ``"max"`` or ``"minmax"`` (SEAM), see :func:`_normalize_cams` (the same maths as
            :func:`pyg_wsss.pseudo.normalize_cams`).
        eps: The normalisation epsilon.

    Returns:
        One float32 CPU tensor ``[C, H, W]`` in ``[0, 1]`` per image.
    """
    cam_fn = _resolve_cam_fn(model)
    check_choice(normalize, ("max", "minmax"), "normalize")
    scales = _check_scales(scales)
    if isinstance(images, (np.ndarray, Tensor, str, bytes)) or not hasattr(images, "__len__"):
        raise TypeError("'images' must be a list of [H, W, 3] images")
    if not hasattr(tags, "__len__") or len(tags) != len(images):
        raise ValueError(
            f"'tags' must have one entry per image ({len(images)}), got "
            f"{len(tags) if hasattr(tags, '__len__') else type(tags).__name__}"
        )
    if device is None:
        params = list(model.parameters()) if isinstance(model, torch.nn.Module) else []
        device = params[0].device if params else torch.device("cpu")
    device = torch.device(device)
    if isinstance(model, torch.nn.Module):
        model.to(device).eval()
    out = []
    for i, (img, tag) in enumerate(zip(images, tags)):
        arr = as_rgb_image(img, f"images[{i}]")
        t = torch.as_tensor(np.asarray(tag.cpu() if isinstance(tag, Tensor) else tag),
                            dtype=torch.float32).flatten()
        if not torch.isfinite(t).all() or ((t != 0) & (t != 1)).any():
            raise ValueError(f"'tags[{i}]' must be multi-hot (0/1)")
        x = torch.from_numpy(arr).permute(2, 0, 1).float().div_(255.0).to(device)
        cams = multiscale_cam(cam_fn, x, scales=scales, flip=flip)
        if cams.size(0) != t.numel():
            raise ValueError(
                f"'tags[{i}]' has {t.numel()} entries but the model gives {cams.size(0)} CAMs"
            )
        out.append(_normalize_cams(cams, t.to(cams.device), normalize, eps).float().cpu())
    return out
