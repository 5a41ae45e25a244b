"""Superpixel graphs: SLIC regions are nodes, edges join regions that touch.

Everything after the segmentation is vectorised torch (no Python loop over regions): the
region adjacency compares the segment ids of horizontally / vertically (and optionally
diagonally) adjacent pixels, and the per-region means are scatter means.
"""
from __future__ import annotations

from typing import Any, Sequence, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Batch, Data
from torch_geometric.utils import scatter

from .._checks import as_rgb_image, check_choice, check_positive, check_tensor

__all__ = ["SuperpixelGraph", "superpixel_graph", "region_adjacency", "slic_segments"]


class SuperpixelGraph(Data):
    """A :class:`~torch_geometric.data.Data` whose nodes are the superpixels of an image.

    Attributes:
        x (Tensor [R, C]): mean features per region (the mean colour if no features given).
        colour (Tensor [R, 3]): mean RGB in ``[0, 1]``.
        pos (Tensor [R, 2]): centroid ``(row, col)`` in pixels.
        area (LongTensor [R]): pixels per region.
        edge_index (LongTensor [2, E]): region adjacency, both directions, sorted by
            (target, source); ``edge_index[0]`` = source.
        segments (LongTensor [H, W]): region id of each pixel (``[B, H, W]`` when batched, with
            the ids offset like node indices, so ``values[segments]`` works on a batch).
        image_size (tuple): ``(H, W)``.
    """

    def __cat_dim__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        if key == "segments":
            return None  # stack -> [B, H, W]
        return super().__cat_dim__(key, value, *args, **kwargs)

    def __inc__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        if key == "segments":
            return self.num_nodes
        return super().__inc__(key, value, *args, **kwargs)

    def to_pixels(self, values: Tensor) -> Tensor:
        """Broadcast per-region ``values [R, ...]`` back to the pixels: ``[H, W, ...]``
        (``[B, H, W, ...]`` on a batch). E.g. region class labels -> a label map."""
        check_tensor(values, "values")
        if values.dim() == 0 or values.size(0) != self.num_nodes:
            raise ValueError(
                f"'values' must have one row per region ({self.num_nodes}), got shape "
                f"{tuple(values.shape)}"
            )
        return values[self.segments.to(values.device)]


def slic_segments(
    image: Any,
    n_segments: int = 100,
    compactness: float = 10.0,
    sigma: float = 0.0,
    max_num_iter: int = 10,
    **kwargs: Any,
) -> np.ndarray:
    """SLIC superpixels (scikit-image, ``start_label=0``), relabelled to ``0 .. R-1``.

    Returns:
        ``int64 [H, W]`` numpy array.
    """
    from skimage.segmentation import slic

    img = as_rgb_image(image)
    check_positive(n_segments, "n_segments", integer=True)
    check_positive(compactness, "compactness")
    seg = slic(
        img, n_segments=int(n_segments), compactness=float(compactness), sigma=sigma,
        max_num_iter=max_num_iter, start_label=0, channel_axis=-1, **kwargs,
    )
    _, inv = np.unique(seg, return_inverse=True)
    return inv.reshape(seg.shape).astype(np.int64)


