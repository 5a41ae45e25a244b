import numpy as np
import pytest
from PIL import Image

from pyg_wsss.data import VOC_CLASSES, VOCSegmentation, mask_to_tags, parse_voc_xml, read_label_png
from pyg_wsss.viz import voc_palette

H, W = 20, 30


def _xml(objects, size=(H, W)):
    objs = "".join(
        f"<object><name>{n}</name><difficult>{d}</difficult><bndbox><xmin>{b[0]}</xmin>"
        f"<ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for n, b, d in objects
    )
    return (
        f"<annotation><filename>x.jpg</filename><size><width>{size[1]}</width>"
        f"<height>{size[0]}</height><depth>3</depth></size>{objs}</annotation>"
    )


def _palette_png(path, arr):
    im = Image.fromarray(arr.astype(np.uint8), mode="P")
    im.putpalette(voc_palette().reshape(-1).tolist())
    im.save(path)


@pytest.fixture
def voc_root(tmp_path):
    """A tiny VOCdevkit tree: 3 images; 'a' and 'b' have masks, 'c' only has an XML;
    SegmentationClassAug holds grey PNGs for all three."""
    base = tmp_path / "VOCdevkit" / "VOC2012"
    for d in (
        "JPEGImages",
        "SegmentationClass",
        "SegmentationClassAug",
        "Annotations",
        "ImageSets/Segmentation",
        "ImageSets/SegmentationAug",
    ):
        (base / d).mkdir(parents=True)
    rng = np.random.default_rng(0)
    masks = {}
    m = np.zeros((H, W), np.uint8)
    m[2:8, 3:10] = 15  # person
    m[1:9, 2:11][[0, -1], :] = 255  # void band rows
    m[12:18, 20:28] = 9  # chair
    masks["a"] = m
    m = np.zeros((H, W), np.uint8)
    m[5:15, 5:25] = 8  # cat
    masks["b"] = m
    masks["c"] = np.zeros((H, W), np.uint8)
    masks["c"][0:4, 0:4] = 1
    xmls = {
        # 1-based inclusive VOC boxes
        "a": [("person", (4, 3, 10, 8), 0), ("chair", (21, 13, 28, 18), 1)],
        "b": [("cat", (6, 6, 25, 15), 0), ("dog", (0, 0, 40, 25), 0)],  # dog box clipped
        "c": [("aeroplane", (1, 1, 4, 4), 0)],
    }
    for name in ("a", "b", "c"):
        img = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
        Image.fromarray(img).save(base / "JPEGImages" / f"{name}.jpg", quality=95)
        (base / "Annotations" / f"{name}.xml").write_text(_xml(xmls[name]))
        Image.fromarray(masks[name], mode="L").save(base / "SegmentationClassAug" / f"{name}.png")
    for name in ("a", "b"):
        _palette_png(base / "SegmentationClass" / f"{name}.png", masks[name])
    (base / "ImageSets/Segmentation/train.txt").write_text("a\nb\n")
    (base / "ImageSets/Segmentation/val.txt").write_text("c\n")
    (base / "ImageSets/Segmentation/empty.txt").write_text("\n\n")
    (base / "ImageSets/SegmentationAug/train_aug.txt").write_text(
        "/JPEGImages/a.jpg /SegmentationClassAug/a.png\n"
        "/JPEGImages/b.jpg /SegmentationClassAug/b.png\n"
        "/JPEGImages/c.jpg /SegmentationClassAug/c.png\n"
    )
    return tmp_path / "VOCdevkit", masks


def test_voc_classes():
    assert len(VOC_CLASSES) == 21 and VOC_CLASSES[0] == "background"
    for n in ("diningtable", "pottedplant", "tvmonitor", "motorbike", "person"):
        assert n in VOC_CLASSES
    assert VOC_CLASSES.index("person") == 15


