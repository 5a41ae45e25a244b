"""Baselines that the graph methods must beat: plain CAMs, CAM seeds, random walk + CRF.

Library functions (one label map per sample; ``uint8``, 255 = unlabelled):

* :func:`cam_threshold_labels`: argmax of the CAM scores with a constant background score.
* :func:`cam_seed_labels`: the la/ha CRF partial labels (PSA/SEAM/A2GNN recipe,
  :func:`~pyg_wsss.pseudo.a2gnn_tag_seeds`; 255 where unsure).
* :func:`random_walk_crf_labels`: CAM -> colour (+ feature) affinity on a pixel graph ->
  sparse random walk -> dense CRF -> argmax.

The demo rows are registered with :func:`~pyg_wsss.pipelines.register_demo`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence, cast

import numpy as np
import torch
from torch import Tensor

from .._optional import available
from . import DemoContext, register_demo

__all__ = [
    "cam_threshold_labels",
    "cam_seed_labels",
    "random_walk_crf_labels",
    "seed_precision",
    "RandomWalkCRFConfig",
    "demo",
]


def _check_inputs(samples: Any, cams: Any, image: bool = True) -> None:
    """``samples`` a non-empty sequence of sample dicts, ``cams`` one ``[C, H, W]`` map each
    (at the image size when ``image``)."""
    if isinstance(samples, (str, bytes, dict)) or not hasattr(samples, "__len__"):
        raise TypeError(f"'samples' must be a list of sample dicts, got {type(samples).__name__}")
    if isinstance(cams, (str, bytes, dict)) or not hasattr(cams, "__len__"):
        raise TypeError(f"'cams' must be a list of [C, H, W] CAMs, got {type(cams).__name__}")
    if len(samples) == 0:
        raise ValueError("'samples' is empty")
    if len(cams) != len(samples):
        raise ValueError(f"'cams' has {len(cams)} entries for {len(samples)} samples")
    for i in range(len(samples)):
        s, cam = samples[i], cams[i]
        if not isinstance(s, dict) or (image and "image" not in s):
            raise TypeError(
                f"'samples'[{i}] must be a sample dict"
                + (" with an 'image' key" if image else "")
            )
        if not isinstance(cam, (Tensor, np.ndarray)):
            raise TypeError(
                f"'cams'[{i}] must be a tensor or numpy array, got {type(cam).__name__}"
            )
        if cam.ndim != 3:
            raise ValueError(f"'cams'[{i}] must have shape [C, H, W], got {tuple(cam.shape)}")
        img = s.get("image") if image else None
        if isinstance(img, np.ndarray) and img.ndim == 3 and tuple(cam.shape[1:]) != img.shape[:2]:
            raise ValueError(
                f"'cams'[{i}] has spatial size {tuple(cam.shape[1:])} but its image has "
                f"{img.shape[:2]}"
            )


def _tags(sample: dict[str, Any], num_fg: int) -> np.ndarray:
    tags = sample.get("tags")
    if tags is None:
        return np.ones(num_fg, dtype=np.float32)
    return np.asarray(tags, dtype=np.float32)


def cam_threshold_labels(
    samples: Sequence[dict[str, Any]],
    cams: Sequence[Tensor],
    bg_threshold: float = 0.2,
) -> list[np.ndarray]:
    """Argmax over ``[bg_threshold, CAMs]`` (CAMs max-normalised over the image's tags)."""
    from ..pseudo.seeds import cam_labels

    _check_inputs(samples, cams, image=False)
    return [
        cam_labels(cam, _tags(s, cam.shape[0]), bg_threshold=bg_threshold)
        for s, cam in zip(samples, cams)
    ]


def cam_seed_labels(
    samples: Sequence[dict[str, Any]],
    cams: Sequence[Tensor],
    **kwargs: Any,
) -> list[np.ndarray]:
    """The la/ha CRF seed labels (:func:`~pyg_wsss.pseudo.a2gnn_tag_seeds`; keyword
    arguments passed on), 255 where unsure."""
    from ..pseudo.seeds import a2gnn_tag_seeds

    _check_inputs(samples, cams)
    return [
        cast(np.ndarray, a2gnn_tag_seeds(s["image"], cam, _tags(s, cam.shape[0]), **kwargs))
        for s, cam in zip(samples, cams)
    ]


def _auto_stride(height: int, width: int, max_nodes: int) -> int:
    return max(1, math.ceil(math.sqrt(height * width / max_nodes)))


@dataclass
class RandomWalkCRFConfig:
    """The settings of :func:`random_walk_crf_labels` (passed whole).

    Fields:
        stride: Pixel-graph stride (``None``: the smallest whose grid has at most
            ``max_nodes`` nodes).
        max_nodes: Node budget of the automatic stride.
        radius: Neighbourhood radius of the pixel graph.
        beta: Power of the affinities (PSA's ``beta``).
        log_t: ``2^log_t`` random-walk steps.
        bg_power: Background score ``(1 - max CAM)^bg_power``.
        sigma_rgb: Colour bandwidth of the Gaussian affinity.
        crf_preset: Dense CRF preset of the last step (:data:`pyg_wsss.pseudo.CRF_PRESETS`).
        crf: Run the dense CRF (else the argmax of the walked scores).
        device: Where the walk runs.
    """

    stride: int | None = None
    max_nodes: int = 6000
    radius: int = 5
    beta: float = 8.0
    log_t: int = 6
    bg_power: float = 6.0
    sigma_rgb: float = 0.1
    crf_preset: str = "psa"
    crf: bool = True
    device: torch.device | str = "cpu"


def _walk_config(config: RandomWalkCRFConfig | None,
                 options: dict[str, Any]) -> RandomWalkCRFConfig:
    from .._config import resolve_config

    return resolve_config(config, RandomWalkCRFConfig, options,
                          "random_walk_crf_labels(samples, cams, features, config)")


def _check_walk_inputs(samples: Any, cams: Any, features: Any,
                       cfg: RandomWalkCRFConfig) -> None:
    from .._checks import check_positive
    from ..pseudo.crf import _resolve_preset

    _check_inputs(samples, cams)
    if cfg.stride is not None:
        check_positive(cfg.stride, "stride", integer=True)
    check_positive(cfg.max_nodes, "max_nodes", integer=True)
    if features is not None:
        if isinstance(features, (str, bytes, Tensor, np.ndarray)) or not hasattr(
            features, "__len__"
        ):
            raise TypeError(
                "'features' must be a list (one list of feature maps per sample) or None, got "
                f"{type(features).__name__}"
            )
        if len(features) != len(samples):
            raise ValueError(
                f"'features' has {len(features)} entries for {len(samples)} samples"
            )
    if cfg.crf:
        _resolve_preset(cfg.crf_preset)
    try:
        torch.device(cfg.device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"'device' is not a torch device: {cfg.device!r} ({err})") from None


def random_walk_crf_labels(
    samples: Sequence[dict[str, Any]],
    cams: Sequence[Tensor],
    features: Sequence[Sequence[Tensor]] | None = None,
    config: RandomWalkCRFConfig | None = None,
    **options: Any,
) -> list[np.ndarray]:
    """CAM -> affinity (colour Gaussian, times the feature affinity of the deepest feature
    map when ``features`` are given) -> sparse random walk (``2^log_t`` steps, ``beta``) ->
    dense CRF over background + tags (``crf_preset``) -> argmax.

    The settings are one :class:`RandomWalkCRFConfig` (``config``) or, as before, its fields
    by keyword (``stride=4, log_t=3, crf=False``, ...; they override ``config``).
    ``stride=None`` picks the smallest stride whose grid has at most ``max_nodes`` nodes.
    """
    from ..pseudo import random_walk_from_image
    from ..pseudo.crf import dense_crf

    cfg = _walk_config(config, options)
    _check_walk_inputs(samples, cams, features, cfg)
    out = []
    for i, (s, cam) in enumerate(zip(samples, cams)):
        image = s["image"]
        tags = _tags(s, cam.shape[0])
        st = cfg.stride or _auto_stride(image.shape[0], image.shape[1], cfg.max_nodes)
        feat = None
        if features is not None and features[i]:
            feat = features[i][-1]
        probs = random_walk_from_image(
            image, cam, tags, features=feat, stride=st, radius=cfg.radius, beta=cfg.beta,
            log_t=cfg.log_t, bg_power=cfg.bg_power, sigma_rgb=cfg.sigma_rgb, device=cfg.device,
        )
        if cfg.crf:
            keep = [0] + (np.flatnonzero(tags > 0) + 1).tolist()
            probs = cast(Tensor, dense_crf(image, probs.cpu(), preset=cfg.crf_preset,
                                           labels=keep))  # a tensor in, a tensor out
        out.append(probs.argmax(0).cpu().numpy().astype(np.uint8))
    return out


def seed_precision(
    seeds: np.ndarray, mask: np.ndarray, ignore_index: int = 255
) -> tuple[float, float]:
    """``(precision, coverage)`` of a seed map against a ground-truth mask: the fraction of
    labelled seed pixels (on non-void ground truth) that are correct, and the fraction of
    non-void pixels that carry a seed."""
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
        raise TypeError(f"'ignore_index' must be an int, got {ignore_index!r}")
    arrays = []
    for name, value in (("seeds", seeds), ("mask", mask)):
        if isinstance(value, Tensor):
            value = value.detach().cpu().numpy()
        if not isinstance(value, np.ndarray):
            raise TypeError(
                f"'{name}' must be a numpy array or tensor, got {type(value).__name__}"
            )
        if value.dtype == bool or not (
            np.issubdtype(value.dtype, np.integer) or np.issubdtype(value.dtype, np.floating)
        ):
            raise TypeError(f"'{name}' must be an integer label map, got {value.dtype}")
        if np.issubdtype(value.dtype, np.floating) and not (
            np.isfinite(value).all() and (value == np.round(value)).all()
        ):
            raise ValueError(f"'{name}' must hold integer class ids (got fractions or NaN)")
        if value.ndim != 2:
            raise ValueError(f"'{name}' must have shape [H, W], got {value.shape}")
        if value.size and value.min() < 0:
            raise ValueError(f"'{name}' has negative labels (min {int(value.min())})")
        arrays.append(value)
    seeds, mask = arrays
    if seeds.shape != mask.shape:
        raise ValueError(f"'seeds' {seeds.shape} and 'mask' {mask.shape} differ in shape")
    valid = mask != ignore_index
    labelled = valid & (seeds != ignore_index)
    n = int(labelled.sum())
    precision = float((seeds[labelled] == mask[labelled]).mean()) if n else float("nan")
    coverage = n / max(int(valid.sum()), 1)
    return precision, coverage


@register_demo("Baselines")
def demo(ctx: DemoContext) -> dict[str, list[np.ndarray]]:
    """Rows "CAM (bg threshold)", "CAM seeds" (la/ha CRF seeds; 255 counts as wrong in the
    demo's mIoU — see :func:`seed_precision` for their precision) and "Random walk + CRF"
    (colour affinity; ``ctx.features`` are added to the affinity when ``ctx.fast`` is
    ``False``)."""
    rows: dict[str, list[np.ndarray]] = {}
    if not ctx.samples:
        return rows
    rows["CAM (bg threshold)"] = cam_threshold_labels(ctx.samples, ctx.cams)
    has_crf = available("pydensecrf.densecrf")
    if has_crf:
        rows["CAM seeds"] = cam_seed_labels(ctx.samples, ctx.cams)
    rows["Random walk + CRF" if has_crf else "Random walk"] = random_walk_crf_labels(
        ctx.samples,
        ctx.cams,
        # the feature affinity costs O(E d) per image and did not help on the synthetic
        # context (mIoU 0.379 vs 0.381 without CRF): colour only in the fast demo
        features=None if ctx.fast else ctx.features,
        log_t=5 if ctx.fast else 6,
        crf=has_crf,
        device=ctx.device,
    )
    return rows
