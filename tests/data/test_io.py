import os

import numpy as np
import pytest
import torch
from PIL import Image

from pyg_wsss.data.io import (
    TMP_PREFIX,
    CategoryMap,
    DatasetError,
    label_png_bytes,
    parse_class_names,
    read_image,
    read_label_png,
    to_uint8_rgb,
    write_label_png,
)
from pyg_wsss.data.voc import read_label_png as voc_read_label_png
from pyg_wsss.viz import voc_palette


def test_uint8_rgb_passes_unchanged():
    img = np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    out = to_uint8_rgb(img)
    assert out.dtype == np.uint8 and out.shape == (4, 5, 3)
    np.testing.assert_array_equal(out, img)
    np.testing.assert_array_equal(to_uint8_rgb(torch.from_numpy(img)), img)


def test_grey_and_rgba():
    g = np.array([[0, 10], [200, 255]], np.uint8)
    for arr in (g, g[..., None]):
        out = to_uint8_rgb(arr)
        assert out.shape == (2, 2, 3)
        for c in range(3):
            np.testing.assert_array_equal(out[..., c], g)
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 7, 99
    out = to_uint8_rgb(rgba)
    assert out.shape == (2, 2, 3) and (out[..., 0] == 7).all() and (out[..., 1:] == 0).all()


def test_bool_maps_to_0_255():
    b = np.array([[True, False]])
    out = to_uint8_rgb(b)
    np.testing.assert_array_equal(out[..., 0], [[255, 0]])
    assert out.shape == (1, 2, 3)


def test_uint16_stretch_percentiles():
    # 0..999 ramp: the 0.5 / 99.5 percentiles are 4.995 / 994.005 -> 0 / 255, clipped outside
    ramp = np.arange(1000, dtype=np.uint16).reshape(20, 50) * 60
    out = to_uint8_rgb(ramp)
    lo, hi = np.percentile(ramp.astype(np.float64), [0.5, 99.5])
    expected = np.clip(np.rint((ramp - lo) * 255.0 / (hi - lo)), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(out[..., 0], expected)
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255
    assert out[..., 0].ravel()[500] in (127, 128)
    # a single hot outlier does not squash the rest
    img = np.full((40, 40), 1000, np.uint16)
    img[:20] = 2000
    img[0, 0] = 65535
    out = to_uint8_rgb(img)[..., 0]
    assert out[39, 39] == 0 and out[1, 1] == 255 and out[0, 0] == 255


def test_float_int_and_constant():
    f = np.linspace(0.0, 1.0, 100, dtype=np.float32).reshape(10, 10)
    out = to_uint8_rgb(f)
    assert out.min() == 0 and out.max() == 255
    i32 = (np.arange(100, dtype=np.int32) - 50).reshape(10, 10)
    np.testing.assert_array_equal(to_uint8_rgb(i32), to_uint8_rgb(f))
    assert (to_uint8_rgb(np.full((3, 3), 7.5)) == 0).all()
    assert (to_uint8_rgb(np.full((3, 3), 300, np.uint16)) == 0).all()
    nan = f.copy()
    nan[0, 0] = np.nan
    out = to_uint8_rgb(nan)
    assert out[0, 0, 0] == 0 and out.max() == 255


@pytest.mark.parametrize(
    "arr, match",
    [
        (np.zeros((4, 4, 2), np.uint8), "shape"),
        (np.zeros((1, 4, 4, 3), np.uint8), "shape"),
        (np.zeros((4,), np.uint8), "shape"),
        (np.zeros((0, 4, 3), np.uint8), "empty"),
        (np.full((3, 3), np.nan), "finite"),
    ],
)
def test_bad_arrays(arr, match):
    with pytest.raises(ValueError, match=f"'photo'.*{match}"):
        to_uint8_rgb(arr, name="photo")
    with pytest.raises(ValueError, match=match):
        to_uint8_rgb(arr)


def test_bad_types():
    with pytest.raises(TypeError, match="'image'"):
        to_uint8_rgb([[1, 2]])
    with pytest.raises(TypeError, match="dtype"):
        to_uint8_rgb(np.zeros((2, 2), np.complex64))


def test_read_image_modes(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), rgb)
    Image.fromarray(rgb).save(tmp_path / "a.jpg", quality=95)
    j = read_image(tmp_path / "a.jpg")
    assert j.shape == (6, 7, 3) and j.dtype == np.uint8
    Image.fromarray(rgb[..., 0], mode="L").save(tmp_path / "g.png")
    g = read_image(tmp_path / "g.png")
    assert g.shape == (6, 7, 3) and (g[..., 2] == rgb[..., 0]).all()
    rgba = np.dstack([rgb, np.full((6, 7), 10, np.uint8)])
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png"), rgb)
    Image.fromarray(rgb).save(tmp_path / "a.bmp")
    np.testing.assert_array_equal(read_image(tmp_path / "a.bmp"), rgb)


