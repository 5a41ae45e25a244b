import numpy as np
import pytest
import torch
from PIL import Image

from pyg_wsss.viz import (
    COLORMAPS,
    cam_to_heatmap,
    colorize_labels,
    make_grid,
    overlay_cam,
    overlay_labels,
    save_grid,
    voc_palette,
)


def test_voc_palette():
    pal = voc_palette()
    assert pal.shape == (256, 3) and pal.dtype == np.uint8
    assert pal[0].tolist() == [0, 0, 0]
    assert pal[1].tolist() == [128, 0, 0]  # aeroplane
    assert pal[2].tolist() == [0, 128, 0]
    assert pal[15].tolist() == [192, 128, 128]  # person
    assert pal[20].tolist() == [0, 64, 128]  # tvmonitor
    assert pal[255].tolist() == [224, 224, 192]  # void, which is the palette's own entry
    assert voc_palette(void_color=None)[255].tolist() == [224, 224, 192]
    assert voc_palette(void_color=(255, 255, 255))[255].tolist() == [255, 255, 255]
    assert len({tuple(c) for c in voc_palette(21)}) == 21
    with pytest.raises(ValueError):
        voc_palette(0)
    with pytest.raises(ValueError):
        voc_palette(257)
    with pytest.raises(ValueError):
        voc_palette(void_color=(1, 2))
    with pytest.raises(TypeError):
        voc_palette(2.0)


