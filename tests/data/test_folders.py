import json
import warnings

import numpy as np
import pytest
from PIL import Image

from pyg_wsss.data import (
    DatasetError,
    MaskFolderDataset,
    VOCXMLDataset,
    open_dataset,
    write_label_png,
)
from pyg_wsss.viz import voc_palette

H, W = 20, 30


def _mask_a():
    m = np.zeros((H, W), np.uint8)
    m[2:8, 3:10] = 3
    m[12:18, 20:28] = 17
    m[12:18, 2:6] = 3  # a second car component
    m[0, :] = 255
    return m


def _mask_b():
    m = np.zeros((H, W), np.uint8)
    m[5:15, 5:25] = 90
    return m


@pytest.fixture
def folder(tmp_path):
    """images/a.jpg, images/sub/b.png, images/c.png; masks (a palette, b grey, c all bg)."""
    rng = np.random.default_rng(0)
    images, masks = tmp_path / "images", tmp_path / "masks"
    (images / "sub").mkdir(parents=True)
    (masks / "sub").mkdir(parents=True)
    for f in ("a.jpg", "sub/b.png", "c.png"):
        arr = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        Image.fromarray(arr).save(images / f, quality=95)
    (images / "notes.txt").write_text("not an image")
    (images / ".hidden.png").write_bytes(b"junk")
    write_label_png(_mask_a(), masks / "a.png")  # palette PNG
    Image.fromarray(_mask_b(), mode="L").save(masks / "sub" / "b.png")  # grey PNG
    Image.fromarray(np.zeros((H, W), np.uint8), mode="L").save(masks / "c.png")
    return images, masks


def test_mask_folder_protocol(folder):
    images, masks = folder
    ds = MaskFolderDataset(images, masks)
    assert len(ds) == 3
    assert ds.file_names == ["a.jpg", "c.png", "sub/b.png"]
    assert ds.names == ["a", "c", "sub/b"]
    assert ds.category_ids == [0, 3, 17, 90]
    assert ds.class_names == ["background", "class_3", "class_17", "class_90"]
    assert ds.num_classes == 4
    assert ds.sizes == [(H, W)] * 3
    s = ds[0]
    assert s["name"] == "a" and s["file_name"] == "a.jpg"
    assert s["image"].shape == (H, W, 3) and s["image"].dtype == np.uint8
    exp = _mask_a()
    exp[exp == 3], exp[exp == 17] = 1, 2
    np.testing.assert_array_equal(s["mask"], exp)
    np.testing.assert_array_equal(s["tags"], [1, 1, 0])
    order = np.lexsort((s["boxes"][:, 0], s["boxes"][:, 1]))
    np.testing.assert_array_equal(
        s["boxes"][order], [[3, 2, 9, 7], [2, 12, 5, 17], [20, 12, 27, 17]]
    )
    np.testing.assert_array_equal(s["box_labels"][order], [1, 1, 2])
    assert s["boxes"].dtype == np.int64 and s["box_labels"].dtype == np.int64
    b = ds[2]
    assert b["name"] == "sub/b" and (b["mask"][5:15, 5:25] == 3).all()
    np.testing.assert_array_equal(ds.to_category_ids(b["mask"]), _mask_b())
    np.testing.assert_array_equal(ds.to_category_ids(s["mask"]), _mask_a())
    c = ds[1]
    assert c["boxes"].shape == (0, 4) and c["tags"].sum() == 0


def test_class_names_and_unknown_id(folder):
    images, masks = folder
    ds = MaskFolderDataset(images, masks, class_names={3: "car", 17: "cat", 90: "brush", 5: "x"})
    assert ds.category_ids == [0, 3, 5, 17, 90]
    assert ds.class_names == ["background", "car", "x", "cat", "brush"]
    assert ds[0]["mask"][3, 4] == 1
    ds = MaskFolderDataset(images, masks, class_names={3: "car", 17: "cat"})
    with pytest.raises(ValueError, match=r"image 'sub/b.png'.*\[90\] not among"):
        ds[2]
    assert ds[0]["mask"].max() == 255
    with pytest.raises(DatasetError, match="first entry must be the background"):
        MaskFolderDataset(images, masks, class_names=["car", "cat"])