def test_train_split(voc_root):
    root, masks = voc_root
    ds = VOCSegmentation(root, "train")
    assert len(ds) == 2 and ds.num_classes == 21 and ds.class_names[15] == "person"
    s = ds[0]
    assert s["name"] == "a"
    assert s["image"].shape == (H, W, 3) and s["image"].dtype == np.uint8
    np.testing.assert_array_equal(s["mask"], masks["a"])  # palette indices, 255 kept
    assert s["mask"].dtype == np.uint8
    assert np.nonzero(s["tags"])[0].tolist() == [8, 14]  # chair, person
    np.testing.assert_array_equal(s["boxes"], [[3, 2, 9, 7], [20, 12, 27, 17]])
    np.testing.assert_array_equal(s["box_labels"], [15, 9])
    assert s["boxes"].dtype == np.int64
    # the XML box of the person is the tight box of its mask
    rows, cols = np.nonzero(masks["a"] == 15)
    assert tuple(s["boxes"][0]) == (cols.min(), rows.min(), cols.max(), rows.max())
    b = ds[-1]
    np.testing.assert_array_equal(b["boxes"][1], [0, 0, W - 1, H - 1])  # clipped
    assert np.nonzero(b["tags"])[0].tolist() == [7]  # tags from the mask: only cat
    with pytest.raises(IndexError):
        ds[2]
    assert "split='train'" in repr(ds)


def test_root_can_be_voc2012_folder(voc_root):
    root, _ = voc_root
    assert len(VOCSegmentation(root / "VOC2012", "train")) == 2
    assert len(VOCSegmentation(root.parent, "train")) == 2  # folder containing VOCdevkit


def test_tags_from_xml_and_missing_mask(voc_root):
    root, _ = voc_root
    val = VOCSegmentation(root, "val")
    s = val[0]
    assert "mask" not in s
    assert np.nonzero(s["tags"])[0].tolist() == [0]  # aeroplane from the XML
    b = VOCSegmentation(root, "train", tags_from="xml")[1]
    assert np.nonzero(b["tags"])[0].tolist() == [7, 11]  # cat and dog
    with pytest.raises(FileNotFoundError, match="c.png"):
        VOCSegmentation(root, "val", tags_from="mask")[0]
    no_diff = VOCSegmentation(root, "train", include_difficult=False)[0]
    np.testing.assert_array_equal(no_diff["box_labels"], [15])


def test_train_aug(voc_root):
    root, masks = voc_root
    ds = VOCSegmentation(root, "train_aug")
    assert ds.ids == ["a", "b", "c"]
    assert ds.mask_dir.name == "SegmentationClassAug"
    np.testing.assert_array_equal(ds[2]["mask"], masks["c"])
    lst = root / "mylist.txt"
    lst.write_text("b\n")
    ds2 = VOCSegmentation(root, list_file=lst, mask_dir="SegmentationClassAug")
    assert ds2.ids == ["b"] and ds2[0]["mask"].max() == 8


def test_derive_weak_labels(voc_root):
    root, masks = voc_root
    ds = VOCSegmentation(root, "train", derive=("scribbles", "points", "instances"))
    s = ds[0]
    on = s["scribbles"] != 255
    assert np.all(s["scribbles"][on] == s["mask"][on])
    assert {15, 9} <= set(np.unique(s["scribbles"]).tolist())
    assert np.all(s["mask"][s["points"][:, 0], s["points"][:, 1]] == s["points"][:, 2])
    assert s["instances"].max() == 2
    np.testing.assert_array_equal(ds[0]["points"], s["points"])  # deterministic


def test_scribble_dir(voc_root, tmp_path):
    root, _ = voc_root
    sd = tmp_path / "scribbles"
    sd.mkdir()
    scr = np.full((H, W), 255, np.uint8)
    scr[5, 4:9] = 15
    scr[0, :] = 0
    Image.fromarray(scr, mode="L").save(sd / "a.png")
    ds = VOCSegmentation(root, "train", scribble_dir=sd)
    np.testing.assert_array_equal(ds[0]["scribbles"], scr)
    assert "scribbles" not in ds[1]
    with pytest.raises(FileNotFoundError):
        VOCSegmentation(root, "train", scribble_dir=tmp_path / "nope")


