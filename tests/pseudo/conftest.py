"""Fixtures of the pseudo-label tests: tiny images, masks and CAMs made by blurring the
ground-truth mask (stand-ins for real CAMs)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi


def _two_object_scene(h: int = 40, w: int = 48, seed: int = 0):
    """An image with a red square (class 1) and a blue disc (class 3) on a grey background,
    its mask, tags over C = 4 foreground classes and blurred-mask CAMs."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), np.uint8)
    mask[6:20, 6:22] = 1
    yy, xx = np.mgrid[:h, :w]
    mask[(yy - 28) ** 2 + (xx - 34) ** 2 < 8**2] = 3
    colours = {0: (120, 120, 120), 1: (220, 30, 30), 3: (30, 40, 220)}
    image = np.zeros((h, w, 3), np.float64)
    for c, rgb in colours.items():
        image[mask == c] = rgb
    image = np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)
    tags = np.array([1, 0, 1, 0], np.float32)
    cams = np.zeros((4, h, w), np.float32)
    for c in (1, 3):
        blur = ndi.gaussian_filter((mask == c).astype(np.float32), 3)
        # under-activated: shrink towards the object centre like a real CAM
        cams[c - 1] = blur**2 / blur.max() ** 2
    return image, mask, tags, torch.from_numpy(cams)


@pytest.fixture
def scene():
    """``scene(h=40, w=48, seed=0) -> (image, mask, tags, cams)``."""
    return _two_object_scene
