"""Fully connected (dense) CRF post-processing through ``pydensecrf`` (extra ``crf``).

The mean-field inference of Krähenbühl & Koltun with a Gaussian (position) kernel and a
bilateral (position + colour) kernel, each with a Potts compatibility. The named presets are
the parameter sets of the upstream pipelines (SPEC section 6, NOTES.md sections 2.4-2.6, 3.4,
3.5, 4.3, 5.1).
"""
from __future__ import annotations

from typing import NamedTuple, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from .._checks import check_choice, check_positive
from .._optional import require

__all__ = ["CRFParams", "CRF_PRESETS", "dense_crf"]


class CRFParams(NamedTuple):
    """Kernel parameters of a dense CRF: Gaussian ``sxy``/``compat`` and bilateral
    ``sxy``/``srgb``/``compat`` (pydensecrf's ``addPairwiseGaussian`` /
    ``addPairwiseBilateral`` arguments; ``sxy`` in pixels, ``srgb`` in 0..255 colour units).
    """

    gaussian_sxy: float
    gaussian_compat: float
    bilateral_sxy: float
    bilateral_srgb: float
    bilateral_compat: float


#: Named parameter sets ``(gaussian sxy, compat, bilateral sxy, srgb, compat)``.
CRF_PRESETS: dict[str, CRFParams] = {
    # PSA / SEAM label CRF for the la/ha seeds, A2GNN seeds (NOTES 3.5, 5.1).
    "psa": CRFParams(3, 3, 80, 13, 10),
    "seam": CRFParams(3, 3, 80, 13, 10),
    # IRNet label CRF (crf_inference_label, NOTES 2.6).
    "irn": CRFParams(3, 3, 50, 5, 10),
    # A2GNN inference CRF (NOTES 3.4).
    "a2gnn": CRFParams(2, 3, 50, 5, 10),
    # WSGCN final CRF on the GCN output (NOTES 2.5; the code applies it to softmax(probs)).
    "wsgcn": CRFParams(3, 3, 50, 5, 3),
    # WSGCN partial-label score CRF at 1/4 resolution (NOTES 2.4).
    "wsgcn_partial": CRFParams(4, 3, 20, 3, 10),
    # deeplab-pytorch post-processing (NOTES 4.3: POS_W 3, POS_XY_STD 1, BI_W 4,
    # BI_XY_STD 67, BI_RGB_STD 3).
    "deeplab": CRFParams(1, 3, 67, 3, 4),
}

ArrayLike = Union[np.ndarray, Tensor]