def test_mask_problems(folder):
    images, masks = folder
    (masks / "c.png").unlink()
    Image.fromarray(np.zeros((H + 1, W), np.uint8), mode="L").save(masks / "sub" / "b.png")
    ds = MaskFolderDataset(images, masks)
    with pytest.raises(ValueError, match=r"image 'c.png'.*mask PNG not found"):
        ds[1]
    with pytest.raises(ValueError, match=r"image 'sub/b.png'.*21x30 but the image is 20x30"):
        ds[2]
    assert ds[0]["name"] == "a"
    (masks / "a.png").write_bytes(b"junk")
    Image.fromarray(_mask_b(), mode="L").save(masks / "sub" / "b.png")
    ds = MaskFolderDataset(images, masks)
    assert ds.category_ids == [0, 90]  # the scan skips the unreadable mask
    with pytest.raises(ValueError, match=r"image 'a.jpg'.*a.png"):
        ds[0]


def test_rgb_voc_coloured_masks(folder):
    images, masks = folder
    Image.fromarray(voc_palette()[_mask_a()]).save(masks / "a.png")
    ds = MaskFolderDataset(images, masks)
    np.testing.assert_array_equal(ds.to_category_ids(ds[0]["mask"]), _mask_a())


def test_scribbles_points_tags(folder, tmp_path):
    images, masks = folder
    scr = tmp_path / "scribbles"
    (scr / "sub").mkdir(parents=True)
    for stem in ("a", "c", "sub/b"):
        s = np.full((H, W), 255, np.uint8)
        s[4, 4:8] = 3 if stem == "a" else 0
        s[15, 0:5] = 0
        write_label_png(s, scr / f"{stem}.png")
    points = {"a": [[3, 4, 3], [15, 22, 17], [19, 0, 0]], "c.png": [], "sub/b": [[10, 10, 90]]}
    (tmp_path / "points.json").write_text(json.dumps(points))
    (tmp_path / "tags.csv").write_text("name,tags\na,3;17\nsub/b.png,90\nc,\n")
    ds = MaskFolderDataset(
        images, scribbles_dir=scr, points_file=tmp_path / "points.json",
        tags_file=tmp_path / "tags.csv",
    )
    assert ds.category_ids == [0, 3, 17, 90]
    s = ds[0]
    assert "mask" not in s and "boxes" not in s
    assert s["scribbles"][4, 5] == 1 and s["scribbles"][15, 0] == 0 and s["scribbles"][0, 0] == 255
    np.testing.assert_array_equal(s["points"], [[3, 4, 1], [15, 22, 2], [19, 0, 0]])
    assert s["points"].dtype == np.int64
    np.testing.assert_array_equal(s["tags"], [1, 1, 0])
    np.testing.assert_array_equal(ds[2]["tags"], [0, 0, 1])
    assert ds[1]["points"].shape == (0, 3) and ds[1]["tags"].sum() == 0
    # JSON tags; tags from scribbles+points when there is no tags file
    (tmp_path / "tags.json").write_text(json.dumps({"a": [17], "c": [], "sub/b": [3, 90]}))
    ds = MaskFolderDataset(images, masks, tags_file=tmp_path / "tags.json")
    np.testing.assert_array_equal(ds[0]["tags"], [0, 1, 0])  # the file wins over the mask
    ds = MaskFolderDataset(images, scribbles_dir=scr, points_file=tmp_path / "points.json")
    np.testing.assert_array_equal(ds[0]["tags"], [1, 1, 0])