def region_adjacency(
    segments: Tensor,
    num_regions: int | None = None,
    connectivity: int = 4,
    self_loops: bool = False,
) -> Tensor:
    """Region adjacency graph of a label map: an edge between two regions when some pixel of
    one is a 4- (or 8-) neighbour of a pixel of the other. Both directions, no duplicates,
    sorted by (target, source).

    Args:
        segments: ``[H, W]`` integer region ids in ``[0, R)`` (negative ids or ids
            ``>= num_regions`` raise :class:`ValueError`).
        num_regions: ``R`` (default ``max + 1``).
        connectivity: ``4`` (horizontal / vertical neighbours) or ``8`` (also diagonals).
        self_loops: Add ``r -> r`` for every region.

    Returns:
        ``edge_index [2, E]`` (int64).
    """
    check_tensor(segments, "segments", ndim=2, floating=False)
    check_choice(connectivity, (4, 8), "connectivity")  # type: ignore[arg-type]
    if segments.dtype == torch.bool:
        raise TypeError(f"'segments' must be an integer label map, got {segments.dtype}")
    seg = segments.long()
    if num_regions is not None:
        check_positive(num_regions, "num_regions", strict=False, integer=True)
    if seg.numel():  # building the graph syncs anyway: the range check is free
        lo, hi = int(seg.min()), int(seg.max())
        if lo < 0:
            raise ValueError(f"'segments' has negative region ids (min {lo})")
        if num_regions is not None and hi >= num_regions:
            raise ValueError(
                f"'segments' has region id {hi} but 'num_regions' is {num_regions}"
            )
    r = int(seg.max()) + 1 if num_regions is None and seg.numel() else int(num_regions or 0)
    pairs = [(seg[:, :-1], seg[:, 1:]), (seg[:-1, :], seg[1:, :])]
    if connectivity == 8:
        pairs += [(seg[:-1, :-1], seg[1:, 1:]), (seg[:-1, 1:], seg[1:, :-1])]
    a = torch.cat([p[0].reshape(-1) for p in pairs])
    b = torch.cat([p[1].reshape(-1) for p in pairs])
    diff = a != b
    a, b = a[diff], b[diff]
    src = torch.cat([a, b])
    dst = torch.cat([b, a])
    if self_loops:
        loop = torch.arange(r, device=seg.device)
        src, dst = torch.cat([src, loop]), torch.cat([dst, loop])
    key = torch.unique(dst * max(r, 1) + src)  # sorted by target, then source
    return torch.stack([key % max(r, 1), torch.div(key, max(r, 1), rounding_mode="floor")])


def _one_graph(
    image: Any,
    features: Tensor | None,
    segments: Any,
    n_segments: int,
    compactness: float,
    connectivity: int,
    self_loops: bool,
    device: torch.device | str | None,
    slic_kwargs: dict,
) -> SuperpixelGraph:
    img = as_rgb_image(image)
    h, w = img.shape[:2]
    if segments is None:
        seg = torch.from_numpy(slic_segments(img, n_segments, compactness, **slic_kwargs))
    else:
        seg = segments if isinstance(segments, Tensor) else torch.as_tensor(np.asarray(segments))
        check_tensor(seg, "segments", ndim=2, floating=False)
        if tuple(seg.shape) != (h, w):
            raise ValueError(
                f"'segments' has shape {tuple(seg.shape)} but the image is {(h, w)}"
            )
        if seg.numel() and int(seg.min()) < 0:
            raise ValueError("'segments' must be non-negative region ids")
        _, inv = torch.unique(seg.long(), return_inverse=True)  # relabel to 0 .. R-1
        seg = inv.reshape(h, w)
    seg = seg.to(device=device, dtype=torch.long)
    r = int(seg.max()) + 1
    flat = seg.reshape(-1)
    colour = torch.from_numpy(img).to(device=device, dtype=torch.float32).reshape(-1, 3) / 255.0
    colour = scatter(colour, flat, dim=0, dim_size=r, reduce="mean")
    rows = torch.arange(h, device=seg.device, dtype=torch.float32).view(h, 1).expand(h, w)
    cols = torch.arange(w, device=seg.device, dtype=torch.float32).view(1, w).expand(h, w)
    pos = scatter(torch.stack([rows, cols], -1).reshape(-1, 2), flat, 0, dim_size=r, reduce="mean")
    area = torch.bincount(flat, minlength=r)
    if features is None:
        x = colour
    else:
        check_tensor(features, "features", ndim=3, floating=True, finite=True)
        if features.size(0) == 0 or features.size(1) == 0 or features.size(2) == 0:
            raise ValueError(
                f"'features' must be a non-empty [D, h, w] map, got {tuple(features.shape)}"
            )
        f = features.to(seg.device)
        if tuple(f.shape[-2:]) != (h, w):
            f = F.interpolate(f[None], size=(h, w), mode="bilinear", align_corners=False)[0]
        x = scatter(f.reshape(f.size(0), -1).t(), flat, 0, dim_size=r, reduce="mean")
    edge_index = region_adjacency(seg, r, connectivity=connectivity, self_loops=self_loops)
    return SuperpixelGraph(
        x=x, colour=colour, pos=pos, area=area, edge_index=edge_index, segments=seg,
        image_size=(h, w), num_nodes=r,
    )


