r"""Seed labels from class activation maps (CAMs).

The building blocks (SPEC section 6; NOTES.md sections 2.4, 3.5, 5.1, 10.5):

* :func:`normalize_cams` / :func:`cam_scores`: ReLU, per-class max or min-max normalisation,
  only the image's tags; background by power :math:`(1 - \max_c \mathrm{CAM}_c)^\alpha` or a
  constant threshold.
* :func:`crf_with_alpha`: the dense CRF fed the **un-normalised** stack
  ``[(1 - max CAM)^alpha, CAMs]`` over background + tags (the AffinityNet trick,
  ``normalized=False``; set ``crf_normalized=True`` to renormalise instead).
* :func:`la_ha_labels`: the low/high-alpha merge (la: alpha 4; ha: 32 WSGCN, 24 SEAM/A2GNN).
* :func:`confident_regions`: top-k % of CAM values per class (WSGCN 30 % of values > 0.1;
  A2GNN 40 % of values > 0.01) and background score > 0.8.
* :func:`crf_unsure`, :func:`vote_filter`.
* Composed: :func:`crf_seeds` with a :class:`CRFSeedConfig` preset,
  :meth:`CRFSeedConfig.wsgcn` (NOTES 2.4) or :meth:`CRFSeedConfig.a2gnn` (NOTES 3.5);
  :func:`wsgcn_partial_labels` and :func:`a2gnn_tag_seeds` are those two presets.

Every label map is ``uint8 [H, W]`` with class ids ``0..C`` (0 = background) and 255 =
unlabelled.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence, Union, overload

import numpy as np
import torch
from torch import Tensor

from .._checks import check_choice, check_fraction, check_positive
from .crf import CRFParams, _as_uint8_rgb, dense_crf

__all__ = [
    "normalize_cams",
    "cam_scores",
    "scores_to_labels",
    "cam_labels",
    "crf_with_alpha",
    "la_ha_labels",
    "confident_regions",
    "crf_score_stack",
    "crf_unsure",
    "vote_filter",
    "wsgcn_partial_labels",
    "a2gnn_tag_seeds",
    "cam_label_map",
    "CRFSeedConfig",
    "crf_seeds",
]

ArrayLike = Union[np.ndarray, Tensor]
IGNORE = 255


def _to_numpy_cams(cams: ArrayLike, name: str = "cams") -> np.ndarray:
    if isinstance(cams, Tensor):
        if cams.dtype == torch.bool or cams.is_complex():
            raise TypeError(f"'{name}' must be a real-valued (float) tensor, got {cams.dtype}")
        arr = cams.detach().cpu().double().numpy()
    elif isinstance(cams, np.ndarray):
        if cams.dtype == bool or not (
            np.issubdtype(cams.dtype, np.integer) or np.issubdtype(cams.dtype, np.floating)
        ):
            raise TypeError(f"'{name}' must be a real-valued (float) array, got {cams.dtype}")
        arr = cams.astype(np.float64, copy=False)
    else:
        raise TypeError(
            f"'{name}' must be a numpy array or torch.Tensor, got {type(cams).__name__}"
        )
    if arr.ndim != 3:
        raise ValueError(f"'{name}' must have shape [C, H, W], got {arr.shape}")
    if arr.shape[1] == 0 or arr.shape[2] == 0:
        raise ValueError(f"'{name}' is empty (shape {arr.shape})")
    if not np.isfinite(arr).all():
        raise ValueError(f"'{name}' contains NaN or infinite values")
    return arr


def _to_tag_mask(tags: ArrayLike | Sequence[float] | None, num_classes: int) -> np.ndarray:
    """Boolean ``[C]`` mask of present foreground classes (``None`` = all)."""
    if tags is None:
        return np.ones(num_classes, dtype=bool)
    if isinstance(tags, Tensor):
        t = tags.detach().cpu().numpy()
    else:
        t = np.asarray(tags)
    if t.ndim != 1 or t.shape[0] != num_classes:
        raise ValueError(
            f"'tags' must be a multi-hot vector of shape [{num_classes}] (one entry per CAM "
            f"channel), got shape {t.shape}"
        )
    if not np.issubdtype(t.dtype, np.number) and t.dtype != bool:
        raise TypeError(f"'tags' must be numeric, got {t.dtype}")
    if np.issubdtype(t.dtype, np.floating) and not np.isfinite(t).all():
        raise ValueError("'tags' contains NaN or infinite values")
    return t > 0


def normalize_cams(
    cams: ArrayLike,
    tags: ArrayLike | Sequence[float] | None = None,
    mode: str | None = "max",
    eps: float = 1e-5,
) -> np.ndarray:
    r"""ReLU and per-class normalisation of CAMs, zero for classes absent from ``tags``.

    * ``mode="max"`` (IRNet / WSGCN): :math:`\mathrm{relu}(M_c) / (\max \mathrm{relu}(M_c) +
      \epsilon)`.
    * ``mode="minmax"`` (SEAM / A2GNN): :math:`(M_c - \min - \epsilon) / (\max - \min +
      \epsilon)` on the ReLU'd map, negatives set to 0.
    * ``mode=None``: ReLU only.

    Args:
        cams: ``[C, H, W]`` CAMs over the C foreground classes.
        tags: ``[C]`` multi-hot image tags (``None``: all classes present).
        mode: ``"max" | "minmax" | None``.
        eps: Stabiliser (> 0).

    Returns:
        float64 ``[C, H, W]`` numpy array in ``[0, 1)``.
    """
    arr = _to_numpy_cams(cams)
    present = _to_tag_mask(tags, arr.shape[0])
    if mode is not None:
        check_choice(mode, ("max", "minmax"), "mode")
    check_positive(eps, "eps")
    out = np.zeros_like(arr)
    for c in np.flatnonzero(present):
        m = np.maximum(arr[c], 0.0)
        if mode == "max":
            m = m / (m.max() + eps)
        elif mode == "minmax":
            lo, hi = m.min(), m.max()
            m = np.maximum((m - lo - eps) / (hi - lo + eps), 0.0)
        out[c] = m
    return out


def cam_scores(
    cams: ArrayLike,
    tags: ArrayLike | Sequence[float] | None = None,
    bg_power: float | None = None,
    bg_threshold: float | None = None,
    normalize: str | None = "max",
    eps: float = 1e-5,
) -> Tensor:
    r"""Stack a background channel on the (normalised) CAMs: ``[C + 1, H, W]``.

    Background score (channel 0), exactly one of:

    * ``bg_power=alpha``: :math:`(1 - \max_c M_c)^\alpha` (PSA alpha 16, SEAM/A2GNN random walk
      6, la/ha seeds 4 and 32/24);
    * ``bg_threshold=t``: the constant ``t`` (IRNet's ``sem_seg_bg_thres`` 0.25; CAM
      evaluation thresholds 0.15-0.2).

    Args:
        cams: ``[C, H, W]`` CAMs (tensor or numpy).
        tags: ``[C]`` multi-hot tags; absent classes get score 0 (``None``: all present).
        bg_power, bg_threshold: See above.
        normalize: Per-class normalisation, see :func:`normalize_cams` (``None``: the CAMs
            are only ReLU'd and are expected to be in ``[0, 1]`` already).
        eps: Stabiliser of the normalisation.

    Returns:
        float32 tensor ``[C + 1, H, W]`` (on the device of ``cams`` if it is a tensor).
    """
    if (bg_power is None) == (bg_threshold is None):
        raise ValueError("give exactly one of 'bg_power' and 'bg_threshold'")
    if bg_power is not None:
        check_positive(bg_power, "bg_power", strict=False)
    else:
        check_positive(bg_threshold, "bg_threshold", strict=False)
    norm = normalize_cams(cams, tags, mode=normalize, eps=eps)
    norm = np.clip(norm, 0.0, None)
    if bg_power is not None:
        peak = np.clip(norm.max(axis=0, keepdims=True), 0.0, 1.0) if norm.shape[0] else 0.0
        bg = np.power(1.0 - peak, bg_power)
    else:
        bg = np.full((1,) + norm.shape[1:], float(bg_threshold))  # type: ignore[arg-type]
    out = torch.from_numpy(np.concatenate([bg, norm], axis=0).astype(np.float32))
    if isinstance(cams, Tensor):
        out = out.to(cams.device)
    return out


def scores_to_labels(scores: ArrayLike) -> np.ndarray:
    """``argmax`` over the channel axis of ``[K, H, W]`` scores as a ``uint8`` label map."""
    arr = _to_numpy_cams(scores, "scores")
    if arr.shape[0] > 256:
        raise ValueError("at most 255 classes fit a uint8 label map")
    return arr.argmax(axis=0).astype(np.uint8)


def cam_labels(
    cams: ArrayLike,
    tags: ArrayLike | Sequence[float] | None = None,
    bg_threshold: float = 0.2,
    normalize: str | None = "max",
) -> np.ndarray:
    """The plain CAM baseline: argmax of :func:`cam_scores` with a constant background
    threshold (no CRF). Returns ``uint8 [H, W]`` class ids (fully labelled)."""
    return scores_to_labels(cam_scores(cams, tags, bg_threshold=bg_threshold, normalize=normalize))


def crf_with_alpha(
    image: ArrayLike,
    cams: ArrayLike,
    tags: ArrayLike | Sequence[float] | None,
    alpha: float,
    preset: str | CRFParams | Sequence[float] = "psa",
    n_iter: int = 10,
    normalized: bool = False,
) -> np.ndarray:
    r"""Dense CRF on ``[(1 - max CAM)^alpha, CAMs]`` over background + the tagged classes.

    ``cams`` must already be normalised (e.g. :func:`normalize_cams`). The CRF runs over the
    ``1 + #tags`` channels only; the result is scattered back to ``[C + 1, H, W]`` with zeros
    for absent classes. ``normalized=False`` (default) feeds the scores un-normalised, as PSA,
    SEAM, WSGCN and A2GNN do (NOTES.md section 8, SEAM#2).

    Returns:
        float32 ``[C + 1, H, W]`` numpy array.
    """
    check_positive(alpha, "alpha", strict=False)
    img = _as_uint8_rgb(image)
    arr = _to_numpy_cams(cams)
    if arr.shape[1:] != img.shape[:2]:
        raise ValueError(f"'cams' has spatial size {arr.shape[1:]} but 'image' has {img.shape[:2]}")
    present = _to_tag_mask(tags, arr.shape[0])
    arr = np.where(present[:, None, None], arr, 0.0)
    if arr.size and (arr.min() < 0 or arr.max() > 1 + 1e-6):
        raise ValueError("'cams' must be normalised to [0, 1] (see normalize_cams)")
    peak = arr.max(axis=0, keepdims=True) if arr.shape[0] else np.zeros((1,) + arr.shape[1:])
    stack = np.concatenate([np.power(1.0 - peak, alpha), arr], axis=0)
    keep = [0] + (np.flatnonzero(present) + 1).tolist()
    out = dense_crf(
        img, stack, preset=preset, n_iter=n_iter, labels=keep, normalized=normalized, full=True
    )
    assert isinstance(out, np.ndarray)  # numpy in, numpy out
    return out


def la_ha_labels(crf_la: ArrayLike, crf_ha: ArrayLike) -> np.ndarray:
    """Merge the low-alpha (confident foreground) and high-alpha (confident background) CRF
    results: ``label = argmax(crf_la)``; where that is background -> 255; where
    ``argmax(crf_ha)`` is background -> 0 (PSA, NOTES.md 2.4 step 3)."""
    la = _to_numpy_cams(crf_la, "crf_la")
    ha = _to_numpy_cams(crf_ha, "crf_ha")
    if la.shape != ha.shape:
        raise ValueError(f"'crf_la' {la.shape} and 'crf_ha' {ha.shape} differ in shape")
    la_lab = la.argmax(0)
    label = la_lab.astype(np.uint8)
    label[la_lab == 0] = IGNORE
    label[ha.argmax(0) == 0] = 0
    return label


def confident_regions(
    scores: ArrayLike,
    classes: Sequence[int] | None = None,
    ratio: float = 0.3,
    min_score: float = 0.1,
    bg_threshold: float = 0.8,
) -> np.ndarray:
    r"""Confident pixels of a ``[C + 1, H, W]`` score stack (channel 0 = background).

    For a foreground class ``c``: among the pixels whose argmax is ``c`` and whose score
    exceeds ``min_score``, keep those strictly above the value at sorted position
    ``floor(n (1 - ratio))`` (the top ``ratio`` of them; WSGCN 0.3 with ``min_score`` 0.1,
    A2GNN 0.4 with 0.01). For background: argmax 0 and score > ``bg_threshold``. A class
    without candidate pixels contributes nothing.

    Args:
        scores: ``[C + 1, H, W]`` scores (e.g. :func:`cam_scores` with ``bg_power``).
        classes: Class ids to consider (default: all that occur in the argmax).
        ratio: Fraction kept per class, in ``[0, 1]``.
        min_score: Candidate threshold for foreground classes.
        bg_threshold: Background confidence threshold.

    Returns:
        Boolean ``[H, W]`` mask.
    """
    arr = _to_numpy_cams(scores, "scores")
    check_fraction(ratio, "ratio")
    check_positive(min_score, "min_score", strict=False)
    check_positive(bg_threshold, "bg_threshold", strict=False)
    arg = arr.argmax(0)
    if classes is None:
        classes = np.unique(arg).tolist()
    sure = np.zeros(arg.shape, dtype=bool)
    cls = np.asarray(classes)
    if cls.size and (cls.dtype == bool or not np.issubdtype(cls.dtype, np.integer)):
        raise TypeError(f"'classes' must be integer class ids, got {cls.dtype}")
    if cls.ndim > 1:
        raise ValueError(f"'classes' must be a sequence of class ids, got shape {cls.shape}")
    for c in cls.reshape(-1).tolist():
        c = int(c)
        if c < 0 or c >= arr.shape[0]:
            raise ValueError(f"'classes': class {c} is outside [0, {arr.shape[0] - 1}]")
        region = arg == c
        val = np.where(region, arr[c], 0.0)
        if c == 0:
            sure |= val > bg_threshold
            continue
        cand = np.sort(val[val > min_score])
        pos = int(cand.size * (1.0 - ratio))
        if cand.size == 0 or pos >= cand.size:
            continue
        sure |= val > cand[pos]
    return sure


def crf_score_stack(crf_la: ArrayLike, crf_ha: ArrayLike) -> np.ndarray:
    """``[crf_ha[bg], crf_la[fg...]]``: the high-alpha background and low-alpha foreground
    marginals (the score map WSGCN saves with its partial labels)."""
    la = _to_numpy_cams(crf_la, "crf_la")
    ha = _to_numpy_cams(crf_ha, "crf_ha")
    if la.shape != ha.shape:
        raise ValueError(f"'crf_la' {la.shape} and 'crf_ha' {ha.shape} differ in shape")
    return np.concatenate([ha[:1], la[1:]], axis=0)


def crf_unsure(crf_la: ArrayLike, crf_ha: ArrayLike, threshold: float = 0.8) -> np.ndarray:
    """Pixels where ``max([crf_ha[bg], crf_la[fg...]]) < threshold`` (boolean ``[H, W]``)."""
    check_positive(threshold, "threshold", strict=False)
    return crf_score_stack(crf_la, crf_ha).max(0) < threshold


def vote_filter(labels: ArrayLike, scores: ArrayLike) -> np.ndarray:
    """Keep a label only where it equals ``argmax(scores)``; elsewhere 255 (WSGCN's vote)."""
    if isinstance(labels, Tensor):
        lab = labels.detach().cpu().numpy()
    elif isinstance(labels, np.ndarray):
        lab = labels
    else:
        raise TypeError(
            f"'labels' must be a numpy array or torch.Tensor, got {type(labels).__name__}"
        )
    if lab.dtype == bool or not np.issubdtype(lab.dtype, np.integer):
        raise TypeError(f"'labels' must be an integer label map, got {lab.dtype}")
    arr = _to_numpy_cams(scores, "scores")
    if lab.shape != arr.shape[1:]:
        raise ValueError(f"'labels' {lab.shape} and 'scores' {arr.shape[1:]} differ in size")
    bad = (lab != IGNORE) & ((lab < 0) | (lab >= arr.shape[0]))
    if bad.any():
        raise ValueError(
            f"'labels' has labels outside [0, {arr.shape[0] - 1}] (and not {IGNORE}): "
            f"{np.unique(lab[bad])[:10].tolist()}"
        )
    arg = arr.argmax(0)
    return np.where(arg == lab, arg, IGNORE).astype(np.uint8)


@dataclass(frozen=True)
class CRFSeedConfig:
    r"""The settings of the la/ha CRF seed recipe (:func:`crf_seeds`), one preset per system.

    * :meth:`wsgcn` (NOTES.md 2.4): max-normalised CAMs, alpha 4 / 32, the
      ``"wsgcn_partial"`` CRF (4/3, 20/3/10), top 30 % of CAM values > 0.1, with the vote.
    * :meth:`a2gnn` (NOTES.md 3.5, SEAM's settings): min-max normalised CAMs, alpha 4 / 24,
      the PSA CRF (3/3, 80/13/10), top 40 % of CAM values > 0.01, no vote.

    Fields:
        alpha_low, alpha_high: The low (confident foreground) and high (confident
            background) powers of ``(1 - max CAM)``.
        ratio: Fraction of each class's CAM values kept as confident (:func:`confident_regions`).
        min_score: Candidate threshold of a foreground CAM value.
        bg_confidence: Background confidence threshold of ``(1 - max CAM)^alpha_high``.
        crf_threshold: Pixels whose CRF score stack peaks below it are unsure (255).
        preset: Dense CRF preset (:func:`pyg_wsss.pseudo.dense_crf`).
        n_iter: Mean-field iterations.
        normalize: CAM normalisation, ``"max" | "minmax" | None`` (:func:`normalize_cams`).
        vote: Keep only labels equal to the argmax of the CRF score stack.
        crf_normalized: Renormalise the CRF input instead of the upstream un-normalised
            scores.
        bg_fallback: Ours (``None`` = upstream): when no pixel gets a background seed, the
            unlabelled pixels whose max CAM lies in the lowest ``bg_fallback`` fraction of
            the image become background seeds (without background seeds a GNN labels the
            whole image as foreground).

    Override a preset with :func:`dataclasses.replace` or :meth:`replace`, e.g.
    ``CRFSeedConfig.wsgcn().replace(bg_fallback=0.3)``.
    """

    alpha_low: float = 4
    alpha_high: float = 32
    ratio: float = 0.3
    min_score: float = 0.1
    bg_confidence: float = 0.8
    crf_threshold: float = 0.8
    preset: str | CRFParams | Sequence[float] = "wsgcn_partial"
    n_iter: int = 10
    normalize: str | None = "max"
    vote: bool = True
    crf_normalized: bool = False
    bg_fallback: float | None = None

    @classmethod
    def wsgcn(cls, **overrides: Any) -> "CRFSeedConfig":
        """WSGCN's partial-label settings (the defaults of :func:`wsgcn_partial_labels`)."""
        return cls(**overrides)

    @classmethod
    def a2gnn(cls, **overrides: Any) -> "CRFSeedConfig":
        """A2GNN's (SEAM's) tag-seed settings (the defaults of :func:`a2gnn_tag_seeds`)."""
        values: dict[str, Any] = dict(alpha_high=24, ratio=0.4, min_score=0.01, preset="psa",
                                      normalize="minmax", vote=False)
        values.update(overrides)
        return cls(**values)

    def replace(self, **overrides: Any) -> "CRFSeedConfig":
        """A copy with some fields changed (an unknown name is a ``TypeError`` naming it)."""
        from .._config import replace_fields

        return replace_fields(self, overrides, "CRFSeedConfig.replace()")

    def check(self) -> None:
        """Validate the numeric fields (each error names its field)."""
        check_positive(self.alpha_low, "alpha_low", strict=False)
        check_positive(self.alpha_high, "alpha_high", strict=False)
        check_fraction(self.ratio, "ratio")
        check_positive(self.min_score, "min_score", strict=False)
        check_positive(self.bg_confidence, "bg_confidence", strict=False)
        check_positive(self.crf_threshold, "crf_threshold", strict=False)
        check_positive(self.n_iter, "n_iter", strict=False, integer=True)
        if self.bg_fallback is not None:
            check_fraction(self.bg_fallback, "bg_fallback")


_PRESET_OF = {"wsgcn_partial_labels": "wsgcn", "a2gnn_tag_seeds": "a2gnn", "crf_seeds": "wsgcn"}


def _seed_config(config: CRFSeedConfig | None, preset: CRFSeedConfig,
                 overrides: dict[str, Any], caller: str) -> CRFSeedConfig:
    """``config`` (default ``preset``) with the keyword ``overrides`` applied."""
    from .._config import resolve_config

    return resolve_config(config, CRFSeedConfig, overrides,
                          f"{caller}(image, cams, tags, config)", default=preset,
                          hint=f"CRFSeedConfig.{_PRESET_OF[caller]}()")


@overload
def crf_seeds(
    image: ArrayLike,
    cams: ArrayLike,
    tags: ArrayLike | Sequence[float] | None,
    config: CRFSeedConfig | None = ...,
    return_scores: Literal[False] = ...,
) -> np.ndarray: ...
@overload
def crf_seeds(
    image: ArrayLike,
    cams: ArrayLike,
    tags: ArrayLike | Sequence[float] | None,
    config: CRFSeedConfig | None,
    return_scores: Literal[True],
) -> tuple[np.ndarray, np.ndarray]: ...
@overload
def crf_seeds(
    image: ArrayLike,
    cams: ArrayLike,
    tags: ArrayLike | Sequence[float] | None,
    config: CRFSeedConfig | None = ...,
    *,
    return_scores: Literal[True],
) -> tuple[np.ndarray, np.ndarray]: ...
@overload
def crf_seeds(
    image: ArrayLike,
    cams: ArrayLike,
    tags: ArrayLike | Sequence[float] | None,
    config: CRFSeedConfig | None = ...,
    return_scores: bool = ...,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]: ...
def crf_seeds(
    image: ArrayLike,
    cams: ArrayLike,
    tags: ArrayLike | Sequence[float] | None,
    config: CRFSeedConfig | None = None,
    return_scores: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    r"""Seed labels from CAMs by the la/ha CRF recipe (NOTES.md 2.4, 3.5), ``config`` whole.

    1. CAMs ReLU'd and normalised over the tags (``config.normalize``);
       ``cam_all = [(1 - max)^alpha_high, CAMs]``.
    2. Dense CRF (``config.preset``) on the **un-normalised** ``[(1 - max)^alpha, CAMs]`` for
       ``alpha_low`` (la) and ``alpha_high`` (ha).
    3. :func:`la_ha_labels`.
    4. Confident: top ``ratio`` of CAM values > ``min_score`` inside each class's argmax
       region of ``cam_all`` (classes present in ``argmax(crf_la)``), background
       ``cam_all[0] > bg_confidence``.
    5. CRF-unsure: ``max([crf_ha[bg], crf_la[fg]]) < crf_threshold``; unsure or not
       confident -> 255.
    6. With ``vote``: keep only labels equal to ``argmax([crf_ha[bg], crf_la[fg]])``.
    7. With ``bg_fallback``: background seeds when there is none (see
       :class:`CRFSeedConfig`).

    Args:
        image: ``uint8 [H, W, 3]``.
        cams: ``[C, H, W]`` raw or normalised CAMs.
        tags: ``[C]`` multi-hot; an image with no tag yields background/255 only.
        config: :class:`CRFSeedConfig` (default :meth:`CRFSeedConfig.wsgcn`).
        return_scores: Also return the float32 ``[C + 1, H, W]`` CRF score stack.

    Returns:
        ``uint8 [H, W]`` (0 = background, 1..C, 255 = unlabelled) [, scores].
    """
    cfg = _seed_config(config, CRFSeedConfig.wsgcn(), {}, "crf_seeds")
    img = _as_uint8_rgb(image)
    arr = _to_numpy_cams(cams)
    if arr.shape[1:] != img.shape[:2]:
        raise ValueError(
            f"'cams' has spatial size {arr.shape[1:]} but 'image' has {img.shape[:2]} "
            "(resize one of them first)"
        )
    present = _to_tag_mask(tags, arr.shape[0])
    cfg.check()
    norm = normalize_cams(arr, present, mode=cfg.normalize)
    # confident-region scores: bg by the high power (NOTES 2.4 step 1)
    peak = norm.max(0, keepdims=True) if norm.shape[0] else np.zeros((1,) + norm.shape[1:])
    cam_all = np.concatenate([np.power(1.0 - peak, cfg.alpha_high), norm], axis=0)
    crf_la, crf_ha = (crf_with_alpha(img, norm, present, alpha, cfg.preset, cfg.n_iter,
                                     cfg.crf_normalized)
                      for alpha in (cfg.alpha_low, cfg.alpha_high))
    label = la_ha_labels(crf_la, crf_ha)
    classes = np.unique(crf_la.argmax(0)).tolist()
    sure = confident_regions(cam_all, classes, cfg.ratio, cfg.min_score, cfg.bg_confidence)
    unsure = crf_unsure(crf_la, crf_ha, cfg.crf_threshold) | ~sure
    label[unsure] = IGNORE
    stack = crf_score_stack(crf_la, crf_ha)
    if cfg.vote:
        label = vote_filter(label, stack)
    if cfg.bg_fallback is not None and not (label == 0).any():
        # upstream's background rule (1 - max CAM)^alpha > 0.8 needs max CAM < ~0.01, which
        # weak CAMs never reach: then the least activated unlabelled pixels become background
        cut = np.quantile(peak[0], float(cfg.bg_fallback))
        label = label.copy()
        label[(label == IGNORE) & (peak[0] <= cut)] = 0
    stack = stack.astype(np.float32)
    return (label, stack) if return_scores else label


@overload
def wsgcn_partial_labels(
    image: ArrayLike,
    cams: ArrayLike,
    tags: ArrayLike | Sequence[float] | None,
    config: CRFSeedConfig | None = ...,
    *,
    return_scores: Literal[False] = ...,
    **overrides: Any,
) -> np.ndarray: ...
@overload
def wsgcn_partial_labels(
    image: ArrayLike,
    cams: ArrayLike,
    tags: ArrayLike | Sequence[float] | None,
    config: CRFSeedConfig | None = ...,
    *,
    return_scores: Literal[True],
    **overrides: Any,
) -> tuple[np.ndarray, np.ndarray]: ...
@overload
def wsgcn_partial_labels(
    image: ArrayLike,
    cams: ArrayLike,
    tags: ArrayLike | Sequence[float] | None,
    config: CRFSeedConfig | None = ...,
    *,
    return_scores: bool = ...,
    **overrides: Any,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]: ...
def wsgcn_partial_labels(
    image: ArrayLike,
    cams: ArrayLike,
    tags: ArrayLike | Sequence[float] | None,
    config: CRFSeedConfig | None = None,
    *,
    return_scores: bool = False,
    **overrides: Any,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    r"""WSGCN's partial pseudo labels (NOTES.md 2.4; run at the CAM resolution, stride 4).

    The :meth:`CRFSeedConfig.wsgcn` preset of :func:`crf_seeds`: CAMs max-normalised over
    the tags, dense CRF ``"wsgcn_partial"`` (4/3, 20/3/10) on the un-normalised
    ``[(1 - max)^alpha, CAMs]`` for alpha 4 (la) and 32 (ha), :func:`la_ha_labels`, top 30 %
    of CAM values > 0.1 confident, background ``cam_all[0] > 0.8``, CRF-unsure below 0.8,
    then the vote (keep only labels equal to ``argmax([crf_ha[bg], crf_la[fg]])``).

    Args:
        image: ``uint8 [H, W, 3]``.
        cams: ``[C, H, W]`` raw or normalised CAMs.
        tags: ``[C]`` multi-hot; an image with no tag yields background/255 only.
        config: A whole :class:`CRFSeedConfig` instead of the preset.
        return_scores: Also return the ``[C + 1, H, W]`` CRF score stack.
        **overrides: Any :class:`CRFSeedConfig` field by keyword (``alpha_low``,
            ``alpha_high``, ``ratio``, ``min_score``, ``bg_confidence``, ``crf_threshold``,
            ``preset``, ``n_iter``, ``normalize``, ``vote``, ``crf_normalized``,
            ``bg_fallback``), as before the config existed.

    Returns:
        ``uint8 [H, W]`` (0 = background, 1..C, 255 = unlabelled) [, scores].
    """
    cfg = _seed_config(config, CRFSeedConfig.wsgcn(), overrides, "wsgcn_partial_labels")
    return crf_seeds(image, cams, tags, cfg, return_scores=return_scores)


@overload
def a2gnn_tag_seeds(
    image: ArrayLike,
    cams: ArrayLike,
    tags: ArrayLike | Sequence[float] | None,
    config: CRFSeedConfig | None = ...,
    *,
    return_scores: Literal[False] = ...,
    **overrides: Any,
) -> np.ndarray: ...
@overload
def a2gnn_tag_seeds(
    image: ArrayLike,
    cams: ArrayLike,
    tags: ArrayLike | Sequence[float] | None,
    config: CRFSeedConfig | None = ...,
    *,
    return_scores: Literal[True],
    **overrides: Any,
) -> tuple[np.ndarray, np.ndarray]: ...
@overload
def a2gnn_tag_seeds(
    image: ArrayLike,
    cams: ArrayLike,
    tags: ArrayLike | Sequence[float] | None,
    config: CRFSeedConfig | None = ...,
    *,
    return_scores: bool = ...,
    **overrides: Any,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]: ...
def a2gnn_tag_seeds(
    image: ArrayLike,
    cams: ArrayLike,
    tags: ArrayLike | Sequence[float] | None,
    config: CRFSeedConfig | None = None,
    *,
    return_scores: bool = False,
    **overrides: Any,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    r"""A2GNN's image-level seeds :math:`M'_I` (NOTES.md 3.5; A 5 "top 40 %").

    The :meth:`CRFSeedConfig.a2gnn` preset of :func:`crf_seeds` (SEAM's settings): min-max
    normalised CAMs, alpha 4 / 24, PSA CRF (3/3, 80/13/10), top 40 % of CAM values > 0.01,
    background ``(1 - max)^24 > 0.8``, CRF-unsure threshold 0.8, no vote (``vote=True`` adds
    it). ``config``, ``return_scores`` and the keyword overrides (any
    :class:`CRFSeedConfig` field, e.g. ``bg_fallback``) as in :func:`wsgcn_partial_labels`.
    """
    cfg = _seed_config(config, CRFSeedConfig.a2gnn(), overrides, "a2gnn_tag_seeds")
    return crf_seeds(image, cams, tags, cfg, return_scores=return_scores)


def cam_label_map(
    image: ArrayLike,
    cams: ArrayLike,
    tags: ArrayLike | Sequence[float] | None,
    alpha_low: float = 4,
    alpha_high: float = 24,
    preset: str | CRFParams | Sequence[float] = "psa",
    n_iter: int = 10,
    normalize: str | None = "minmax",
) -> np.ndarray:
    """The la/ha CRF label map before the confident selection (255 where la and ha
    disagree about background): the image-level seed map :math:`M_I` used by the box-seed
    fusion (A 1, 4)."""
    img = _as_uint8_rgb(image)
    arr = _to_numpy_cams(cams)
    if arr.shape[1:] != img.shape[:2]:
        raise ValueError(f"'cams' has spatial size {arr.shape[1:]} but 'image' has {img.shape[:2]}")
    present = _to_tag_mask(tags, arr.shape[0])
    check_positive(alpha_low, "alpha_low", strict=False)
    check_positive(alpha_high, "alpha_high", strict=False)
    check_positive(n_iter, "n_iter", strict=False, integer=True)
    norm = normalize_cams(arr, present, mode=normalize)
    crf_la = crf_with_alpha(img, norm, present, alpha_low, preset, n_iter)
    crf_ha = crf_with_alpha(img, norm, present, alpha_high, preset, n_iter)
    return la_ha_labels(crf_la, crf_ha)
