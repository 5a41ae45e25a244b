import copy
import json
import sys
import warnings

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("pycocotools")

from pyg_wsss.data import COCODataset, DatasetError  # noqa: E402
from pyg_wsss.data.coco import coco_box  # noqa: E402

H, W = 24, 32


def _rle_counts(region: np.ndarray) -> list[int]:
    """Uncompressed COCO RLE (column-major run lengths, starting with a 0-run)."""
    flat = region.T.ravel().astype(np.uint8)
    counts, cur, run = [], 0, 0
    for v in flat:
        if v == cur:
            run += 1
        else:
            counts.append(run)
            cur, run = v, 1
    counts.append(run)
    return counts


def _base_json():
    crowd = np.zeros((H, W), bool)
    crowd[18:22, 2:8] = True
    return {
        "images": [
            {"id": 1, "file_name": "a.jpg", "height": H, "width": W},
            {"id": 7, "file_name": "sub/dir/b.png", "height": H, "width": W},
            {"id": 9, "file_name": "empty.png", "height": H, "width": W},
        ],
        "categories": [
            {"id": 90, "name": "toothbrush"},
            {"id": 3, "name": "car"},
            {"id": 17, "name": "cat"},
        ],
        "annotations": [
            # a: a car polygon (rectangle x 4..13, y 2..9) and a cat RLE, plus a crowd car
            {"id": 1, "image_id": 1, "category_id": 3, "iscrowd": 0,
             "bbox": [4.0, 2.0, 10.0, 8.0],
             "segmentation": [[4, 2, 14, 2, 14, 10, 4, 10]]},
            {"id": 2, "image_id": 1, "category_id": 17, "iscrowd": 0,
             "bbox": [20.3, 12.5, 6.2, 5.0],
             "segmentation": {"size": [H, W], "counts": _rle_counts(_cat_region())}},
            {"id": 3, "image_id": 1, "category_id": 3, "iscrowd": 1,
             "bbox": [2, 18, 6, 4],
             "segmentation": {"size": [H, W], "counts": _rle_counts(crowd)}},
            # b: a toothbrush overlapping a bigger cat (the small one stays on top)
            {"id": 4, "image_id": 7, "category_id": 17, "iscrowd": 0,
             "bbox": [0, 0, 20, 20], "segmentation": [[0, 0, 20, 0, 20, 20, 0, 20]]},
            {"id": 5, "image_id": 7, "category_id": 90, "iscrowd": 0,
             "bbox": [5, 5, 4, 4], "segmentation": [[5, 5, 9, 5, 9, 9, 5, 9]]},
        ],
    }


def _cat_region():
    r = np.zeros((H, W), bool)
    r[13:17, 21:26] = True
    return r


def _write_images(root, data):
    rng = np.random.default_rng(0)
    for img in data["images"]:
        p = root / img["file_name"]
        p.parent.mkdir(parents=True, exist_ok=True)
        arr = rng.integers(0, 256, (img["height"], img["width"], 3), dtype=np.uint8)
        Image.fromarray(arr).save(p, quality=95) if p.suffix == ".jpg" else Image.fromarray(
            arr
        ).save(p)


@pytest.fixture
def coco(tmp_path):
    data = _base_json()
    images = tmp_path / "images"
    _write_images(images, data)
    ann = tmp_path / "instances.json"
    ann.write_text(json.dumps(data))
    return images, ann, data


def _write(tmp_path, data, name="bad.json"):
    p = tmp_path / name
    p.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return p


def test_protocol(coco):
    images, ann, _ = coco
    ds = COCODataset(images, ann)
    assert len(ds) == 3
    assert ds.category_ids == [0, 3, 17, 90]
    assert ds.class_names == ["background", "car", "cat", "toothbrush"]
    assert ds.num_classes == 4
    assert ds.names == ["a", "sub/dir/b", "empty"]
    assert ds.file_names == ["a.jpg", "sub/dir/b.png", "empty.png"]
    assert ds.sizes == [(H, W)] * 3
    assert ds.errors == {}