def superpixel_graph(
    image: Any,
    features: Tensor | Sequence[Tensor] | None = None,
    n_segments: int = 100,
    compactness: float = 10.0,
    segments: Any = None,
    connectivity: int = 4,
    self_loops: bool = False,
    device: torch.device | str | None = None,
    **slic_kwargs: Any,
) -> SuperpixelGraph | Batch:
    r"""Superpixel graph of an image (or of a list of images, as one PyG ``Batch``).

    Regions come from SLIC (:func:`skimage.segmentation.slic`, ``start_label=0``, relabelled
    to ``0 .. R-1``) unless ``segments`` is given. Per region :math:`r` with pixel set
    :math:`P_r`: ``x_r`` = mean of the features over :math:`P_r`, ``colour_r`` = mean RGB in
    ``[0, 1]``, ``pos_r`` = centroid ``(row, col)``, ``area_r = |P_r|`` (scatter means). Two
    regions are joined (both directions) when a pixel of one is a 4-neighbour (or
    8-neighbour, ``connectivity=8``) of a pixel of the other.

    Features at a lower resolution than the image (a CNN map ``[C, h, w]``) are upsampled
    bilinearly (``align_corners=False``) to ``H x W`` before averaging, so every pixel of a
    region counts once; pass ``features`` already at image size to control the resampling.

    Args:
        image: ``[H, W, 3]`` RGB (uint8, or float in ``[0, 1]``; numpy or tensor; ``[3, H, W]``
            tensors are accepted), or a list of them.
        features: Optional ``[C, h, w]`` float tensor (or a list, one per image).
        n_segments, compactness: SLIC parameters (``**slic_kwargs`` go to SLIC too, e.g.
            ``sigma``, ``max_num_iter``).
        segments: Optional precomputed ``[H, W]`` region ids (or a list); SLIC is skipped.
        connectivity: ``4`` or ``8``.
        self_loops: Add ``r -> r`` edges.
        device: Where to put the tensors.

    Returns:
        :class:`SuperpixelGraph`, or for a list a :class:`~torch_geometric.data.Batch` whose
        ``segments`` are stacked to ``[B, H, W]`` and offset by the regions of the previous
        images (all images must then have the same size); ``batch.to_pixels(values)`` maps
        ``[sum R, ...]`` back to ``[B, H, W, ...]``.
    """
    check_choice(connectivity, (4, 8), "connectivity")  # type: ignore[arg-type]
    if isinstance(image, (list, tuple)):
        n = len(image)
        if n == 0:
            raise ValueError("'image' is an empty list")
        feats: list[Tensor | None] = (
            list(features) if isinstance(features, (list, tuple))
            else [cast("Tensor | None", features)] * n
        )
        segs: list[Tensor | None] = (
            list(segments) if isinstance(segments, (list, tuple))
            else [cast("Tensor | None", segments)] * n
        )
        if features is not None and not isinstance(features, (list, tuple)):
            raise TypeError("with a list of images, 'features' must be a list (one per image)")
        if segments is not None and not isinstance(segments, (list, tuple)):
            raise TypeError("with a list of images, 'segments' must be a list (one per image)")
        if len(feats) != n or len(segs) != n:
            raise ValueError("'features' / 'segments' must have one entry per image")
        graphs = [
            _one_graph(im, f, s, n_segments, compactness, connectivity, self_loops, device,
                       slic_kwargs)
            for im, f, s in zip(image, feats, segs)
        ]
        sizes = {g.image_size for g in graphs}
        if len(sizes) > 1:
            raise ValueError(
                f"images of different sizes {sorted(sizes)} cannot be batched (their "
                "'segments' are stacked); build one graph per image instead"
            )
        return Batch.from_data_list(graphs)
    if isinstance(features, (list, tuple)) or isinstance(segments, (list, tuple)):
        raise TypeError("'features' / 'segments' lists need a list of images")
    return _one_graph(image, cast("Tensor | None", features), cast("Tensor | None", segments),
                      n_segments, compactness, connectivity, self_loops, device, slic_kwargs)