def test_colorize_labels():
    lab = np.array([[0, 1], [15, 255]], np.uint8)
    rgb = colorize_labels(lab)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert rgb[0, 1].tolist() == [128, 0, 0] and rgb[1, 1].tolist() == [224, 224, 192]
    assert colorize_labels(lab, void_color=(255, 255, 255))[1, 1].tolist() == [255, 255, 255]
    np.testing.assert_array_equal(colorize_labels(torch.from_numpy(lab).long()), rgb)
    custom = colorize_labels(np.array([[0, 1]]), palette=np.array([[1, 2, 3], [4, 5, 6]]))
    assert custom.tolist() == [[[1, 2, 3], [4, 5, 6]]]
    with pytest.raises(ValueError, match="outside"):
        colorize_labels(np.array([[256]]))
    with pytest.raises(ValueError, match="outside"):
        colorize_labels(np.array([[-1]]))
    with pytest.raises(ValueError, match="outside"):
        colorize_labels(np.array([[2]]), palette=np.zeros((2, 3)))
    with pytest.raises(ValueError):
        colorize_labels(np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(TypeError):
        colorize_labels(np.zeros((2, 2), np.float32))
    with pytest.raises(TypeError):
        colorize_labels([[0]])
    with pytest.raises(ValueError):
        colorize_labels(lab, palette=np.zeros((4, 4)))


def test_cam_to_heatmap():
    cam = np.linspace(0, 1, 20, dtype=np.float32).reshape(4, 5)
    heat = cam_to_heatmap(cam)
    assert heat.shape == (4, 5, 3) and heat.dtype == np.uint8
    # jet: low = blue, high = red (RGB order)
    assert heat[0, 0, 2] > heat[0, 0, 0] and heat[-1, -1, 0] > heat[-1, -1, 2]
    for name in COLORMAPS:
        assert cam_to_heatmap(torch.from_numpy(cam), name).shape == (4, 5, 3)
    np.testing.assert_array_equal(cam_to_heatmap(cam * 10 + 3, normalize=True), heat)
    assert cam_to_heatmap(np.full((2, 2), 5.0), normalize=True).shape == (2, 2, 3)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        cam_to_heatmap(cam * 2)
    with pytest.raises(ValueError, match="NaN"):
        cam_to_heatmap(np.full((2, 2), np.nan))
    with pytest.raises(ValueError):
        cam_to_heatmap(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError):
        cam_to_heatmap(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="colormap"):
        cam_to_heatmap(cam, "nope")


def test_overlay_cam():
    img = np.full((8, 10, 3), 100, np.uint8)
    cam = np.zeros((8, 10), np.float32)
    out = overlay_cam(img, cam, alpha=0.0)
    np.testing.assert_array_equal(out, img)
    full = overlay_cam(img, cam, alpha=1.0)
    np.testing.assert_array_equal(full, cam_to_heatmap(cam))
    # [C, h, w] at lower resolution: max over classes, resized
    multi = torch.rand(3, 4, 5)
    assert overlay_cam(img, multi).shape == (8, 10, 3)
    assert overlay_cam(img, torch.zeros(0, 8, 10)).shape == (8, 10, 3)
    assert overlay_cam(img.astype(np.float32) / 255, cam).dtype == np.uint8
    assert overlay_cam(torch.rand(3, 8, 10), cam).shape == (8, 10, 3)
    with pytest.raises(ValueError, match="RGB"):
        overlay_cam(np.zeros((8, 10), np.uint8), cam)
    with pytest.raises(ValueError, match="RGB"):
        overlay_cam(np.zeros((8, 10, 4), np.uint8), cam)
    with pytest.raises(ValueError):
        overlay_cam(img, cam, alpha=1.5)
    with pytest.raises(ValueError):
        overlay_cam(img, np.zeros((1, 2, 3, 4)))


def test_overlay_labels():
    img = np.full((4, 4, 3), 200, np.uint8)
    lab = np.full((4, 4), 255, np.uint8)
    lab[0, 0] = 1
    lab[1, 1] = 0
    out = overlay_labels(img, lab, alpha=1.0)
    assert out[0, 0].tolist() == [128, 0, 0] and out[1, 1].tolist() == [0, 0, 0]
    assert out[3, 3].tolist() == [200, 200, 200]  # unlabelled keeps the image
    out = overlay_labels(img, lab, alpha=1.0, background=False)
    assert out[1, 1].tolist() == [200, 200, 200]
    with pytest.raises(ValueError, match="shape"):
        overlay_labels(img, lab[:2])
    with pytest.raises(ValueError, match="outside"):
        overlay_labels(img, np.full((4, 4), 300), ignore_index=None)


def test_make_and_save_grid(tmp_path):
    img = (np.random.default_rng(0).random((20, 30, 3)) * 255).astype(np.uint8)
    lab = np.zeros((20, 30), np.uint8)
    lab[5:10, 5:10] = 15
    cam = np.random.default_rng(1).random((10, 15)).astype(np.float32)
    rows = [[img, overlay_cam(img, cam), lab, cam], [img, None, torch.from_numpy(lab)]]
    grid = make_grid(rows)
    assert grid.dtype == np.uint8 and grid.ndim == 3
    assert grid.shape[1] == 4 * (30 + 4) + 4
    with_titles = make_grid(rows, titles=["image", "CAM", "pseudo", "gt"], row_titles=["a", "b"])
    assert with_titles.shape[0] > grid.shape[0] and with_titles.shape[1] > grid.shape[1]
    assert (with_titles[:18] < 128).any()  # some title text was drawn
    captions = make_grid(rows, titles=[["1", "2", "3", "4"], ["5"]])
    assert captions.shape[0] > grid.shape[0]
    path = save_grid(rows, tmp_path / "sub" / "grid.png", titles=["image", "CAM", "pseudo", "gt"])
    assert path.exists()
    back = np.array(Image.open(path))
    assert back.shape[2] == 3 and back.shape[1] == grid.shape[1]
    small = make_grid(rows, cell_size=(10, 10), pad=0)
    assert small.shape == (20, 40, 3)
    # cells keep their aspect ratio and are centred
    assert make_grid([[np.zeros((10, 40, 3), np.uint8)]], cell_size=20).shape == (28, 28, 3)


def test_grid_bad_input(tmp_path):
    img = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="empty"):
        make_grid([])
    with pytest.raises(ValueError, match="empty"):
        make_grid([[]])
    with pytest.raises(TypeError):
        make_grid(img)
    with pytest.raises(TypeError):
        make_grid([img])
    with pytest.raises(ValueError, match="RGB"):
        make_grid([[np.zeros((4, 4, 4), np.uint8)]])
    with pytest.raises(ValueError):
        make_grid([[np.zeros((2, 2, 2, 2))]])
    with pytest.raises(ValueError, match="column titles"):
        make_grid([[img]], titles=["a", "b"])
    with pytest.raises(ValueError, match="row titles"):
        make_grid([[img]], row_titles=["a", "b"])
    with pytest.raises(ValueError, match="not both"):
        make_grid([[img]], titles=["a"], col_titles=["a"])
    with pytest.raises(ValueError):
        make_grid([[img]], cell_size=0)
    with pytest.raises(ValueError, match="png"):
        save_grid([[img]], tmp_path / "grid.jpg")