def test_sample_a(coco):
    images, ann, _ = coco
    s = COCODataset(images, ann)[0]
    assert s["name"] == "a" and s["file_name"] == "a.jpg"
    assert s["image"].dtype == np.uint8 and s["image"].shape == (H, W, 3)
    # boxes: floor/ceil rule, crowd box not used
    np.testing.assert_array_equal(s["boxes"], [[4, 2, 13, 9], [20, 12, 26, 17]])
    assert s["boxes"].dtype == np.int64 and s["box_labels"].dtype == np.int64
    np.testing.assert_array_equal(s["box_labels"], [1, 2])
    np.testing.assert_array_equal(s["tags"], [1, 1, 0])
    assert s["tags"].dtype == np.float32
    mask = s["mask"]
    assert mask.dtype == np.uint8 and mask.shape == (H, W)
    exp = np.zeros((H, W), np.uint8)
    exp[2:10, 4:14] = 1
    exp[_cat_region()] = 2
    exp[18:22, 2:8] = 255
    np.testing.assert_array_equal(mask, exp)


def test_subfolder_overlap_and_empty(coco):
    images, ann, _ = coco
    ds = COCODataset(images, ann)
    b = ds[1]
    assert b["name"] == "sub/dir/b"
    assert b["mask"][6, 6] == 3  # toothbrush on top of the bigger cat
    assert b["mask"][15, 15] == 2
    np.testing.assert_array_equal(b["box_labels"], [2, 3])
    e = ds[-1]
    assert e["boxes"].shape == (0, 4) and e["box_labels"].shape == (0,)
    assert (e["mask"] == 0).all() and e["tags"].sum() == 0 and e["tags"].shape == (3,)


def test_to_category_ids_round_trip(coco):
    images, ann, data = coco
    ds = COCODataset(images, ann)
    ids = ds.to_category_ids(ds[0]["mask"])
    assert set(np.unique(ids).tolist()) == {0, 3, 17, 255}
    assert ds.to_category_ids(ds[1]["mask"])[6, 6] == 90
    with pytest.raises(ValueError, match="outside the contiguous classes"):
        ds.to_category_ids(np.array([[4]], np.uint8))


def test_load_masks_false_and_missing_segmentation(coco, tmp_path):
    images, ann, data = coco
    assert "mask" not in COCODataset(images, ann, load_masks=False)[0]
    d = copy.deepcopy(data)
    del d["annotations"][0]["segmentation"]
    s = COCODataset(images, _write(tmp_path, d))[0]
    assert "mask" not in s and len(s["boxes"]) == 2  # mask unknown, boxes still there


def test_compressed_rle(coco, tmp_path):
    from pycocotools import mask as mu

    images, ann, data = coco
    d = copy.deepcopy(data)
    rle = mu.encode(np.asfortranarray(_cat_region().astype(np.uint8)))
    d["annotations"][1]["segmentation"] = {"size": [H, W], "counts": rle["counts"].decode()}
    s = COCODataset(images, _write(tmp_path, d))[0]
    assert (s["mask"][_cat_region()] == 2).all()


def test_box_rule():
    assert coco_box([4.0, 2.0, 10.0, 8.0], H, W) == ((4, 2, 13, 9), False)
    assert coco_box([0.5, 0.5, 0.2, 0.2], H, W) == ((0, 0, 0, 0), False)
    assert coco_box([10.000000001, 2, 5.0, 1], H, W) == ((10, 2, 14, 2), False)
    assert coco_box([-3, -2, 10, 5], H, W) == ((0, 0, 6, 2), True)
    assert coco_box([30, 20, 10, 10], H, W) == ((30, 20, 31, 23), True)
    with pytest.raises(ValueError, match="empty"):
        coco_box([3, 3, 0, 5], H, W)
    with pytest.raises(ValueError, match="inverted"):
        coco_box([3, 3, -2, 5], H, W)
    with pytest.raises(ValueError, match="entirely outside"):
        coco_box([40, 3, 5, 5], H, W)


