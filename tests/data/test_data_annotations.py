import numpy as np
import pytest
import torch

from pyg_wsss.data import (
    add_void_border,
    connected_instances,
    instance_boxes,
    weak_labels_from_instances,
)
from pyg_wsss.data.annotations import interior_point, object_scribble


def _two_objects():
    mask = np.zeros((30, 40), np.uint8)
    inst = np.zeros((30, 40), np.uint8)
    mask[5:15, 5:20] = 2
    inst[5:15, 5:20] = 1
    mask[18:28, 25:38] = 4
    inst[18:28, 25:38] = 2
    return mask, inst


def test_instance_boxes():
    _, inst = _two_objects()
    np.testing.assert_array_equal(instance_boxes(inst), [[5, 5, 19, 14], [25, 18, 37, 27]])
    np.testing.assert_array_equal(instance_boxes(torch.from_numpy(inst)), instance_boxes(inst))
    out = instance_boxes(inst, 3)
    np.testing.assert_array_equal(out[2], [-1, -1, -1, -1])
    assert instance_boxes(np.zeros((4, 4), np.int32)).shape == (0, 4)
    with pytest.raises(ValueError):
        instance_boxes(np.zeros((2, 2, 2), np.int32))
    with pytest.raises(ValueError):
        instance_boxes(-np.ones((2, 2), np.int32))
    with pytest.raises(TypeError):
        instance_boxes(np.zeros((2, 2), np.float32))


def test_add_void_border():
    mask = np.zeros((9, 9), np.uint8)
    mask[3:6, 3:6] = 1
    out = add_void_border(mask, 3)  # radius 1: both sides of the boundary become void
    assert out[4, 4] == 1 and out[0, 0] == 0
    assert out[3, 3] == 255 and out[2, 2] == 255 and out[1, 1] == 0
    assert (add_void_border(mask, 0) == mask).all()
    assert add_void_border(mask, 0) is not mask
    # void pixels are not a class: a void region does not grow a band
    v = np.zeros((5, 5), np.uint8)
    v[2, 2] = 255
    assert (add_void_border(v, 3) == v).all()
    with pytest.raises(ValueError):
        add_void_border(mask, -1)


def test_weak_labels():
    mask, inst = _two_objects()
    w = weak_labels_from_instances(mask, inst, np.random.default_rng(0))
    np.testing.assert_array_equal(w["boxes"], [[5, 5, 19, 14], [25, 18, 37, 27]])
    np.testing.assert_array_equal(w["box_labels"], [2, 4])
    on = w["scribbles"] != 255
    assert np.all(w["scribbles"][on] == mask[on])
    assert set(np.unique(w["scribbles"][on]).tolist()) == {0, 2, 4}
    # object scribbles stay off the object border
    border = (inst > 0) & ~np.pad(
        (inst[:-2, 1:-1] == inst[1:-1, 1:-1])
        & (inst[2:, 1:-1] == inst[1:-1, 1:-1])
        & (inst[1:-1, :-2] == inst[1:-1, 1:-1])
        & (inst[1:-1, 2:] == inst[1:-1, 1:-1]),
        1,
    )
    assert not (on & border & (mask > 0)).any()
    pts = w["points"]
    assert pts.shape == (5, 3)
    np.testing.assert_array_equal(pts[:2, 2], [2, 4])
    assert np.all(mask[pts[:, 0], pts[:, 1]] == pts[:, 2])
    with pytest.raises(ValueError):
        weak_labels_from_instances(mask, inst[:, :5])


def test_weak_labels_no_background_and_no_objects():
    full = np.ones((10, 10), np.uint8)
    w = weak_labels_from_instances(full, full)
    assert (w["points"][:, 2] > 0).all() and len(w["boxes"]) == 1
    empty = np.zeros((10, 10), np.uint8)
    w = weak_labels_from_instances(empty, empty)
    assert w["boxes"].shape == (0, 4) and w["box_labels"].shape == (0,)
    assert (w["points"][:, 2] == 0).all() and len(w["points"]) == 3


def test_object_scribble_and_point():
    region = np.zeros((20, 20), bool)
    region[2:18, 8:12] = True  # vertical bar: medial line is vertical
    s = object_scribble(region)
    assert s.any() and not (s & ~region).any()
    cols = np.nonzero(s)[1]
    assert cols.min() >= 9 and cols.max() <= 10
    tiny = np.zeros((5, 5), bool)
    tiny[2, 2] = True
    assert object_scribble(tiny)[2, 2]
    assert not object_scribble(np.zeros((3, 3), bool)).any()
    r, c = interior_point(region, depth=1.0)
    assert region[r, c] and 9 <= c <= 10
    for seed in range(5):
        r, c = interior_point(region, np.random.default_rng(seed))
        assert region[r, c]
    with pytest.raises(ValueError, match="empty"):
        interior_point(np.zeros((3, 3), bool))


def test_connected_instances():
    m = np.zeros((6, 6), np.uint8)
    m[0:2, 0:2] = 3
    m[4:6, 4:6] = 3
    m[0:2, 4:6] = 1
    m[3, 0] = 255
    inst = connected_instances(m)
    assert inst.max() == 3 and inst[3, 0] == 0
    assert len({inst[0, 0], inst[5, 5], inst[0, 5]}) == 3
