"""Pseudo-label training data for stage 2: images paired with label maps (PNG, 255 = ignore)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from pyg_wsss._checks import as_rgb_image, check_positive
from pyg_wsss.data.io import read_label_png, write_label_png

__all__ = ["PseudoLabelDataset", "save_label_maps", "load_label_map", "image_to_tensor"]


def save_label_maps(
    labels: Sequence[np.ndarray], names: Sequence[str], out_dir: str | os.PathLike
) -> list[Path]:
    """Write ``uint8 [H, W]`` label maps as indexed (VOC palette) PNGs ``<out_dir>/<name>.png``
    (each atomically, with :func:`pyg_wsss.data.io.write_label_png`)."""
    if isinstance(labels, (str, os.PathLike, np.ndarray, Tensor)) or not isinstance(
        labels, (list, tuple)
    ):
        raise TypeError(f"'labels' must be a list of label maps, got {type(labels).__name__}")
    if isinstance(names, str) or not isinstance(names, (list, tuple)):
        raise TypeError(f"'names' must be a list of names, got {type(names).__name__}")
    if len(labels) != len(names):
        raise ValueError(f"got {len(labels)} label maps but {len(names)} names")
    if not isinstance(out_dir, (str, os.PathLike)):
        raise TypeError(f"'out_dir' must be a folder path, got {type(out_dir).__name__}")
    arrays = []
    for i, (lab, name) in enumerate(zip(labels, names)):
        if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in (
            ".", ".."
        ):
            raise ValueError(f"'names'[{i}] must be a file name without folders, got {name!r}")
        if not isinstance(lab, (np.ndarray, Tensor)):
            raise TypeError(
                f"'labels'[{i}] ({name!r}) must be a numpy array or tensor, "
                f"got {type(lab).__name__}"
            )
        arr = np.asarray(lab.cpu() if isinstance(lab, Tensor) else lab)
        if arr.ndim != 2:
            raise ValueError(f"'labels'[{i}] ({name!r}) must be [H, W], got shape {arr.shape}")
        if (
            arr.dtype == bool
            or not np.issubdtype(arr.dtype, np.integer)
            or (arr.size and (arr.min() < 0 or arr.max() > 255))
        ):
            raise ValueError(f"'labels'[{i}] ({name!r}) must hold integers in [0, 255]")
        arrays.append(arr)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for arr, name in zip(arrays, names):
        path = out / f"{name}.png"
        write_label_png(arr.astype(np.uint8), path)
        paths.append(path)
    return paths


def load_label_map(path: str | os.PathLike) -> np.ndarray:
    """Read a PNG label map (indexed or grey) as ``uint8 [H, W]`` class ids (with
    :func:`pyg_wsss.data.io.read_label_png`, modes ``P`` and ``L`` only)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"'path' must be a str or Path, got {type(path).__name__}")
    return read_label_png(path, modes=("P", "L"))


def image_to_tensor(image: Any) -> Tensor:
    """``uint8 [H, W, 3]`` RGB -> float ``[3, H, W]`` in ``[0, 1]``."""
    arr = as_rgb_image(image)
    return torch.from_numpy(arr).permute(2, 0, 1).float().div_(255.0)


