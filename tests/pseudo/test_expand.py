import numpy as np
import pytest
import torch

from pyg_wsss.pseudo.expand import (
    expand_points,
    expand_scribbles,
    expand_seeds_by_superpixels,
    merge_seeds,
    points_to_seeds,
    slic_segments,
)


def _brute_expand(segments, seeds, keep_seeds=True):
    out = np.full(seeds.shape, 255, np.uint8)
    for r in np.unique(segments):
        region = segments == r
        labels = set(seeds[region].tolist()) - {255}
        if len(labels) == 1:
            out[region] = labels.pop()
    if keep_seeds:
        out[seeds != 255] = seeds[seeds != 255]
    return out


def test_expand_by_hand():
    segments = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3]])
    seeds = np.full((3, 4), 255, np.uint8)
    seeds[0, 0] = 4  # region 0: one class -> filled
    seeds[0, 2], seeds[1, 3] = 1, 2  # region 1: conflict -> 255 (seeds kept)
    seeds[2, 0] = seeds[2, 1] = 0  # region 2: background (class 0) -> filled
    out = expand_seeds_by_superpixels(None, seeds, segments=segments)
    expected = np.array([[4, 4, 1, 255], [4, 4, 255, 2], [0, 0, 255, 255]], np.uint8)
    np.testing.assert_array_equal(out, expected)
    out2 = expand_seeds_by_superpixels(None, seeds, segments=torch.from_numpy(segments) * 7,
                                       keep_seeds=False)
    expected[0, 2] = expected[1, 3] = 255
    np.testing.assert_array_equal(out2, expected)


def test_expand_matches_brute_force_random():
    rng = np.random.default_rng(0)
    segments = rng.integers(0, 9, (12, 10))
    seeds = np.where(rng.random((12, 10)) < 0.1, rng.integers(0, 4, (12, 10)), 255).astype(np.uint8)
    for keep in (True, False):
        np.testing.assert_array_equal(
            expand_seeds_by_superpixels(None, seeds, segments=segments, keep_seeds=keep),
            _brute_expand(segments, seeds, keep),
        )


def test_scribbles_and_points_on_an_image(scene):
    image, mask, _, _ = scene()
    scribbles = np.full(mask.shape, 255, np.uint8)
    scribbles[12, 9:19] = 1
    scribbles[28, 30:38] = 3
    scribbles[35:38, 2:10] = 0
    out = expand_scribbles(image, scribbles, n_segments=60, compactness=10)
    assert out.dtype == np.uint8 and out.shape == mask.shape
    lab = out != 255
    assert lab.sum() > 4 * (scribbles != 255).sum()  # it expanded
    assert (out[lab] == mask[lab]).mean() > 0.95  # and stayed inside the objects
    points = np.array([[12, 14, 1], [28, 34, 3], [36, 4, 0]])
    pts = expand_points(image, torch.from_numpy(points), n_segments=60)
    lab = pts != 255
    assert lab.sum() > 3 and (pts[lab] == mask[lab]).mean() > 0.95
    seg = slic_segments(image, n_segments=60)
    assert seg.shape == mask.shape and seg.min() == 0
    np.testing.assert_array_equal(
        expand_seeds_by_superpixels(image, scribbles, segments=seg),
        _brute_expand(seg, scribbles),
    )


def test_points_to_seeds_and_merge():
    seeds = points_to_seeds(np.array([[0, 1, 2], [2, 2, 0]]), (3, 4))
    expected = np.full((3, 4), 255, np.uint8)
    expected[0, 1], expected[2, 2] = 2, 0
    np.testing.assert_array_equal(seeds, expected)
    assert np.all(points_to_seeds(np.zeros((0, 3), np.int64), (2, 2)) == 255)
    primary = np.array([[255, 1], [2, 255]], np.uint8)
    fallback = np.array([[0, 3], [3, 255]], np.uint8)
    np.testing.assert_array_equal(merge_seeds(primary, fallback), [[0, 1], [2, 255]])


def test_bad_input(scene):
    image, mask, _, _ = scene()
    with pytest.raises(ValueError, match="outside"):
        points_to_seeds([[5, 50, 1]], (10, 10))
    with pytest.raises(ValueError, match="class"):
        points_to_seeds([[1, 1, 255]], (10, 10))
    with pytest.raises(ValueError, match=r"\[P, 3\]"):
        points_to_seeds([[1, 1]], (10, 10))
    with pytest.raises(TypeError, match="integer"):
        points_to_seeds(np.array([[1.5, 1, 1]]), (10, 10))
    with pytest.raises(ValueError, match="shape"):
        expand_scribbles(image, np.full((5, 5), 255, np.uint8))
    with pytest.raises(TypeError, match="integer"):
        expand_scribbles(image, np.zeros(mask.shape, np.float32))
    with pytest.raises(ValueError, match="0..255"):
        expand_seeds_by_superpixels(None, np.full((2, 2), 300), segments=np.zeros((2, 2), int))
    with pytest.raises(ValueError, match="segments"):
        expand_seeds_by_superpixels(None, np.full((2, 2), 255))
    with pytest.raises(ValueError, match="segments"):
        expand_seeds_by_superpixels(None, np.full((2, 2), 255), segments=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="differ"):
        expand_seeds_by_superpixels(image, np.full((2, 2), 255), segments=np.zeros((2, 2), int))
    with pytest.raises(ValueError, match="n_segments"):
        slic_segments(image, n_segments=0)
    with pytest.raises(ValueError, match="shape"):
        merge_seeds(np.zeros((2, 2), np.uint8), np.zeros((3, 2), np.uint8))