def test_errors(voc_root, tmp_path):
    root, _ = voc_root
    with pytest.raises(FileNotFoundError, match="not found"):
        VOCSegmentation(tmp_path / "missing")
    empty_root = tmp_path / "x"
    empty_root.mkdir()
    with pytest.raises(FileNotFoundError, match="JPEGImages"):
        VOCSegmentation(empty_root)
    with pytest.raises(FileNotFoundError, match="nosuchsplit"):
        VOCSegmentation(root, "nosuchsplit")
    with pytest.raises(FileNotFoundError):
        VOCSegmentation(root, list_file=tmp_path / "none.txt")
    with pytest.raises(ValueError, match="empty"):
        VOCSegmentation(root, "empty")
    with pytest.raises(ValueError):
        VOCSegmentation(root, "train", tags_from="json")
    with pytest.raises(ValueError):
        VOCSegmentation(root, "train", derive=("boxes",))
    with pytest.raises(TypeError):
        VOCSegmentation(root, "train", transform=1)
    # missing image
    (root / "VOC2012/JPEGImages/a.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="a.jpg"):
        VOCSegmentation(root, "train")[0]


def test_bad_mask_files(voc_root):
    root, _ = voc_root
    base = root / "VOC2012"
    bad = np.zeros((H, W), np.uint8)
    bad[0, 0] = 30  # out of range
    Image.fromarray(bad, mode="L").save(base / "SegmentationClass/a.png")
    with pytest.raises(ValueError, match="outside"):
        VOCSegmentation(root, "train")[0]
    Image.fromarray(np.zeros((H + 1, W), np.uint8), mode="L").save(base / "SegmentationClass/a.png")
    with pytest.raises(ValueError, match="shape"):
        VOCSegmentation(root, "train")[0]


def test_read_label_png_modes(tmp_path):
    lab = np.array([[0, 1, 15], [255, 20, 0]], np.uint8)
    _palette_png(tmp_path / "p.png", lab)
    np.testing.assert_array_equal(read_label_png(tmp_path / "p.png"), lab)
    Image.fromarray(lab, mode="L").save(tmp_path / "l.png")
    np.testing.assert_array_equal(read_label_png(tmp_path / "l.png"), lab)
    Image.fromarray(voc_palette()[lab]).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(read_label_png(tmp_path / "rgb.png"), lab)
    rgb = voc_palette()[lab]
    rgb[0, 0] = (1, 2, 3)
    Image.fromarray(rgb).save(tmp_path / "bad.png")
    with pytest.raises(ValueError, match="not a VOC palette colour"):
        read_label_png(tmp_path / "bad.png")
    with pytest.raises(FileNotFoundError):
        read_label_png(tmp_path / "none.png")


def test_parse_voc_xml(tmp_path):
    p = tmp_path / "a.xml"
    p.write_text(_xml([("person", (1.4, 1, 30, 20), 0), ("tvmonitor", (5, 5, 6, 6), 1)]))
    out = parse_voc_xml(p)
    np.testing.assert_array_equal(out["boxes"], [[0, 0, 29, 19], [4, 4, 5, 5]])
    np.testing.assert_array_equal(out["box_labels"], [15, 20])
    np.testing.assert_array_equal(out["difficult"], [False, True])
    assert out["size"] == (H, W)
    p.write_text(_xml([("unicorn", (1, 1, 2, 2), 0)]))
    with pytest.raises(ValueError, match="unicorn"):
        parse_voc_xml(p)
    p.write_text("<annotation><object>")
    with pytest.raises(ValueError, match="malformed"):
        parse_voc_xml(p)
    p.write_text(_xml([("cat", (10, 10, 5, 5), 0)]))
    with pytest.raises(ValueError, match="empty box"):
        parse_voc_xml(p)


def test_mask_to_tags():
    m = np.array([[0, 3], [255, 20]], np.uint8)
    t = mask_to_tags(m, 21)
    assert t.dtype == np.float32 and t.shape == (20,)
    assert np.nonzero(t)[0].tolist() == [2, 19]
    import torch

    np.testing.assert_array_equal(mask_to_tags(torch.from_numpy(m), 21), t)
    assert mask_to_tags(np.zeros((0, 0), np.uint8), 3).sum() == 0
    with pytest.raises(ValueError, match="outside"):
        mask_to_tags(np.array([[21]]), 21)
    with pytest.raises(ValueError, match="outside"):
        mask_to_tags(np.array([[-1]]), 21)
    with pytest.raises(TypeError):
        mask_to_tags(np.zeros((2, 2), np.float32), 21)
    with pytest.raises(TypeError):
        mask_to_tags([[0]], 21)
    with pytest.raises(ValueError):
        mask_to_tags(m, 1)
