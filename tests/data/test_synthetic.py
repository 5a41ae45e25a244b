import time

import numpy as np
import pytest
import torch

from pyg_wsss.data import SyntheticWSSS, mask_to_tags
from pyg_wsss.data.synthetic import SHAPES

EASY_HASH = "1f7ad471a5c590611fa9bf5c77caaad819dabe79da2943141264f67d1e0625c0"
KEYS = {"image", "mask", "tags", "boxes", "box_labels", "scribbles", "points", "instances", "name"}


@pytest.fixture(scope="module")
def ds():
    return SyntheticWSSS(num_images=12, image_size=64, num_classes=5, max_objects=3, seed=3)


def test_format(ds):
    assert len(ds) == 12
    assert ds.num_classes == 6
    assert ds.class_names == ["background", "ellipse", "rectangle", "triangle", "star", "ring"]
    for s in ds:
        assert set(s) == KEYS
        h, w = 64, 64
        assert s["image"].shape == (h, w, 3) and s["image"].dtype == np.uint8
        assert s["mask"].shape == (h, w) and s["mask"].dtype == np.uint8
        assert s["mask"].max() <= 5
        assert s["tags"].shape == (5,) and s["tags"].dtype == np.float32
        assert s["boxes"].dtype == np.int64 and s["boxes"].shape[1] == 4
        assert s["box_labels"].dtype == np.int64 and len(s["box_labels"]) == len(s["boxes"])
        assert s["scribbles"].dtype == np.uint8 and s["scribbles"].shape == (h, w)
        assert s["points"].dtype == np.int64 and s["points"].shape[1] == 3
        assert s["instances"].dtype == np.uint8
        assert isinstance(s["name"], str)
        assert 1 <= len(s["boxes"]) <= 3


def test_annotations_consistent(ds):
    for s in ds:
        mask, inst = s["mask"], s["instances"]
        # tags = classes with visible pixels
        np.testing.assert_array_equal(s["tags"], mask_to_tags(mask, 6))
        assert set(np.unique(s["box_labels"])) == set(np.nonzero(s["tags"])[0] + 1)
        # instance k <-> boxes[k-1]: tight box of the visible part, class = box label
        assert inst.max() == len(s["boxes"])
        for k, (box, lab) in enumerate(zip(s["boxes"], s["box_labels"]), start=1):
            rows, cols = np.nonzero(inst == k)
            assert tuple(box) == (cols.min(), rows.min(), cols.max(), rows.max())
            assert np.all(mask[inst == k] == lab)
        assert np.array_equal(inst > 0, mask > 0)
        # scribbles: object pixels carry their class, background scribbles lie on background
        on = s["scribbles"] != 255
        assert np.all(s["scribbles"][on] == mask[on])
        for lab in s["box_labels"]:
            assert (s["scribbles"] == lab).any()
        # points: one per instance, inside it, plus background points
        pts = s["points"]
        fg = pts[pts[:, 2] > 0]
        assert len(fg) == len(s["boxes"])
        assert np.all(mask[pts[:, 0], pts[:, 1]] == pts[:, 2])
        assert (pts[:, 2] == 0).sum() <= ds.num_background_points


def test_deterministic_and_independent_of_length():
    a = SyntheticWSSS(num_images=5, image_size=48, seed=7, cache=False)
    b = SyntheticWSSS(num_images=2, image_size=48, seed=7)
    c = SyntheticWSSS(num_images=2, image_size=48, seed=8)
    for i in range(2):
        for key in ("image", "mask", "scribbles", "points", "boxes"):
            np.testing.assert_array_equal(a[i][key], b[i][key])
    np.testing.assert_array_equal(a[1]["image"], a[1]["image"])  # uncached regeneration
    assert not np.array_equal(a[0]["image"], c[0]["image"])
    # read order does not matter
    np.testing.assert_array_equal(b[1]["mask"], SyntheticWSSS(2, 48, seed=7)[1]["mask"])


def test_indexing(ds):
    np.testing.assert_array_equal(ds[-1]["image"], ds[11]["image"])
    np.testing.assert_array_equal(ds[np.int64(2)]["mask"], ds[2]["mask"])
    with pytest.raises(IndexError):
        ds[12]
    with pytest.raises(IndexError):
        ds[-13]
    with pytest.raises(TypeError):
        ds["0"]
    # items are copies: mutating one does not corrupt the cache
    s = ds[0]
    s["image"][:] = 0
    assert ds[0]["image"].any()


def test_empty_dataset():
    ds = SyntheticWSSS(num_images=0)
    assert len(ds) == 0 and list(ds) == []
    with pytest.raises(IndexError, match="empty"):
        ds[0]


