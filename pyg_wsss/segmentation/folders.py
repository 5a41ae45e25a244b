"""Folders for the ``pyg-wsss train`` / ``pyg-wsss predict`` commands: a lazy image folder,
label PNGs holding dataset category ids mapped to contiguous classes, and the model a
checkpoint describes."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["ImageFolder", "folder_dataset", "category_ids_of", "model_from_meta"]

IGNORE = 255


class ImageFolder:
    """The images under a folder (recursive, sorted), loaded on access as sample dicts
    ``{"image": uint8 [H, W, 3], "name": relative path without extension}``.

    ``names`` and ``sizes`` (``(H, W)`` from the file headers) are known without decoding,
    so the driver can skip finished images and shard by size."""

    def __init__(self, root: str | Path, only: set[str] | None = None) -> None:
        from pyg_wsss.data.io import list_images

        self.root = Path(root)
        files = list_images(self.root)
        self.files = [f for f in files if only is None or _stem(f) in only]
        self.names = [_stem(f) for f in self.files]
        self._sizes: list[Any] | None = None

    def __len__(self) -> int:
        return len(self.files)

    @property
    def sizes(self) -> list[tuple[int, int] | None]:
        if self._sizes is None:
            from pyg_wsss.data.io import image_size

            self._sizes = [image_size(self.root / f) for f in self.files]
        return self._sizes

    def __getitem__(self, i: int) -> dict[str, Any]:
        from pyg_wsss.data.io import read_image

        return {"image": read_image(self.root / self.files[i]), "name": self.names[i]}


def _stem(rel: str) -> str:
    return rel.rsplit(".", 1)[0] if "." in rel.rsplit("/", 1)[-1] else rel


def folder_dataset(images: ImageFolder, labels: Path, table: np.ndarray,
                   **kwargs: Any) -> Any:
    """A :class:`~pyg_wsss.segmentation.PseudoLabelDataset` of ``images`` and the label
    PNGs ``labels/<name>.png``, read on use (no image is decoded up front), their values
    mapped through ``table`` (dataset category id -> contiguous class, unknown -> 255)."""
    from pyg_wsss.segmentation.data import PseudoLabelDataset

    class _Mapped(PseudoLabelDataset):
        def load(self, index: int) -> Any:
            import torch

            image, label = super().load(index)
            return image, torch.from_numpy(table[label.numpy()].astype(np.int64))

    placeholders = [np.zeros((0, 0), np.uint8)] * len(images)
    ds = _Mapped(images, placeholders, **kwargs)
    ds._labels = [labels / f"{n}.png" for n in images.names]  # read by load() on use
    return ds


def category_ids_of(labels: Path, stems: Sequence[str]) -> tuple[list[int], list[str]]:
    """The category ids (sorted, 0 first) and names of a folder of label PNGs: from its
    ``classes.json`` (as ``pyg-wsss pseudo-label`` writes it) when present, else the values
    found in the PNGs."""
    names: dict[int, str] = {}
    path = labels / "classes.json"
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            names = {int(k): str(v) for k, v in data.items() if int(k) != IGNORE}
        except (ValueError, AttributeError, TypeError) as err:
            raise ValueError(f"{path}: not a JSON table {{id: name}} ({err})") from err
    if not names:
        from pyg_wsss.segmentation.data import load_label_map

        values: set[int] = set()
        for s in stems:
            values |= set(np.unique(load_label_map(labels / f"{s}.png")).tolist())
        names = {v: ("background" if v == 0 else f"class {v}") for v in values - {IGNORE}}
    names.setdefault(0, "background")
    ids = sorted(names)
    return ids, [names[i] for i in ids]


def to_contiguous(category_ids: Sequence[int]) -> np.ndarray:
    """``uint8 [256]``: category id -> contiguous class (unknown -> 255)."""
    table = np.full(256, IGNORE, dtype=np.uint8)
    for k, c in enumerate(category_ids):
        table[int(c)] = k
    return table


def to_category(category_ids: Sequence[int]) -> np.ndarray:
    """``uint8 [256]``: contiguous class -> category id (255 stays)."""
    table = np.full(256, IGNORE, dtype=np.uint8)
    for k, c in enumerate(category_ids):
        table[k] = int(c)
    return table


def model_from_meta(meta: dict[str, Any]) -> Any:
    """The stage-2 network a ``pyg-wsss train`` checkpoint describes (untrained weights)."""
    from pyg_wsss.segmentation.deeplab import build_deeplab

    try:
        return build_deeplab(int(meta["num_classes"]), backbone=str(meta["backbone"]),
                             pretrained=False, aspp_channels=int(meta["aspp_channels"]),
                             rates=tuple(int(r) for r in meta["rates"]))
    except KeyError as err:
        raise ValueError(f"the checkpoint does not say how to build its model (no {err}): "
                         "was it written by pyg-wsss train?") from None
