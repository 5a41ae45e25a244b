import numpy as np
import pytest
import torch

from pyg_wsss.data import (
    SyntheticWSSS,
    crop_sample,
    hflip_sample,
    instance_boxes,
    resize_sample,
    sample_to_tensors,
)


@pytest.fixture(scope="module")
def sample():
    return SyntheticWSSS(num_images=1, image_size=(48, 64), seed=1, max_objects=3, min_objects=3)[0]


def test_hflip(sample):
    f = hflip_sample(sample)
    np.testing.assert_array_equal(f["image"], sample["image"][:, ::-1])
    np.testing.assert_array_equal(f["boxes"], instance_boxes(f["instances"]))
    assert np.all(f["mask"][f["points"][:, 0], f["points"][:, 1]] == f["points"][:, 2])
    back = hflip_sample(f)
    for k in ("image", "mask", "boxes", "points", "scribbles"):
        np.testing.assert_array_equal(back[k], sample[k])


def test_resize(sample):
    r = resize_sample(sample, (96, 128))
    assert r["image"].shape == (96, 128, 3) and r["mask"].shape == (96, 128)
    np.testing.assert_array_equal(r["boxes"], instance_boxes(r["instances"]))  # exact for x2
    assert np.all(r["mask"][r["points"][:, 0], r["points"][:, 1]] == r["points"][:, 2])
    small = resize_sample(sample, 24)
    assert small["image"].shape == (24, 24, 3)
    b = small["boxes"]
    assert (b[:, 0] <= b[:, 2]).all() and (b[:, 2] < 24).all()
    with pytest.raises(ValueError):
        resize_sample(sample, 0)
    with pytest.raises(ValueError):
        resize_sample(sample, (10,))


def test_crop(sample):
    c = crop_sample(sample, 8, 10, 30, 40)
    assert c["image"].shape == (30, 40, 3)
    np.testing.assert_array_equal(c["image"], sample["image"][8:38, 10:50])
    assert len(c["boxes"]) == len(c["box_labels"])
    assert (c["boxes"][:, 2] < 40).all() and (c["boxes"][:, 3] < 30).all()
    assert np.all(c["mask"][c["points"][:, 0], c["points"][:, 1]] == c["points"][:, 2])
    np.testing.assert_array_equal(c["tags"] > 0, np.isin(np.arange(1, 6), c["mask"]))
    with pytest.raises(ValueError, match="inside"):
        crop_sample(sample, 40, 0, 20, 20)
    with pytest.raises(TypeError):
        crop_sample(sample, 0.5, 0, 2, 2)


def test_to_tensors(sample, device):
    t = sample_to_tensors(sample, device=device)
    assert t["image"].device.type == device.type
    assert t["image"].shape == (3, 48, 64) and t["image"].dtype == torch.float32
    assert 0 <= t["image"].min() and t["image"].max() <= 1
    assert t["mask"].dtype == torch.long and t["tags"].dtype == torch.float32
    assert t["name"] == sample["name"]


def test_bad_sample():
    with pytest.raises(TypeError):
        hflip_sample({"mask": np.zeros((2, 2))})
    with pytest.raises(ValueError):
        hflip_sample({"image": np.zeros((4, 4), np.uint8)})
