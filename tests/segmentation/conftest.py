import numpy as np
import pytest


def make_toy_samples(n=4, size=32, seed=0):
    """Noisy images with a red square (class 1) and a blue square (class 2)."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        img = (rng.random((size, size, 3)) * 60).astype(np.uint8)
        lab = np.zeros((size, size), np.uint8)
        for c in (1, 2):
            r, q = rng.integers(2, size // 2 + 2, 2)
            s = rng.integers(size // 4, size // 2 - 2)
            lab[r : r + s, q : q + s] = c
        img[lab == 1] = [200, 40, 40]
        img[lab == 2] = [40, 40, 200]
        img = np.clip(img.astype(int) + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)
        samples.append({"image": img, "mask": lab, "name": f"toy{i}"})
    return samples


@pytest.fixture
def toy_samples():
    return make_toy_samples()