def _as_uint8_rgb(image: ArrayLike, name: str = "image") -> np.ndarray:
    if isinstance(image, Tensor):
        image = image.detach().cpu().numpy()
    if not isinstance(image, np.ndarray):
        raise TypeError(
            f"'{name}' must be a numpy array or torch.Tensor, got {type(image).__name__}"
        )
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"'{name}' must be an RGB image of shape [H, W, 3], got {image.shape}")
    if image.dtype != np.uint8:
        raise TypeError(f"'{name}' must be uint8 RGB (0..255), got {image.dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"'{name}' is empty (shape {image.shape})")
    return np.ascontiguousarray(image)


def _resolve_preset(preset: str | CRFParams | Sequence[float]) -> CRFParams:
    if isinstance(preset, str):
        check_choice(preset, tuple(CRF_PRESETS), "preset")
        return CRF_PRESETS[preset]
    if isinstance(preset, (tuple, list)) and len(preset) == 5:
        params = CRFParams(*(float(v) for v in preset))
        for field, value in zip(CRFParams._fields, params):
            check_positive(value, f"preset.{field}", strict=field.endswith("sxy")
                           or field.endswith("srgb"))
        return params
    raise TypeError(
        f"'preset' must be one of {tuple(CRF_PRESETS)} or 5 numbers "
        f"(gaussian sxy, compat, bilateral sxy, srgb, compat), got {preset!r}"
    )


def dense_crf(
    image: ArrayLike,
    probs: ArrayLike,
    preset: str | CRFParams | Sequence[float] = "deeplab",
    n_iter: int = 10,
    labels: Sequence[int] | None = None,
    scores: str = "probabilities",
    normalized: bool = True,
    clip: float = 1e-5,
    full: bool = True,
) -> ArrayLike:
    r"""Dense CRF inference (pydensecrf) on per-pixel class scores.

    The unary is :math:`\psi_u(x_i = k) = -\log \max(p_{ik}, \text{clip})` (``p`` clipped to
    ``[clip, 1]``, as pydensecrf's ``unary_from_softmax``); the pairwise term is
    :math:`w_g \exp(-\|p_i - p_j\|^2 / 2 s_{xy,g}^2) + w_b \exp(-\|p_i - p_j\|^2 /
    2 s_{xy,b}^2 - \|I_i - I_j\|^2 / 2 s_{rgb}^2)` with a Potts compatibility.

    How ``probs`` becomes :math:`p`:

    * ``scores="probabilities"`` and ``normalized=True`` (default): non-negative scores are
      divided by their per-pixel sum over the kept channels (all-zero pixels become uniform).
    * ``scores="probabilities"`` and ``normalized=False``: the scores are used **as given**
      (un-normalised, only clipped to ``[clip, 1]``). This is the AffinityNet/SEAM/WSGCN
      "crf_with_alpha" behaviour (NOTES.md section 8, SEAM#2): the stack
      ``[(1 - max CAM)^alpha, CAMs]`` does not sum to one, and renormalising it changes the
      seeds. Use it for the la/ha seeds.
      Note: scaling a pixel's scores adds a constant to its unary, which mean-field
      inference ignores, so un-normalised and renormalised scores give the same marginals
      except where the clipping to ``[clip, 1]`` acts (e.g. the tiny ``(1 - max)^32``
      background scores far from the background) — tested in ``tests/pseudo/test_crf.py``.
    * ``scores="logits"``: a softmax over the kept channels. Passing probabilities here
      reproduces WSGCN's final CRF, which applies a second softmax (NOTES.md 2.5).

    Args:
        image: ``uint8 [H, W, 3]`` RGB image (numpy or tensor).
        probs: ``[K, H, W]`` scores (numpy or tensor, finite).
        preset: A name of :data:`CRF_PRESETS` (``"psa"``/``"seam"`` 3/3, 80/13/10;
            ``"irn"`` 3/3, 50/5/10; ``"a2gnn"`` 2/3, 50/5/10; ``"wsgcn"`` 3/3, 50/5/3;
            ``"wsgcn_partial"`` 4/3, 20/3/10; ``"deeplab"`` 1/3, 67/3/4) or five numbers
            ``(gaussian sxy, compat, bilateral sxy, srgb, compat)``.
        n_iter: Mean-field iterations (>= 0; 0 returns the normalised unary).
        labels: Restrict the CRF to these channels of ``probs`` (e.g. background and the
            image's tags, as every upstream pipeline does). ``None`` = all ``K``.
        scores: ``"probabilities"`` or ``"logits"`` (see above).
        normalized: For ``scores="probabilities"``: renormalise per pixel (``True``) or
            feed the scores un-normalised (``False``).
        clip: Smallest probability in the unary (> 0).
        full: With ``labels``: return ``[K, H, W]`` with zeros on the dropped channels
            (``True``, so ``argmax`` gives class ids) or only ``[len(labels), H, W]``.

    Returns:
        The CRF marginals, float32, same container type (numpy / tensor on the input's
        device) as ``probs``; each pixel sums to one over the kept channels.

    Raises:
        ImportError: When ``pydensecrf`` (PyPI ``pydensecrf2``, extra ``crf``) is missing.
    """
    dcrf = require("pydensecrf.densecrf", "dense_crf")
    img = _as_uint8_rgb(image)
    params = _resolve_preset(preset)
    check_choice(scores, ("probabilities", "logits"), "scores")
    check_positive(n_iter, "n_iter", strict=False, integer=True)
    check_positive(clip, "clip")
    if clip >= 1:
        raise ValueError(f"'clip' must be < 1, got {clip}")
    arr = _probs_array(probs, img)
    k, h, w = arr.shape
    keep = _kept_channels(labels, k)
    sub = _crf_probabilities(arr[keep], scores, normalized)
    n = len(keep)
    unary = -np.log(np.clip(sub, clip, 1.0)).reshape(n, -1).astype(np.float32)
    if n == 1:
        q = np.ones((1, h, w), dtype=np.float32)
    else:
        crf = dcrf.DenseCRF2D(w, h, n)
        crf.setUnaryEnergy(np.ascontiguousarray(unary))
        crf.addPairwiseGaussian(sxy=params.gaussian_sxy, compat=params.gaussian_compat)
        crf.addPairwiseBilateral(
            sxy=params.bilateral_sxy,
            srgb=params.bilateral_srgb,
            rgbim=np.copy(img),
            compat=params.bilateral_compat,
        )
        q = np.asarray(crf.inference(int(n_iter)), dtype=np.float32).reshape(n, h, w)

    if labels is not None and full:
        out = np.zeros((k, h, w), dtype=np.float32)
        out[keep] = q
    else:
        out = q
    if isinstance(probs, Tensor):
        return torch.from_numpy(out).to(probs.device)
    return out


def _probs_array(probs: ArrayLike, img: np.ndarray) -> np.ndarray:
    """``probs`` as a finite float64 ``[K, H, W]`` array of the image's size."""
    if isinstance(probs, Tensor):
        arr = probs.detach().cpu().double().numpy()
    elif isinstance(probs, np.ndarray):
        arr = probs.astype(np.float64, copy=False)
    else:
        raise TypeError(
            f"'probs' must be a numpy array or torch.Tensor, got {type(probs).__name__}"
        )
    if arr.ndim != 3:
        raise ValueError(f"'probs' must have shape [K, H, W], got {arr.shape}")
    k, h, w = arr.shape
    if k == 0:
        raise ValueError("'probs' has no channels")
    if (h, w) != img.shape[:2]:
        raise ValueError(f"'probs' has spatial size {(h, w)} but 'image' has {img.shape[:2]}")
    if not np.isfinite(arr).all():
        raise ValueError("'probs' contains NaN or infinite values")
    return arr


def _kept_channels(labels: Sequence[int] | None, k: int) -> np.ndarray:
    """The channel indices the CRF runs over (``labels``, checked; ``None``: all ``k``)."""
    if labels is None:
        return np.arange(k)
    keep = np.asarray(list(labels), dtype=np.int64).reshape(-1)
    if keep.size == 0:
        raise ValueError("'labels' is empty")
    if keep.min() < 0 or keep.max() >= k:
        raise ValueError(f"'labels' must index channels in [0, {k - 1}], got {keep.tolist()}")
    if np.unique(keep).size != keep.size:
        raise ValueError(f"'labels' has duplicates: {keep.tolist()}")
    return keep


def _crf_probabilities(sub: np.ndarray, scores: str, normalized: bool) -> np.ndarray:
    """The kept channels' scores as the CRF's ``p`` (softmax of logits, renormalised or
    as given; see :func:`dense_crf`)."""
    if scores == "logits":
        sub = sub - sub.max(axis=0, keepdims=True)
        sub = np.exp(sub)
        return sub / sub.sum(axis=0, keepdims=True)
    if (sub < 0).any():
        raise ValueError(
            "'probs' has negative values; pass scores='logits' for unnormalised logits"
        )
    if normalized:
        total = sub.sum(axis=0, keepdims=True)
        sub = np.where(total > 0, sub / np.where(total > 0, total, 1.0), 1.0 / len(sub))
    return sub