def test_clipped_box_warns(coco, tmp_path):
    images, ann, data = coco
    d = copy.deepcopy(data)
    d["annotations"][0]["bbox"] = [-2.0, 2.0, 12.0, 8.0]
    with pytest.warns(UserWarning, match=r"1 box.*clipped.*annotations\[0\]"):
        ds = COCODataset(images, _write(tmp_path, d))
    np.testing.assert_array_equal(ds[0]["boxes"][0], [0, 2, 9, 9])


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda d: d["annotations"][0].update(category_id=55),
         r"image 'a.jpg'.*annotations\[0\] uses category id 55.*not in 'categories'"),
        (lambda d: d["annotations"][0].update(bbox=[40, 2, 3, 3]),
         r"image 'a.jpg'.*annotations\[0\]\.bbox.*entirely outside"),
        (lambda d: d["annotations"][0].update(bbox=[4, 2, 0, 3]),
         r"image 'a.jpg'.*annotations\[0\]\.bbox.*empty"),
        (lambda d: d["annotations"][0].update(segmentation=[[1, 2, 3, 4]]),
         r"image 'a.jpg'.*annotations\[0\]\.segmentation\[0\].*>= 6"),
        (lambda d: d["annotations"][1]["segmentation"].update(size=[H, W + 1]),
         r"image 'a.jpg'.*annotations\[1\]\.segmentation\.size"),
        (lambda d: d["images"][0].update(file_name="missing.jpg"),
         r"image file not found.*missing.jpg"),
    ],
)
def test_per_image_errors(coco, tmp_path, edit, match):
    images, ann, data = coco
    d = copy.deepcopy(data)
    edit(d)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = COCODataset(images, _write(tmp_path, d))
    with pytest.raises(ValueError, match=match):
        ds[0]
    # the other images are fine
    assert ds[1]["name"] == "sub/dir/b" and ds[2]["boxes"].shape == (0, 4)


def test_size_disagrees_with_json(coco, tmp_path):
    images, ann, data = coco
    d = copy.deepcopy(data)
    d["images"][1].update(width=W + 5)
    ds = COCODataset(images, _write(tmp_path, d))
    with pytest.raises(ValueError, match=r"image 'sub/dir/b.png' is 24x32 \(HxW\) but the "
                       r"annotations say 24x37"):
        ds[1]
    assert ds[0]["name"] == "a"
    # an RLE whose size disagrees with the JSON is found without reading the image
    d["images"][0].update(height=H + 1)
    ds = COCODataset(images, _write(tmp_path, d))
    assert "segmentation.size" in ds.errors[0]