def test_read_16bit_png_and_tiff(tmp_path):
    arr = (np.arange(42, dtype=np.uint16).reshape(6, 7) * 1000).astype(np.uint16)
    Image.fromarray(arr).save(tmp_path / "d16.png")
    with Image.open(tmp_path / "d16.png") as im:
        assert im.mode.startswith("I")
    out = read_image(tmp_path / "d16.png")
    np.testing.assert_array_equal(out, to_uint8_rgb(arr))
    assert out.min() == 0 and out.max() == 255
    Image.fromarray(arr).save(tmp_path / "d16.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "d16.tif"), to_uint8_rgb(arr))
    f = np.linspace(-1, 1, 42, dtype=np.float32).reshape(6, 7)
    Image.fromarray(f, mode="F").save(tmp_path / "f.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "f.tif"), to_uint8_rgb(f))


def test_read_image_errors(tmp_path):
    with pytest.raises(ValueError, match="not found.*nope.png"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "junk.jpg").write_bytes(b"this is not a jpeg")
    with pytest.raises(ValueError, match="junk.jpg"):
        read_image(tmp_path / "junk.jpg")
    rgb = np.zeros((40, 40, 3), np.uint8)
    Image.fromarray(rgb).save(tmp_path / "t.png")
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="trunc.png"):
        read_image(tmp_path / "trunc.png")


def test_label_round_trip(tmp_path):
    lab = np.random.default_rng(2).integers(0, 40, (9, 11)).astype(np.uint8)
    lab[0, :3] = 255
    lab[1, 1] = 254
    path = tmp_path / "sub" / "dir" / "x.png"
    write_label_png(lab, path)
    with Image.open(path) as im:
        assert im.mode == "P"
        pal = np.asarray(im.getpalette()[: 256 * 3], np.uint8).reshape(-1, 3)
    np.testing.assert_array_equal(pal, voc_palette(256))
    np.testing.assert_array_equal(read_label_png(path), lab)
    assert not [p for p in os.listdir(path.parent) if p.startswith(TMP_PREFIX)]
    # torch input, int64 and custom palette
    write_label_png(torch.from_numpy(lab.astype(np.int64)), path, palette=[[1, 2, 3]] * 256)
    np.testing.assert_array_equal(read_label_png(path), lab)
    assert label_png_bytes(lab).startswith(b"\x89PNG")


def test_label_png_bad_input(tmp_path):
    with pytest.raises(ValueError, match="0..255"):
        label_png_bytes(np.array([[256]]))
    with pytest.raises(ValueError, match="0..255"):
        label_png_bytes(np.array([[-1]]))
    with pytest.raises(TypeError, match="integer"):
        label_png_bytes(np.zeros((2, 2), np.float32))
    with pytest.raises(TypeError, match="integer"):
        label_png_bytes(np.zeros((2, 2), bool))
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        label_png_bytes(np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ValueError, match="palette"):
        label_png_bytes(np.zeros((2, 2), np.uint8), palette=np.zeros((4, 2), np.uint8))
    # a failed write leaves nothing behind
    with pytest.raises(ValueError):
        write_label_png(np.array([[300]]), tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists() and not list(tmp_path.iterdir())


def test_read_label_png_modes(tmp_path):
    lab = np.array([[0, 3, 17], [90, 255, 0]], np.uint8)
    Image.fromarray(lab, mode="L").save(tmp_path / "l.png")
    np.testing.assert_array_equal(read_label_png(tmp_path / "l.png"), lab)
    Image.fromarray(voc_palette()[lab]).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(read_label_png(tmp_path / "rgb.png"), lab)
    Image.fromarray(lab.astype(np.uint16)).save(tmp_path / "i16.png")
    np.testing.assert_array_equal(read_label_png(tmp_path / "i16.png"), lab)
    Image.fromarray(np.array([[0, 300]], np.uint16)).save(tmp_path / "big.png")
    with pytest.raises(ValueError, match="big.png.*outside"):
        read_label_png(tmp_path / "big.png")
    with pytest.raises(ValueError, match="outside"):
        read_label_png(tmp_path / "l.png", num_classes=21)
    # the VOC reader keeps its 21-class default
    with pytest.raises(ValueError, match="outside"):
        voc_read_label_png(tmp_path / "l.png")
    with pytest.raises(FileNotFoundError, match="none.png"):
        read_label_png(tmp_path / "none.png")
    (tmp_path / "junk.png").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.png"):
        read_label_png(tmp_path / "junk.png")
    Image.fromarray(np.zeros((2, 2), np.float32), mode="F").save(tmp_path / "f.tif")
    with pytest.raises(ValueError, match="mode"):
        read_label_png(tmp_path / "f.tif")


def test_save_label_png_of_driver_still_works(tmp_path):
    from pyg_wsss.pseudo.driver import save_label_png

    lab = np.array([[0, 5], [255, 1]], np.uint8)
    save_label_png(lab, tmp_path / "d.png")
    np.testing.assert_array_equal(read_label_png(tmp_path / "d.png"), lab)


def test_category_map():
    cm = CategoryMap({90: "z", 3: "a", 17: "m"})
    assert cm.category_ids == [0, 3, 17, 90]
    assert cm.class_names == ["background", "a", "m", "z"]
    assert cm.num_classes == 4
    lab = np.array([[0, 1, 2], [3, 255, 0]], np.uint8)
    np.testing.assert_array_equal(cm.to_category_ids(lab), [[0, 3, 17], [90, 255, 0]])
    np.testing.assert_array_equal(cm.ids_to_contiguous(cm.to_category_ids(lab), "x"), lab)
    with pytest.raises(ValueError, match="outside the contiguous classes"):
        cm.to_category_ids(np.array([[4]]))
    with pytest.raises(ValueError, match=r"mask.*\[5\]"):
        cm.ids_to_contiguous(np.array([[5]]), "mask")
    with pytest.raises(TypeError):
        cm.to_category_ids(np.zeros((2, 2), np.float32))
    with pytest.raises(DatasetError, match="'huge'.*300"):
        CategoryMap({300: "huge"})
    with pytest.raises(DatasetError, match="'bg'.*255"):
        CategoryMap({255: "bg"})


def test_parse_class_names(tmp_path):
    assert parse_class_names(["background", "cat", "", "dog"]) == {1: "cat", 3: "dog"}
    assert parse_class_names({"0": "background", "3": "a", "255": "void"}) == {3: "a"}
    (tmp_path / "c.json").write_text('{"0": "background", "7": "car"}')
    assert parse_class_names(tmp_path / "c.json") == {7: "car"}
    with pytest.raises(DatasetError, match="background"):
        parse_class_names(["cat", "dog"])
    with pytest.raises(DatasetError, match="'x' is not an integer"):
        parse_class_names({"x": "a"})
    with pytest.raises(DatasetError, match="not found"):
        parse_class_names(tmp_path / "none.json")
    with pytest.raises(DatasetError, match="'big'.*300"):
        parse_class_names({300: "big"})
    assert issubclass(DatasetError, ValueError)
