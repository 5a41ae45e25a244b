"""Edge weights on pixel graphs: Gaussian colour/position kernels and feature affinities."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .._checks import check_edge_index, check_positive, check_tensor

#: Named parameterisations of the colour/position kernel
#: ``exp(-|dc|^2 / (2 sigma_rgb^2) - |dp|^2 / (2 sigma_xy^2))``.
GAUSSIAN_PRESETS: dict[str, tuple[float, float]] = {
    # WSGCN paper (W 7): sigma1 = sqrt(3) on colour, sigma2 = 10 on position.
    "wsgcn_paper": (math.sqrt(3.0), 10.0),
    # WSGCN code: exp(-|drgb|^2 / 12 - |dxy|^2 / 20), rgb in [0, 1], xy in grid units.
    "wsgcn_code": (math.sqrt(6.0), math.sqrt(10.0)),
    # A2GNN / Gated CRF: sigma_xy = 6 (grid units), sigma_rgb = 0.1 (normalised image).
    "a2gnn": (0.1, 6.0),
}


def gaussian_edge_weight(
    colour: Tensor,
    pos: Tensor,
    edge_index: Tensor,
    sigma_rgb: float | None = None,
    sigma_xy: float | None = None,
    preset: str | None = None,
    squared: bool = True,
) -> Tensor:
    r"""Gaussian colour + position kernel on the edges of a graph (W 7, A 22):

    .. math::
        w_{ji} = \exp\left(-\frac{\|c_i - c_j\|^2}{2\sigma_{rgb}^2}
                           - \frac{\|p_i - p_j\|^2}{2\sigma_{xy}^2}\right)

    Args:
        colour: ``[N, C]`` node colours (any scale; the sigmas must match it).
        pos: ``[N, 2]`` node positions.
        edge_index: ``[2, E]``.
        sigma_rgb, sigma_xy: Kernel widths (> 0). Either both, or ``preset``.
        preset: ``"wsgcn_paper"`` (sqrt(3), 10), ``"wsgcn_code"`` (divisors 12 and 20),
            ``"a2gnn"`` (0.1, 6).
        squared: Squared distances (the Gaussian kernel; W 7, the Gated CRF and the
            authors' code) or, with ``False``, the plain Euclidean norms that A 13 prints
            (:math:`\|p_i - p_j\|_2 / 2\sigma^2`, a Laplacian-like kernel).

    Returns:
        ``[E]`` weights in ``(0, 1]``.
    """
    if preset is not None:
        if preset not in GAUSSIAN_PRESETS:
            raise ValueError(f"'preset' must be one of {tuple(GAUSSIAN_PRESETS)}, got {preset!r}")
        if sigma_rgb is not None or sigma_xy is not None:
            raise ValueError("give either 'preset' or 'sigma_rgb' and 'sigma_xy', not both")
        sigma_rgb, sigma_xy = GAUSSIAN_PRESETS[preset]
    if sigma_rgb is None or sigma_xy is None:
        raise ValueError("'sigma_rgb' and 'sigma_xy' are required (or a 'preset')")
    check_positive(sigma_rgb, "sigma_rgb")
    check_positive(sigma_xy, "sigma_xy")
    check_tensor(colour, "colour", ndim=2, floating=True, finite=True)
    check_tensor(pos, "pos", ndim=2, finite=True)
    if pos.size(0) != colour.size(0):
        raise ValueError(
            f"'pos' has {pos.size(0)} nodes but 'colour' has {colour.size(0)}"
        )
    check_edge_index(edge_index, colour.size(0))
    src, dst = edge_index[0].long(), edge_index[1].long()
    pos = pos.to(colour.dtype)
    d_rgb = (colour[dst] - colour[src]).pow(2).sum(-1)
    d_xy = (pos[dst] - pos[src]).pow(2).sum(-1)
    if not isinstance(squared, bool):
        raise TypeError(f"'squared' must be a bool, got {squared!r}")
    if not squared:
        d_rgb, d_xy = d_rgb.sqrt(), d_xy.sqrt()
    return torch.exp(-d_rgb / (2 * sigma_rgb**2) - d_xy / (2 * sigma_xy**2))


def feature_affinity(
    x: Tensor,
    edge_index: Tensor,
    threshold: float | None = None,
    chunk_size: int = 1 << 20,
) -> Tensor:
    r"""Feature affinity of AffinityNet / A2GNN (A 8, 14):

    .. math::
        E_{ji} = \exp\left(-\frac{1}{d}\|f_i - f_j\|_1\right)

    (the mean absolute difference over the ``d`` channels). With ``threshold`` (paper:
    ``1e-3``; code: none) weights below it are set to 0 (edges are kept, so shapes stay
    static; drop them with ``edge_index[:, w > 0]`` if wanted).

    Args:
        x: ``[N, d]`` node features.
        edge_index: ``[2, E]``.
        threshold: Optional cut in ``[0, 1)``.
        chunk_size: Edges per chunk, bounding the ``[chunk, d]`` gather.

    Returns:
        ``[E]`` weights in ``(0, 1]`` (differentiable w.r.t. ``x``).
    """
    check_tensor(x, "x", ndim=2, floating=True, finite=True)
    check_edge_index(edge_index, x.size(0))
    check_positive(chunk_size, "chunk_size", integer=True)
    if threshold is not None:
        check_positive(threshold, "threshold", strict=False)
        if threshold >= 1:
            raise ValueError(f"'threshold' must be < 1, got {threshold}")
    src, dst = edge_index[0].long(), edge_index[1].long()
    d = max(x.size(1), 1)
    parts = []
    for start in range(0, src.numel(), chunk_size):
        s, t = src[start : start + chunk_size], dst[start : start + chunk_size]
        parts.append((x[t] - x[s]).abs().sum(-1))
    dist = torch.cat(parts) if parts else x.new_zeros(0)
    weight = torch.exp(-dist / d)
    if threshold is not None:
        weight = torch.where(weight >= threshold, weight, torch.zeros_like(weight))
    return weight