def test_unreadable_image(coco, tmp_path):
    images, ann, _ = coco
    (images / "a.jpg").write_bytes(b"not a jpeg")
    ds = COCODataset(images, ann)
    with pytest.raises(ValueError, match="a.jpg"):
        ds[0]
    assert ds[1]["name"] == "sub/dir/b"


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda d: d["annotations"][3].update(bbox="abc"),
         r"annotations\[3\]\.bbox: expected 4 numbers, got 'abc'"),
        (lambda d: d["annotations"][3].update(bbox=[1, 2, 3]),
         r"annotations\[3\]\.bbox: expected 4 numbers"),
        (lambda d: d["annotations"][2].update(image_id="1"),
         r"annotations\[2\]\.image_id: expected an integer, got '1'"),
        (lambda d: d["annotations"][0].update(iscrowd=2), r"annotations\[0\]\.iscrowd"),
        (lambda d: d["annotations"][0].update(segmentation=[["x"]]),
         r"annotations\[0\]\.segmentation\[0\]: expected a polygon"),
        (lambda d: d["annotations"][0].update(segmentation=5),
         r"annotations\[0\]\.segmentation: expected"),
        (lambda d: d["annotations"][1]["segmentation"].update(counts=None),
         r"annotations\[1\]\.segmentation\.counts"),
        (lambda d: d["images"][1].pop("file_name"), r"images\[1\]: missing field 'file_name'"),
        (lambda d: d["images"][1].update(height=0), r"images\[1\]: width and height"),
        (lambda d: d["images"][1].update(id=1), r"images\[1\]\.id: duplicate image id 1"),
        (lambda d: d["images"][1].update(file_name="../x.png"), r"images\[1\]\.file_name"),
        (lambda d: d["images"][2].update(file_name="a.png"), r"same output name 'a'"),
        (lambda d: d["categories"][1].update(id=90), r"categories\[1\]\.id: duplicate"),
        (lambda d: d["categories"][1].update(id=0), r"categories\[1\]\.id.*'car' has id 0"),
        (lambda d: d["categories"][1].update(id=300), r"'car' has id 300.*1\.\.254"),
        (lambda d: d["categories"][1].update(name=None), r"categories\[1\]\.name"),
        (lambda d: d.pop("annotations"), r"annotations: missing"),
        (lambda d: d.update(images={}), r"images: expected a list, got dict"),
        (lambda d: d.update(categories=[]), r"categories: the list is empty"),
        (lambda d: d["annotations"].append(7), r"annotations\[5\]: expected an object"),
    ],
)
def test_malformed_json(coco, tmp_path, edit, match):
    images, _, data = coco
    d = copy.deepcopy(data)
    edit(d)
    with pytest.raises(DatasetError, match=match):
        COCODataset(images, _write(tmp_path, d))


def test_malformed_files(coco, tmp_path):
    images, ann, _ = coco
    with pytest.raises(DatasetError, match="not valid JSON.*line 1"):
        COCODataset(images, _write(tmp_path, "{nope"))
    with pytest.raises(DatasetError, match="top level must be an object"):
        COCODataset(images, _write(tmp_path, "[]"))
    with pytest.raises(DatasetError, match="annotation file not found"):
        COCODataset(images, tmp_path / "none.json")
    with pytest.raises(DatasetError, match="images folder not found"):
        COCODataset(tmp_path / "noimages", ann)


def test_orphan_annotation_warns(coco, tmp_path):
    images, _, data = coco
    d = copy.deepcopy(data)
    d["annotations"].append({"image_id": 123, "category_id": 3, "bbox": [0, 0, 1, 1]})
    with pytest.warns(UserWarning, match="1 annotation.*not in 'images'"):
        ds = COCODataset(images, _write(tmp_path, d))
    assert len(ds[0]["boxes"]) == 2


def test_missing_pycocotools(coco, monkeypatch):
    images, ann, _ = coco
    monkeypatch.setitem(sys.modules, "pycocotools", None)
    monkeypatch.setitem(sys.modules, "pycocotools.mask", None)
    with pytest.raises(ImportError, match=r'pip install "pyg-wsss\[coco\]"'):
        COCODataset(images, ann)


def test_pickle_classes_transform(coco):
    import pickle

    images, ann, _ = coco
    ds = COCODataset(images, ann, transform=lambda s: {**s, "seen": True})
    assert ds.classes == {0: "background", 3: "car", 17: "cat", 90: "toothbrush"}
    s = ds[0]
    assert s["seen"]
    ds2 = pickle.loads(pickle.dumps(COCODataset(images, ann)))
    np.testing.assert_array_equal(ds2[0]["mask"], s["mask"])
    ids = ds.to_category_ids(s["mask"])
    np.testing.assert_array_equal(ds.from_category_ids(ids), s["mask"])
    with pytest.raises(ValueError, match=r"\[4\] not among"):
        ds.from_category_ids(np.array([[4]]))
    with pytest.raises(TypeError, match="transform"):
        COCODataset(images, ann, transform=3)
    with pytest.raises(IndexError):
        ds[3]
    with pytest.raises(TypeError):
        ds["a"]
    assert [x["name"] for x in COCODataset(images, ann)] == ["a", "sub/dir/b", "empty"]