def test_points_and_tags_problems(folder, tmp_path):
    images, masks = folder
    p = tmp_path / "points.json"
    p.write_text(json.dumps({"a": [[3, 40, 3]], "sub/b": [], "zzz": []}))
    with pytest.warns(UserWarning, match="1 entr.*'zzz'"):
        ds = MaskFolderDataset(images, masks, points_file=p)
    with pytest.raises(ValueError, match=r"image 'a.jpg'.*point \(row 3, col 40\).*outside"):
        ds[0]
    with pytest.raises(ValueError, match=r"image 'c.png'.*no entry for this image in .*points"):
        ds[1]
    assert ds[2]["points"].shape == (0, 3)
    for bad, match in [
        ("[1, 2]", "expected an object"),
        ('{"a": [[1, 2]]}', r"points\['a'\]\[0\]: expected \[row, col, class_id\]"),
        ('{"a": [[1, 2, 300]]}', r"points\['a'\]\[0\]\[2\]: category id 300"),
        ('{"a": [[1.5, 2, 3]]}', r"integer pixel coordinates"),
        ("{", "not valid JSON"),
    ]:
        p.write_text(bad)
        with pytest.raises(DatasetError, match=match):
            MaskFolderDataset(images, masks, points_file=p)
    t = tmp_path / "tags.csv"
    for bad, match in [
        ("a,3;x\n", r"tags.csv:1: 'x' is not an integer"),
        ("a,3\na,17\n", r"tags.csv:2: duplicate entry for 'a'"),
        ("a,3,17\n", r"tags.csv:1: .*columns"),
        ("a,999\n", r"tags.csv:1: category id 999"),
    ]:
        t.write_text(bad)
        with pytest.raises(DatasetError, match=match):
            MaskFolderDataset(images, masks, tags_file=t)
    t.write_text("a,3\nc,\nsub/b,5\n")
    ds = MaskFolderDataset(images, tags_file=t, class_names={3: "car", 17: "cat"})
    with pytest.raises(ValueError, match=r"image 'sub/b.png'.*\[5\] not among"):
        ds[2]
    assert "mask" not in ds[0] and ds[0]["tags"].tolist() == [1, 0]
    tj = tmp_path / "tags.json"
    tj.write_text('{"a": "3"}')
    with pytest.raises(DatasetError, match=r"tags\['a'\]: expected a list"):
        MaskFolderDataset(images, masks, tags_file=tj)


