import numpy as np
import pytest
import torch

from pyg_wsss.segmentation import PseudoLabelDataset, load_label_map, save_label_maps


def test_png_round_trip_and_pairing_by_name(tmp_path, toy_samples):
    labels = [s["mask"].copy() for s in toy_samples]
    labels[0][:3] = 255
    save_label_maps(labels, [s["name"] for s in toy_samples], tmp_path)
    np.testing.assert_array_equal(load_label_map(tmp_path / "toy0.png"), labels[0])
    # pairing is by name, not order
    ds = PseudoLabelDataset(toy_samples[::-1], tmp_path, num_classes=3)
    image, label = ds.load(0)
    np.testing.assert_array_equal(label.numpy(), labels[-1])
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and image.max() <= 1
    by_dict = PseudoLabelDataset(toy_samples, {s["name"]: s["mask"] for s in toy_samples})
    assert torch.equal(by_dict.load(1)[1], torch.from_numpy(labels[1].astype(np.int64)))


def test_crop_pads_with_ignore_and_flip_is_joint(toy_samples):
    ds = PseudoLabelDataset(toy_samples, [s["mask"] for s in toy_samples], crop_size=40, flip=True)
    image, label = ds.sample(0, torch.Generator().manual_seed(0))
    assert image.shape == (3, 40, 40) and label.shape == (40, 40)
    pad = label == 255
    assert pad.sum() == 40 * 40 - 32 * 32 and (image[:, pad] == 0).all()
    # the label stays aligned with the image: the red class-1 pixels are where label == 1
    red = (image[0] > 0.6) & (image[2] < 0.4)
    assert (label[red] == 1).float().mean() > 0.95
    ds_small = PseudoLabelDataset(
        toy_samples, [s["mask"] for s in toy_samples], crop_size=16, scale_range=(0.8, 1.2)
    )
    a = ds_small.sample(2, torch.Generator().manual_seed(3))
    b = ds_small.sample(2, torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[1].shape == (16, 16)


def test_bad_input(tmp_path, toy_samples):
    with pytest.raises(FileNotFoundError, match="no label map"):
        PseudoLabelDataset(toy_samples, tmp_path)
    with pytest.raises(FileNotFoundError):
        PseudoLabelDataset(toy_samples, tmp_path / "missing")
    with pytest.raises(ValueError, match="label maps"):
        PseudoLabelDataset(toy_samples, [toy_samples[0]["mask"]])
    with pytest.raises(KeyError):
        PseudoLabelDataset(toy_samples, {})
    with pytest.raises(ValueError, match="empty"):
        PseudoLabelDataset([], [])
    with pytest.raises(ValueError, match="crop_size"):
        PseudoLabelDataset(toy_samples, [s["mask"] for s in toy_samples], crop_size=0)
    bad = [s["mask"].copy() for s in toy_samples]
    bad[0][0, 0] = 7
    with pytest.raises(ValueError, match="outside"):
        PseudoLabelDataset(toy_samples, bad, num_classes=3).load(0)
    with pytest.raises(ValueError, match="shape"):
        PseudoLabelDataset(toy_samples, [np.zeros((5, 5), np.uint8)] * 4).load(0)
    with pytest.raises(ValueError, match="names"):
        save_label_maps([np.zeros((2, 2), np.uint8)], [], tmp_path)
    with pytest.raises(ValueError, match="\\[H, W\\]"):
        save_label_maps([np.zeros((2, 2, 2), np.uint8)], ["a"], tmp_path)