class PseudoLabelDataset(torch.utils.data.Dataset):
    """Images paired by name with pseudo-label maps, with DeepLab training augmentation.

    Args:
        images: A dataset or list of sample dicts (``image`` uint8 ``[H, W, 3]``, ``name``).
        labels: A folder of ``<name>.png`` label maps, a list of ``uint8 [H, W]`` maps (same
            order as ``images``) or a dict ``name -> map``. 255 = ignore.
        crop_size: Random crop (padding the image with 0 and the label with 255 when smaller);
            ``None`` keeps full images.
        scale_range: Random rescale ``(low, high)`` before cropping (``None``: no rescale).
        flip: Random horizontal flip.
        num_classes: If given, labels outside ``[0, num_classes)`` and not 255 raise.

    ``sample(index, generator)`` returns ``(image [3, h, w] float in [0, 1], label [h, w]
    int64)`` with the augmentation drawn from ``generator`` (reproducible; used by
    :func:`~pyg_wsss.segmentation.train_segmentation`); ``__getitem__`` uses the global RNG.
    """

    def __init__(
        self,
        images: Any,
        labels: str | os.PathLike | Sequence[np.ndarray] | dict[str, np.ndarray],
        crop_size: int | None = None,
        scale_range: tuple[float, float] | None = None,
        flip: bool = True,
        num_classes: int | None = None,
    ) -> None:
        n = len(images)
        if n == 0:
            raise ValueError("'images' is empty")
        if crop_size is not None:
            check_positive(crop_size, "crop_size", integer=True)
        if scale_range is not None:
            if not isinstance(scale_range, (tuple, list)) or len(scale_range) != 2:
                raise ValueError(f"'scale_range' must be (low, high), got {scale_range!r}")
            lo, hi = scale_range
            check_positive(lo, "scale_range")
            check_positive(hi, "scale_range")
            if not np.isfinite(hi) or hi < lo:
                raise ValueError(
                    f"'scale_range' must be (low, high) with low <= high, got {scale_range}"
                )
        if not isinstance(flip, (bool, np.bool_)):
            raise TypeError(f"'flip' must be a bool, got {flip!r}")
        if num_classes is not None:
            check_positive(num_classes, "num_classes", integer=True)
        self.images = images
        self.crop_size = crop_size
        self.scale_range = scale_range
        self.flip = flip
        self.num_classes = num_classes
        # the images' names pair them with a folder or dict of labels (a list pairs by order)
        names: list[Any] = (
            [self._sample(i).get("name", str(i)) for i in range(n)]
            if not isinstance(labels, (list, tuple))
            else []
        )
        if isinstance(labels, (str, os.PathLike)):
            root = Path(labels)
            if not root.is_dir():
                raise FileNotFoundError(f"label folder {root} does not exist")
            missing = [nm for nm in names if not (root / f"{nm}.png").is_file()]
            if missing:
                raise FileNotFoundError(
                    f"{len(missing)} image(s) have no label map in {root}, e.g. {missing[:3]}"
                )
            self._labels: list[Any] = [root / f"{nm}.png" for nm in names]
        elif isinstance(labels, dict):
            missing = [nm for nm in names if nm not in labels]
            if missing:
                raise KeyError(f"no pseudo-label for {len(missing)} image(s), e.g. {missing[:3]}")
            self._labels = [labels[nm] for nm in names]
        elif isinstance(labels, (list, tuple)):
            if len(labels) != n:
                raise ValueError(f"got {n} images but {len(labels)} label maps")
            self._labels = list(labels)
            for i, lab in enumerate(self._labels):
                if not isinstance(lab, (np.ndarray, Tensor)):
                    raise TypeError(
                        f"'labels'[{i}] must be a numpy array or tensor, got {type(lab).__name__}"
                    )
        else:
            raise TypeError("'labels' must be a folder, a list of label maps or a dict name -> map")

    def _sample(self, index: int) -> dict[str, Any]:
        s = self.images[index]
        if not isinstance(s, dict) or "image" not in s:
            raise TypeError("'images' must hold sample dicts with an 'image' key")
        return s

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int) -> tuple[Tensor, Tensor]:
        """The un-augmented ``(image [3, H, W], label [H, W])``."""
        image = image_to_tensor(self._sample(index)["image"])
        lab = self._labels[index]
        lab = (
            load_label_map(lab)
            if isinstance(lab, Path)
            else np.asarray(lab.cpu() if isinstance(lab, Tensor) else lab)
        )
        if lab.shape != tuple(image.shape[1:]):
            raise ValueError(
                f"'labels': label map {index} has shape {lab.shape}, image has "
                f"{tuple(image.shape[1:])}"
            )
        if lab.dtype == bool or not np.issubdtype(lab.dtype, np.integer):
            raise TypeError(f"'labels': label map {index} must hold integers, got {lab.dtype}")
        label = torch.from_numpy(lab.astype(np.int64))
        bad = (label != 255) & (
            (label < 0) | (label >= (self.num_classes if self.num_classes is not None else 256))
        )
        if bad.any():
            top = self.num_classes - 1 if self.num_classes is not None else 255
            raise ValueError(
                f"'labels': label map {index} has labels outside [0, {top}] and not 255"
            )
        return image, label

    def sample(self, index: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        image, label = self.load(index)
        if self.scale_range is not None:
            lo, hi = self.scale_range
            s = lo + (hi - lo) * float(torch.rand((), generator=generator))
            h, w = label.shape
            size = (max(1, round(h * s)), max(1, round(w * s)))
            image = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]
            label = F.interpolate(label[None, None].float(), size=size, mode="nearest")[0, 0].long()
        if self.flip and bool(torch.rand((), generator=generator) < 0.5):
            image, label = image.flip(-1), label.flip(-1)
        if self.crop_size is not None:
            c = self.crop_size
            h, w = label.shape
            ph, pw = max(c - h, 0), max(c - w, 0)
            if ph or pw:
                image = F.pad(image, (0, pw, 0, ph), value=0.0)
                label = F.pad(label, (0, pw, 0, ph), value=255)
            h, w = label.shape
            top = int(torch.randint(0, h - c + 1, (), generator=generator))
            left = int(torch.randint(0, w - c + 1, (), generator=generator))
            image = image[:, top : top + c, left : left + c]
            label = label[top : top + c, left : left + c]
        return image.contiguous(), label.contiguous()

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.sample(index)