def test_folder_errors(folder, tmp_path):
    images, masks = folder
    with pytest.raises(DatasetError, match="at least one of"):
        MaskFolderDataset(images)
    with pytest.raises(DatasetError, match="images folder not found"):
        MaskFolderDataset(tmp_path / "nope", masks)
    with pytest.raises(DatasetError, match="masks folder not found"):
        MaskFolderDataset(images, tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        MaskFolderDataset(tmp_path / "empty", masks)
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(images / "a.png")
    with pytest.raises(DatasetError, match="same output name 'a'"):
        MaskFolderDataset(images, masks)
    (images / "a.png").unlink()
    bg = tmp_path / "bg"
    (bg / "sub").mkdir(parents=True)
    for stem in ("a", "c", "sub/b"):
        write_label_png(np.zeros((H, W), np.uint8), bg / f"{stem}.png")
    with pytest.raises(DatasetError, match="no foreground category"):
        MaskFolderDataset(images, bg)
    (images / "broken.png").write_bytes(b"junk")
    write_label_png(np.zeros((H, W), np.uint8), masks / "broken.png")
    ds = MaskFolderDataset(images, masks)
    assert ds.sizes[ds.names.index("broken")] is None
    with pytest.raises(ValueError, match="broken.png"):
        ds[ds.names.index("broken")]


# ------------------------------------------------------------------------------- VOC XML


def _xml(objects, size=(H, W)):
    objs = "".join(
        f"<object><name>{n}</name><difficult>{d}</difficult><bndbox><xmin>{b[0]}</xmin>"
        f"<ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for n, b, d in objects
    )
    sz = f"<size><width>{size[1]}</width><height>{size[0]}</height></size>" if size else ""
    return f"<annotation><filename>x.jpg</filename>{sz}{objs}</annotation>"


@pytest.fixture
def voc_xml(folder, tmp_path):
    images, _ = folder
    xml = tmp_path / "xml"
    (xml / "sub").mkdir(parents=True)
    (xml / "a.xml").write_text(
        _xml([("person", (4, 3, 10, 8), 0), ("chair", (21, 13, 40, 18), 1)])
    )
    (xml / "c.xml").write_text(_xml([]))
    (xml / "sub" / "b.xml").write_text(_xml([("cat", (1, 1, 30, 20), 0)], size=None))
    return images, xml


def test_voc_xml_reader(voc_xml):
    images, xml = voc_xml
    ds = VOCXMLDataset(images, xml)
    from pyg_wsss.data import VOC_CLASSES

    assert ds.class_names == list(VOC_CLASSES) and ds.category_ids == list(range(21))
    assert ds.names == ["a", "c", "sub/b"] and ds.sizes == [(H, W)] * 3
    s = ds[0]
    np.testing.assert_array_equal(s["boxes"], [[3, 2, 9, 7]])  # 1-based -> 0-based
    np.testing.assert_array_equal(s["box_labels"], [15])
    assert s["tags"][15 - 1] == 1 and s["tags"][9 - 1] == 1  # difficult chair still a tag
    assert "mask" not in s
    s = VOCXMLDataset(images, xml, use_difficult=True)[0]
    np.testing.assert_array_equal(s["boxes"], [[3, 2, 9, 7], [20, 12, 29, 17]])  # clipped
    np.testing.assert_array_equal(s["box_labels"], [15, 9])
    assert ds[1]["boxes"].shape == (0, 4) and ds[1]["tags"].sum() == 0
    np.testing.assert_array_equal(ds[2]["boxes"], [[0, 0, 29, 19]])


def test_voc_xml_custom_names(voc_xml):
    images, xml = voc_xml
    (xml / "c.xml").write_text(_xml([("widget", (1, 1, 2, 2), 0)]))
    ds = VOCXMLDataset(images, xml)
    assert ds.class_names == ["background", "cat", "chair", "person", "widget"]
    assert ds.category_ids == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(ds[1]["box_labels"], [4])
    ds = VOCXMLDataset(images, xml, class_names={10: "person", 20: "cat", 30: "chair"})
    assert ds.category_ids == [0, 10, 20, 30]
    np.testing.assert_array_equal(ds.to_category_ids(np.array([[ds[0]["box_labels"][0]]])),
                                  [[10]])
    with pytest.raises(ValueError, match=r"image 'c.png'.*\['widget'\].*not among the classes"):
        ds[1]


def test_voc_xml_problems(voc_xml):
    images, xml = voc_xml
    (xml / "c.xml").unlink()
    (xml / "sub" / "b.xml").write_text("<annotation><object>")
    (xml / "a.xml").write_text(_xml([("person", (4, 3, 10, 8), 0)], size=(H + 2, W)))
    ds = VOCXMLDataset(images, xml)
    with pytest.raises(ValueError, match=r"image 'c.png'.*annotation XML not found"):
        ds[1]
    with pytest.raises(ValueError, match=r"image 'sub/b.png'.*malformed XML"):
        ds[2]
    with pytest.raises(ValueError, match=r"image 'a.jpg' is 20x30 \(HxW\).*say 22x30"):
        ds[0]
    with pytest.raises(DatasetError, match="XML folder not found"):
        VOCXMLDataset(images, xml / "nope")


# ------------------------------------------------------------------------------ open_dataset


def test_open_dataset(folder, voc_xml, tmp_path):
    images, masks = folder
    _, xml = voc_xml
    assert isinstance(open_dataset(images, masks=masks), MaskFolderDataset)
    assert isinstance(open_dataset(images, voc_xml=xml), VOCXMLDataset)
    (tmp_path / "t.json").write_text(json.dumps({"a": [3], "c": [], "sub/b": [3]}))
    ds = open_dataset(images, tags=tmp_path / "t.json")
    assert isinstance(ds, MaskFolderDataset) and ds.category_ids == [0, 3]
    with pytest.raises(DatasetError, match="only one of"):
        open_dataset(images, masks=masks, voc_xml=xml)
    with pytest.raises(DatasetError, match="no annotations"):
        open_dataset(images)
    with pytest.raises(DatasetError, match="tags can be combined only with masks"):
        open_dataset(images, voc_xml=xml, tags=tmp_path / "t.json")
    with pytest.raises(DatasetError, match="class_names cannot be used with coco"):
        open_dataset(images, coco=tmp_path / "x.json", class_names={1: "a"})


def test_open_dataset_coco(tmp_path):
    pytest.importorskip("pycocotools")
    from pyg_wsss.data import COCODataset

    images = tmp_path / "im"
    images.mkdir()
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(images / "x.png")
    data = {
        "images": [{"id": 1, "file_name": "x.png", "height": H, "width": W}],
        "annotations": [],
        "categories": [{"id": 5, "name": "thing"}],
    }
    (tmp_path / "c.json").write_text(json.dumps(data))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = open_dataset(images, coco=tmp_path / "c.json")
    assert isinstance(ds, COCODataset) and ds.category_ids == [0, 5]
    assert (ds[0]["mask"] == 0).all()


def test_pickle(folder, voc_xml):
    import pickle

    images, masks = folder
    _, xml = voc_xml
    for ds in (MaskFolderDataset(images, masks), VOCXMLDataset(images, xml)):
        ds2 = pickle.loads(pickle.dumps(ds))
        np.testing.assert_array_equal(ds2[0]["boxes"], ds[0]["boxes"])
        assert ds2.classes == ds.classes and ds2.names == ds.names