def test_rectangular_many_classes_and_options():
    ds = SyntheticWSSS(
        num_images=3,
        image_size=(40, 72),
        num_classes=12,
        max_objects=5,
        min_objects=5,
        occlusion=False,
        void_border=3,
        noise=0.0,
        blur=0.0,
        num_background_points=0,
        transform=lambda s: {**s, "extra": 1},
    )
    assert (
        ds.num_classes == 13
        and ds.class_names[11] == "ellipse-2"
        and len(set(ds.class_names)) == 13
    )
    s = ds[0]
    assert s["image"].shape == (40, 72, 3) and s["extra"] == 1
    assert (s["mask"] == 255).any()  # void band
    assert np.all(s["points"][:, 2] > 0)
    assert len(SHAPES) == 10
    assert "SyntheticWSSS(num_images=3" in repr(ds)


@pytest.mark.parametrize(
    "kwargs, err",
    [
        ({"num_images": -1}, ValueError),
        ({"num_images": 2.5}, TypeError),
        ({"image_size": 8}, ValueError),
        ({"image_size": (64,)}, TypeError),
        ({"image_size": (64, 0)}, ValueError),
        ({"num_classes": 0}, ValueError),
        ({"num_classes": 300}, ValueError),
        ({"max_objects": 0}, ValueError),
        ({"min_objects": 4, "max_objects": 3}, ValueError),
        ({"object_scale": (0.5, 0.2)}, ValueError),
        ({"object_scale": (0.0, 0.2)}, ValueError),
        ({"min_visible": 1.5}, ValueError),
        ({"noise": -0.1}, ValueError),
        ({"seed": -1}, ValueError),
        ({"scribble_width": 0}, ValueError),
        ({"transform": 3}, TypeError),
    ],
)
def test_bad_arguments(kwargs, err):
    with pytest.raises(err):
        SyntheticWSSS(**kwargs)


def test_speed():
    start = time.perf_counter()
    ds = SyntheticWSSS(num_images=64, image_size=128)
    for i in range(len(ds)):
        ds[i]
    assert time.perf_counter() - start < 20.0  # ~2 s on one free core


def test_every_class_occurs_and_objects_are_visible():
    ds = SyntheticWSSS(num_images=40, image_size=64, seed=0)
    tags = np.stack([s["tags"] for s in ds])
    assert tags.sum(0).min() >= 4  # every class appears
    assert tags.sum(1).min() >= 1  # every image has an object
    # objects are visibly different from the background: colour contrast inside vs outside
    s = ds[0]
    fg = s["image"][s["mask"] > 0].astype(float).mean(0)
    assert np.isfinite(fg).all()


def test_torch_dataloader():
    ds = SyntheticWSSS(num_images=4, image_size=32)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=list)
    batches = list(loader)
    assert len(batches) == 2 and len(batches[0]) == 2


def test_hard_set_classes_scenes_and_camouflage():
    from pyg_wsss.data.synthetic import HARD_CLASS_NAMES, HARD_SCENES

    ds = SyntheticWSSS(num_images=60, image_size=48, num_classes=5, seed=1, difficulty="hard")
    assert ds.class_names == ["background", *HARD_CLASS_NAMES[:5]]
    assert "difficulty='hard'" in repr(ds)
    samples = list(ds)
    tags = np.stack([s["tags"] for s in samples])
    assert tags.sum(0).min() > 0  # every class occurs
    # classes co-occur by the known scene structure: within-scene pairs dominate
    co = tags.T @ tags
    scene_of = {c: k for k, sc in enumerate(HARD_SCENES) for c in sc}
    pairs = [(i, j) for i in range(5) for j in range(5) if i != j]
    within = sum(co[i, j] for i, j in pairs if scene_of[i] == scene_of[j])
    across = sum(co[i, j] for i, j in pairs if scene_of[i] != scene_of[j])
    assert within > 2 * across
    for s in samples[:5]:
        assert set(s) == KEYS and s["image"].shape == (48, 48, 3)
        np.testing.assert_array_equal(s["tags"], mask_to_tags(s["mask"], 6))
        assert s["name"].startswith("synthetic-hard_")
    # deterministic per index
    again = SyntheticWSSS(num_images=3, image_size=48, num_classes=5, seed=1, difficulty="hard")
    assert np.array_equal(again[2]["image"], samples[2]["image"])
    # and different from the easy set with the same seed
    easy = SyntheticWSSS(num_images=3, image_size=48, num_classes=5, seed=1)
    assert not np.array_equal(easy[2]["image"], samples[2]["image"])


def test_hard_set_arguments():
    with pytest.raises(ValueError, match="difficulty"):
        SyntheticWSSS(num_images=1, difficulty="medium")
    with pytest.raises(ValueError, match="at most 8"):
        SyntheticWSSS(num_images=1, num_classes=9, difficulty="hard")
    with pytest.raises(ValueError, match="camouflage"):
        SyntheticWSSS(num_images=1, difficulty="hard", camouflage=1.5)


def test_easy_set_unchanged_bit_for_bit():
    # a hash of the default (easy) set as generated before the hard option existed
    import hashlib

    h = hashlib.sha256()
    ds = SyntheticWSSS(num_images=4, image_size=48, num_classes=5, seed=0)
    for s in ds:
        h.update(s["image"].tobytes() + s["mask"].tobytes())
    assert h.hexdigest() == EASY_HASH
